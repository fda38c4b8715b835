"""User ids and the per-client spawn cap."""

from __future__ import annotations

import base64

import pytest

from tmpnb import ratelimit
from tmpnb.ids import ID_BYTES, image_key, is_user_id, key_of, new_user_id, redact
from tmpnb.ratelimit import RateLimiter


def test_ids_are_random_urlsafe_and_at_least_64_bits() -> None:
    ids = {new_user_id() for _ in range(2000)}
    assert len(ids) == 2000
    for i in list(ids)[:50]:
        assert is_user_id(i)
        raw = base64.urlsafe_b64decode(i + "=" * (-len(i) % 4))
        assert len(raw) == ID_BYTES and len(raw) * 8 >= 64  # what an id really carries
    # every byte position varies across ids (no fixed prefix shrinking the space)
    decoded = [base64.urlsafe_b64decode(i + "=" * (-len(i) % 4)) for i in ids]
    assert all(len({d[k] for d in decoded}) > 200 for k in range(ID_BYTES))
    assert not is_user_id("../etc/passwd")
    assert not is_user_id("short")


def test_keyed_ids_carry_the_image_key_and_still_96_random_bits() -> None:
    key = image_key("sha256:" + "0123456789ab" + "c" * 52)
    assert key == "0123456789ab"
    ids = {new_user_id(key) for _ in range(500)}
    assert len(ids) == 500
    for i in ids:
        assert is_user_id(i) and key_of(i) == key
        prefix, _, random = i.partition("-")
        assert prefix == key
        assert len(base64.urlsafe_b64decode(random + "=" * (-len(random) % 4))) == ID_BYTES
    old = new_user_id()
    assert is_user_id(old) and key_of(old) is None  # old-style ids stay valid (adoption)
    assert not is_user_id("0123456789AB-" + old)  # the key is lowercase hex, as nginx's location
    assert not is_user_id(key + "-" + old[:15])
    with pytest.raises(ValueError, match="image key"):
        new_user_id("xyz")
    with pytest.raises(ValueError, match="not a Docker image id"):
        image_key("tmpnb-notebook:debian-1")


def test_a_keyed_id_is_cut_after_its_key_in_logs() -> None:
    uid = new_user_id("0123456789ab")
    shown = uid[:17] + "\u2026"
    assert redact(uid) == shown
    text = redact(f"GET /user/{uid}/static/x.js")
    assert uid not in text and shown in text


def test_rate_limiter_sliding_window() -> None:
    rl = RateLimiter()
    assert rl.allowed("a", 0, 0.0)  # 0 = off
    for t in (0.0, 1.0):
        assert rl.allowed("a", 2, t)
        rl.record("a", t)
    assert not rl.allowed("a", 2, 30.0)
    assert rl.allowed("b", 2, 30.0)
    assert rl.allowed("a", 2, 60.5)  # the first hit left the window


def test_rate_limiter_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    rl = RateLimiter()
    for i in range(1000):
        rl.record(f"10.0.{i // 256}.{i % 256}", 0.0)
    rl.prune(120.0)
    assert len(rl) == 0
    # a flood of distinct addresses all within the window: the table never grows past MAX_CLIENTS
    monkeypatch.setattr(ratelimit, "MAX_CLIENTS", 100)
    for i in range(1000):
        rl.record(f"10.1.{i // 256}.{i % 256}", 200.0 + i / 1000)
        assert len(rl) <= 100
    assert rl.allowed("10.1.0.1", 1, 201.0)  # among the oldest: forgotten
    assert not rl.allowed("10.1.3.231", 1, 201.0)  # the last one recorded is remembered
