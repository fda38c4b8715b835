"""roles/docker on a systemd test host: the engine is up with the kit's daemon settings, its
open-files limit is configured and in force, and containers get the default ulimit and memory limit."""

import json
import shlex
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))

from role_run import check_phase_alone, open_files, recap_changed, run_playbook, unit_property

IMAGE = "tmpnb-docker-test:tiny"


@pytest.fixture(scope="module")
def tiny_image(host):
    """A minimal image imported from the host's own binaries (no registry is reachable)."""
    script = rf"""
set -eu
if docker image inspect {IMAGE} >/dev/null 2>&1; then exit 0; fi
root=$(mktemp -d)
for bin in /bin/sh /usr/bin/cat /usr/bin/sleep; do
  for f in $bin $(ldd $bin | grep -o '/[^ ]*'); do
    mkdir -p "$root$(dirname "$f")"; cp -L "$f" "$root$f"
  done
done
ln -s usr/lib64 "$root/lib64" 2>/dev/null || true
tar -C "$root" -c . | docker import - {IMAGE} >/dev/null
rm -rf "$root"
"""
    host.run_expect([0], f"bash -c {shlex.quote(script)}")
    return IMAGE


def test_docker_service_active(host):
    service = host.service("docker.service")
    assert service.is_running
    assert service.is_enabled


def test_daemon_json_is_the_kits(host):
    config = json.loads(host.file("/etc/docker/daemon.json").content_string)
    assert config["icc"] is False
    assert config["live-restore"] is True
    assert config["userland-proxy"] is False
    assert config["ip-forward"] is True
    assert config["log-driver"] == "json-file"
    assert config["log-opts"] == {"max-size": "10m", "max-file": "3"}
    assert config["default-ulimits"]["nofile"] == {"Name": "nofile", "Soft": 16384, "Hard": 16384}


def test_docker_info_shows_live_restore_and_storage(host):
    info = json.loads(host.check_output("docker info --format '{{json .}}'"))
    assert info["LiveRestoreEnabled"] is True
    assert info["DockerRootDir"] == "/var/lib/docker"
    assert info["Driver"] == "overlay2"
    assert info["CgroupVersion"] == "1"
    # /var/lib/docker is the volume the platform mounts, not the host's overlay root.
    assert host.mount_point("/var/lib/docker").exists


def test_default_bridge_has_icc_disabled(host):
    options = json.loads(host.check_output("docker network inspect bridge --format '{{json .Options}}'"))
    assert options["com.docker.network.bridge.enable_icc"] == "false"


def test_ip_forwarding_stays_on(host):
    assert host.file("/proc/sys/net/ipv4/ip_forward").content_string.strip() == "1"


def test_dropin_limit_nofile_configured_and_effective(host):
    configured = unit_property(host, "docker.service", "LimitNOFILE")
    assert configured == "1048576"
    soft, hard = open_files(host, unit_property(host, "docker.service", "MainPID"))
    ceiling = int(host.check_output("bash -c 'ulimit -Hn'"))
    # The test host caps the hard limit (20000 on these machines): effective = min(configured, ceiling).
    assert int(hard) == min(1048576, ceiling)
    assert int(soft) == min(1048576, ceiling)
    print(f"dockerd open files: configured {configured}, effective {soft}/{hard}, ceiling {ceiling}")


def test_container_gets_default_ulimit(host, tiny_image):
    out = host.check_output(f"docker run --rm {tiny_image} /bin/sh -c 'ulimit -Sn; ulimit -Hn'")
    assert out.split() == ["16384", "16384"]


def test_container_memory_limit_is_honoured(host, tiny_image):
    out = host.check_output(
        f"docker run --rm --memory 512m {tiny_image} /usr/bin/cat /sys/fs/cgroup/memory/memory.limit_in_bytes"
    )
    assert int(out) == 512 * 1024 * 1024


def test_containers_survive_a_dockerd_restart(host, tiny_image):
    name = "tmpnb-docker-test-live"
    host.run(f"docker rm -f {name}")
    host.run_expect([0], f"docker run -d --name {name} {tiny_image} /usr/bin/sleep 600")
    try:
        before = host.check_output(f"docker inspect --format '{{{{.State.Pid}}}}' {name}")
        host.run_expect([0], "systemctl restart docker.service")
        after = host.check_output(
            f"docker inspect --format '{{{{.State.Pid}}}} {{{{.State.Running}}}}' {name}"
        )
        assert after == f"{before} true"
    finally:
        host.run(f"docker rm -f {name}")


@pytest.mark.parametrize(
    ("variable", "value"),
    [("docker_icc", "maybe"), ("docker_container_nofile_hard", "2000000"), ("docker_log_max_size", "ten")],
)
def test_bad_variable_fails_before_any_change(host, variable, value):
    """Bad input stops the role at its argument spec or first assert, naming the variable."""
    _fails_before_any_change(host, variable, value)


def test_container_limit_above_the_host_ceiling_fails_before_any_change(host):
    """Under docker_limit_nofile but above what this host lets dockerd have (roles/limits' ceiling)."""
    ceiling = int(host.check_output("bash -c 'ulimit -Hn'"))
    if ceiling >= 1048576:
        pytest.skip(f"this host's ceiling {ceiling} is not below docker_limit_nofile")
    _fails_before_any_change(host, "docker_container_nofile_hard", str(ceiling + 1), f"at {ceiling}")


def _fails_before_any_change(host, variable, value, *phrases):
    files = ("/etc/docker/daemon.json", "/etc/systemd/system/docker.service.d/tmpnb.conf")
    pid = "systemctl show --property MainPID --value docker.service"
    before = [host.file(f).sha256sum for f in files] + [host.check_output(pid)]
    run = run_playbook("converge.yml", "-e", f"{variable}={value}")
    assert run.returncode != 0
    assert variable in run.stdout + run.stderr
    for phrase in phrases:
        assert phrase in run.stdout + run.stderr
    assert recap_changed(run.stdout) == 0
    assert [host.file(f).sha256sum for f in files] + [host.check_output(pid)] == before


@pytest.mark.parametrize("phase", ["install", "configure", "service"])
def test_one_phase_alone_runs_and_changes_nothing(phase):
    check_phase_alone("converge.yml", phase)
