"""What roles/limits leaves in force on a systemd test host carved for the default 1000 users.

The host has a read-only /proc/sys, an open-files hard limit it cannot raise (no CAP_SYS_RESOURCE)
and net.core.somaxconn=4096 given at creation. Some checks run the role again from here (check
mode, bad input) with ansible-playbook and the json callback, against Molecule's inventory."""

import importlib.util
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

SCENARIO = Path(__file__).resolve().parents[1]
PROJECT = SCENARIO.parents[1]
SYSCTL_FILE = "/etc/sysctl.d/60-tmpnb.conf"
SYSTEMD_DROPIN = "/etc/systemd/system.conf.d/60-tmpnb-limits.conf"
PAM_FILE = "/etc/security/limits.d/60-tmpnb.conf"
MODULES_FILE = "/etc/modules-load.d/60-tmpnb.conf"
PROBE = "tmpnb-limits-probe.service"
NOFILE = 1048576

# The README's worked example for 1000 users (budget 12000), kept once, with the filter's unit tests.
_spec = importlib.util.spec_from_file_location(
    "test_limits_filters", PROJECT / "tests" / "test_limits_filters.py"
)
_reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_reference)
EXPECTED = _reference.REFERENCE_1000_USERS
EXACT = {"net.ipv4.ip_forward", "net.ipv4.ip_local_port_range"}  # every other key is a floor


def _sysctl(host, key: str) -> str | None:
    out = host.run("sysctl -n -e %s", key)
    value = " ".join(out.stdout.split())
    return value or None


def _dropin(host) -> dict[str, str]:
    entries = {}
    for line in host.file(SYSCTL_FILE).content_string.splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            entries[key.strip()] = " ".join(value.split())
    return entries


def _ceiling(host) -> int:
    """Independent of the role: fs.nr_open, and PID 1's hard limit when it lacks CAP_SYS_RESOURCE."""
    nr_open = int(host.file("/proc/sys/fs/nr_open").content_string)
    hard = host.file("/proc/1/limits").content_string
    pid1_hard = int(re.search(r"^Max open files\s+\S+\s+(\S+)", hard, re.M).group(1))
    cap_eff = int(
        re.search(r"^CapEff:\s*(\S+)", host.file("/proc/1/status").content_string, re.M).group(1), 16
    )
    return nr_open if cap_eff >> 24 & 1 else min(nr_open, pid1_hard)


