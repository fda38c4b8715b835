"""Configuration: defaults, the example file, and a clear error for every wrong value."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tmpnb import config as cfg
from tmpnb.config import ConfigError, from_mapping, load

EXAMPLE = Path(cfg.__file__).with_name("tmpnb.example.toml")
ENV = {"CONFIGPROXY_AUTH_TOKEN": "t0ken", "TMPNB_ADMIN_TOKEN": "adm"}


def test_example_file_lists_every_option_with_its_default() -> None:
    raw = tomllib.loads(EXAMPLE.read_text())
    assert set(raw) == set(cfg.FILE_FIELDS)
    for name, default in cfg.DEFAULTS.items():
        value = raw[name]
        expected = list(default) if isinstance(default, tuple) else default
        assert value == expected, f"example shows {name} = {value!r}, default is {expected!r}"


def test_example_file_loads() -> None:
    c = load(EXAMPLE, ENV)
    assert c.chp_auth_token == "t0ken"
    assert c.admin_token == "adm"
    assert c.network_name == "tmpnb-tmpnb"
    assert "t0ken" not in repr(c)


def test_minimal_config_and_command_rendering() -> None:
    c = from_mapping({"image": "img:1", "instance": "demo-1"}, ENV)
    assert c.network_name == "tmpnb-demo-1"
    cmd = c.render_command("abc")
    assert "--ServerApp.base_url=/user/abc/" in cmd
    assert "--port=8888" in cmd


def test_missing_chp_token_is_refused() -> None:
    with pytest.raises(ConfigError, match="CONFIGPROXY_AUTH_TOKEN"):
        from_mapping({"image": "x"}, {})
    # --check-config does not need the secrets
    assert from_mapping({"image": "x"}, {}, need_secrets=False).chp_auth_token == ""


@pytest.mark.parametrize(
    ("raw", "option"),
    [
        ({}, "image"),
        ({"image": ""}, "image"),
        ({"image": "x", "instance": "Bad_Name"}, "instance"),
        ({"image": "x", "instance": "-x"}, "instance"),
        ({"image": "x", "listen_port": 0}, "listen_port"),
        ({"image": "x", "listen_port": "80"}, "listen_port"),
        ({"image": "x", "listen_port": True}, "listen_port"),
        ({"image": "x", "chp_api_url": "localhost:8001"}, "chp_api_url"),
        ({"image": "x", "docker_url": "ftp://x"}, "docker_url"),
        ({"image": "x", "command": "jupyter notebook"}, "command"),
        ({"image": "x", "command": ["run", "--port={port}"]}, "command"),
        ({"image": "x", "command": ["run", "{base_path}", "{nope}"]}, "command"),
        ({"image": "x", "command": ["run", "{base_path", "x"]}, "command"),
        ({"image": "x", "container_user": "0:0"}, "container_user"),
        ({"image": "x", "container_user": "root"}, "container_user"),
        ({"image": "x", "container_user": "1000:0"}, "container_user"),
        ({"image": "x", "network": "bridge"}, "network"),
        ({"image": "x", "network": "a b"}, "network"),
        ({"image": "x", "mem_limit_mb": 1}, "mem_limit_mb"),
        # The floor is 128 MB, as the role's preflight says (it was 32 here, 128 in Ansible).
        (
            {"image": "x", "mem_limit_mb": 127, "home_size_mb": 8, "tmp_size_mb": 8, "shm_size_mb": 8},
            "mem_limit_mb",
        ),
        ({"image": "x", "cull_timeout": 900, "cull_max_age": 600}, "cull_max_age"),
        ({"image": "x", "pool_size": 20, "capacity": 10}, "pool_size"),
        ({"image": "x", "capacity": 0}, "capacity"),
        ({"image": "x", "boot_timeout": 0}, "boot_timeout"),
        ({"image": "x", "cull_timeout": "10m"}, "cull_timeout"),
        ({"image": "x", "redirect_path": "a b"}, "redirect_path"),
        ({"image": "x", "user_path_prefix": "user"}, "user_path_prefix"),
        ({"image": "x", "client_address_header": "Forwarded"}, "client_address_header"),
        ({"image": "x", "public_url": "cell1"}, "public_url"),
        ({"image": "x", "log_level": "loud"}, "log_level"),
        ({"image": "x", "pool_sise": 3}, "pool_sise"),
    ],
)
def test_wrong_values_name_the_option(raw: dict, option: str) -> None:
    with pytest.raises(ConfigError) as err:
        from_mapping(raw, ENV)
    assert option in str(err.value)


def test_reload_diff_separates_live_and_restart_options() -> None:
    old = from_mapping({"image": "a"}, ENV)
    new = from_mapping({"image": "b", "pool_size": 2, "listen_port": 1234}, ENV)
    live, restart = cfg.changed_options(old, new)
    assert live == ["image", "pool_size"]
    assert restart == ["listen_port"]


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tmpnb", *args], capture_output=True, text=True, env=env or {}, timeout=60
    )


def test_check_config_cli(tmp_path: Path) -> None:
    ok = _cli("--check-config", str(EXAMPLE))
    assert ok.returncode == 0, ok.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('image = "x"\npool_size = "four"\n')
    res = _cli("--check-config", str(bad))
    assert res.returncode == 2
    assert "pool_size" in res.stderr
    broken = tmp_path / "broken.toml"
    broken.write_text("image = \n")
    assert _cli("--check-config", str(broken)).returncode == 2
    assert _cli("--check-config", str(tmp_path / "missing.toml")).returncode == 2


def test_start_without_chp_token_exits_2() -> None:
    res = _cli("--config", str(EXAMPLE))
    assert res.returncode == 2
    assert "CONFIGPROXY_AUTH_TOKEN" in res.stderr


def test_cpus_is_a_cap_in_cores_or_none() -> None:
    from tmpnb.docker_spec import container_spec

    assert from_mapping({"image": "img"}, ENV).cpus == 0.0
    capped = from_mapping({"image": "img", "cpus": 0.5}, ENV)
    assert container_spec(capped, "AAAAAAAAAAAAAAAA", 1.0)["HostConfig"]["NanoCpus"] == 500_000_000
    assert (
        "NanoCpus"
        not in container_spec(from_mapping({"image": "img"}, ENV), "AAAAAAAAAAAAAAAA", 1.0)["HostConfig"]
    )
    for bad in (-1, 0.001, 2000, "1", True):
        with pytest.raises(ConfigError, match="cpus: expected 0"):
            from_mapping({"image": "img", "cpus": bad}, ENV)
