"""The Strata benchmark's own judgement (bench/strata.py; EMFILE lines: bench/strata_host.py): which
journal lines count as EMFILE, which run passes, which level is the highest clean one. Pure
functions, no Docker."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.strata import _best, verdict
from bench.strata_host import emfile_lines

# CHP 5.3's journal when the proxy runs out of descriptors (journalctl -o cat): the error line,
# coloured, then the error object's fields on lines of their own.
JOURNAL = """\
2026-12-03T13:07:37.880Z [ConfigProxy] \x1b[32minfo\x1b[39m: 200 GET /api/routes
2026-12-03T13:07:37.887Z [ConfigProxy] \x1b[31merror\x1b[39m: 503 POST /user/echo-35/api/kernels \
Error: connect EMFILE 172.18.0.2:8888 - Local (undefined:undefined)
  errno: -24,
  code: 'EMFILE',
  syscall: 'connect',
2026-12-03T13:07:38.001Z [ConfigProxy] \x1b[31merror\x1b[39m: 503 GET /user/echo-7/tree Error: connect EMFILE
"""


def test_one_emfile_count_per_proxy_error_without_colour_codes():
    lines = emfile_lines(JOURNAL)
    assert len(lines) == 2
    assert lines[0].startswith("2026-12-03T13:07:37.887Z [ConfigProxy] error: 503 POST /user/echo-35/")
    assert "\x1b" not in "".join(lines)
    assert emfile_lines("2026-12-03T13:07:37.880Z [ConfigProxy] info: 200 GET /api/routes\n") == []


def level(peak: int, failed: int = 0) -> dict[str, Any]:
    return {"peak_websockets": peak, "failed": failed, "deadline_hit": False}


def seed(failed: int, emfile: int) -> dict[str, Any]:
    return {**level(660, failed), "journal": {"emfile_lines": emfile}}


def test_best_level_is_the_highest_peak_without_errors():
    assert _best([level(6008), level(8900, failed=3), level(7450)]) == level(7450)
    assert _best([level(9000, failed=1)]) is None


def test_verdict_needs_the_failure_with_emfile_then_zero_errors_then_6000():
    good = {
        "a_seed_limit_1024": seed(failed=31, emfile=22),
        "b_seed_kit_limits": seed(failed=0, emfile=0),
        "c_echo": {"levels": [level(6008), level(8900, failed=2)]},
    }
    assert verdict(good)["ok"] is True
    # a) failing without EMFILE in CHP's journal is not the Strata failure
    assert verdict({**good, "a_seed_limit_1024": seed(failed=31, emfile=0)})["a_failed_with_emfile"] is False
    assert verdict({**good, "b_seed_kit_limits": seed(failed=1, emfile=0)})["ok"] is False
    assert verdict({**good, "c_echo": {"levels": [level(5990), level(6500, failed=4)]}})["ok"] is False
    assert verdict({})["ok"] is False