def _playbook(*args: str) -> tuple[int, dict]:
    env = dict(os.environ)
    env.update(
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
        ANSIBLE_ROLES_PATH=str(PROJECT / "roles"),
        ANSIBLE_RETRY_FILES_ENABLED="false",
    )
    inventory = os.environ["MOLECULE_INVENTORY_FILE"]
    proc = subprocess.run(
        ["ansible-playbook", "-i", inventory, str(SCENARIO / "converge.yml"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    try:
        return proc.returncode, json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"ansible-playbook printed no JSON (rc {proc.returncode}): {proc.stdout}\n{proc.stderr}")


def _failure_messages(node) -> list[str]:
    found = []
    if isinstance(node, dict):
        if node.get("failed") and "msg" in node:
            found.append(str(node["msg"]))
        for value in node.values():
            found += _failure_messages(value)
    elif isinstance(node, list):
        for value in node:
            found += _failure_messages(value)
    return found


def _state(host) -> dict[str, str]:
    """Contents and change times of everything the role writes, and systemd's default."""
    paths = (SYSCTL_FILE, SYSTEMD_DROPIN, PAM_FILE, MODULES_FILE)
    return {
        "files": host.check_output(
            "stat -c '%%n %%Y %%Z' %s %s %s %s && sha256sum %s %s %s %s", *paths, *paths
        ),
        "systemd": host.check_output("systemctl show -p DefaultLimitNOFILE"),
    }


def test_dropin_holds_the_derived_values_and_never_lowers_a_limit(host) -> None:
    dropin = host.file(SYSCTL_FILE)
    assert dropin.user == "root" and dropin.mode == 0o644
    assert dropin.content_string.startswith("#"), "no ansible_managed header"
    entries = _dropin(host)
    written = set()
    for key, want in EXPECTED.items():
        running = _sysctl(host, key)
        optional = key == "net.netfilter.nf_conntrack_max"
        name = f"-{key}" if optional else key
        if key not in EXACT and running is not None and int(running) > int(want):
            assert name not in entries, f"{key}: running {running} > {want}, the file must not lower it"
        elif optional and running is None:
            assert name not in entries, f"{key}: conntrack is not loaded, the key must not be written"
        else:
            assert entries.get(name) == want, f"{key}: file has {entries.get(name)!r}, want {want!r}"
            written.add(name)
    assert set(entries) == written, f"unexpected keys in {SYSCTL_FILE}: {set(entries) - written}"
    assert entries["net.ipv4.ip_forward"] == "1", "Docker needs forwarding"


def test_conntrack_loads_before_sysctl_at_boot(host) -> None:
    loaded = _sysctl(host, "net.netfilter.nf_conntrack_max") is not None
    modules = host.file(MODULES_FILE)
    assert modules.exists == loaded
    if loaded:
        assert "nf_conntrack" in modules.content_string.splitlines()


def test_namespaced_values_are_in_force(host) -> None:
    entries = _dropin(host)
    assert _sysctl(host, "net.core.somaxconn") == entries["net.core.somaxconn"] == "4096"
    assert _sysctl(host, "net.ipv4.ip_forward") == entries["net.ipv4.ip_forward"] == "1"


def test_proc_sys_stays_read_only(host) -> None:
    mounts = host.check_output("findmnt -n -o OPTIONS /proc/sys")
    assert mounts.split(",")[0] == "ro", f"/proc/sys was remounted: {mounts}"


def test_check_mode_reports_in_force_and_skipped_keys_and_changes_nothing(host) -> None:
    before = _state(host)
    rc, out = _playbook("--check")
    assert rc == 0, _failure_messages(out)
    (name,) = out["stats"]
    assert out["stats"][name]["changed"] == 0
    reports = [
        task["hosts"][name]["msg"]
        for play in out["plays"]
        for task in play["tasks"]
        if task["task"]["name"].endswith("Report what is in force, applied and skipped")
    ]
    assert len(reports) == 1
    report = reports[0]
    sysctl = report["sysctl"]
    assert set(sysctl) == set(EXPECTED)
    assert sysctl["net.core.somaxconn"] == "in force: 4096"
    assert sysctl["net.ipv4.ip_forward"] == "in force: 1"
    # Read-only /proc/sys: nothing is applied, and each differing key says why.
    assert not [k for k, v in sysctl.items() if v.startswith("applied")]
    assert sysctl["net.ipv4.ip_local_port_range"].startswith("skipped: /proc/sys is read-only")
    for key, line in sysctl.items():
        running = _sysctl(host, key)
        if running is None:
            assert line.startswith(("skipped: not visible in this container", "not written: absent")), (
                key,
                line,
            )
        elif key not in EXACT and int(running) > int(EXPECTED[key]):
            assert line.startswith("not written: running value"), (key, line)
        elif running == EXPECTED[key]:
            assert line.startswith("in force"), (key, line)
        else:
            assert line.startswith("skipped: /proc/sys is read-only"), (key, line)
    assert report["fd_budget"] == 1000 * 2 * 3 * 2
    ceiling = _ceiling(host)
    assert report["nofile"]["configured"] == NOFILE
    assert report["nofile"]["ceiling"] == ceiling
    assert report["nofile"]["effective"] == min(NOFILE, ceiling)
    assert _state(host) == before


def test_systemd_default_limit_nofile(host) -> None:
    assert host.file(SYSTEMD_DROPIN).contains(f"^DefaultLimitNOFILE={NOFILE}$")
    assert host.check_output("systemctl show -p DefaultLimitNOFILE --value") == str(NOFILE)


def test_a_unit_runs_with_min_of_configured_and_ceiling(host) -> None:
    host.check_output("systemctl restart %s", PROBE)
    configured = int(host.check_output("systemctl show -p LimitNOFILE --value %s", PROBE))
    assert configured == NOFILE
    pid = host.check_output("systemctl show -p MainPID --value %s", PROBE)
    assert int(pid) > 0
    limits = host.file(f"/proc/{pid}/limits").content_string
    soft, hard = re.search(r"^Max open files\s+(\d+)\s+(\d+)", limits, re.M).groups()
    want = min(configured, _ceiling(host))
    assert (int(soft), int(hard)) == (want, want)


def test_login_sessions_get_the_capped_limit(host) -> None:
    # pam_limits cannot set more than the ceiling; asking more would leave sessions at 1024.
    out = host.check_output("runuser -l nobody -s /bin/sh -c 'ulimit -Sn; ulimit -Hn' 2>/dev/null")
    want = str(min(NOFILE, _ceiling(host)))
    assert out.split() == [want, want]


@pytest.mark.parametrize(
    ("extra_vars", "named"),
    [
        ({"limits_users": -5}, "limits_users"),
        ({"limits_users": "many"}, "limits_users"),
        ({"limits_nofile": "lots"}, "limits_nofile"),
        ({"limits_sysctl_overrides": "net.core.somaxconn=1"}, "limits_sysctl_overrides"),
        # The worked example: 110 x 2 x 3 x 2 = 1320 > 1024.
        ({"limits_users": 110, "limits_nofile": 1024}, "budget 1320"),
    ],
    ids=["negative-users", "string-users", "string-nofile", "overrides-not-a-dict", "nofile-below-budget"],
)
def test_bad_input_fails_naming_the_problem_and_changes_nothing(host, extra_vars, named) -> None:
    before = _state(host)
    rc, out = _playbook("-e", json.dumps(extra_vars))
    assert rc != 0
    messages = _failure_messages(out)
    assert any(named in m for m in messages), messages
    (name,) = out["stats"]
    assert out["stats"][name]["changed"] == 0
    assert _state(host) == before
