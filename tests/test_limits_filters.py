"""The limits role's arithmetic (roles/limits/filter_plugins/limits.py)."""

import importlib.util
from pathlib import Path

import pytest

PLUGIN = Path(__file__).resolve().parents[1] / "roles" / "limits" / "filter_plugins" / "limits.py"
_spec = importlib.util.spec_from_file_location("limits_filters", PLUGIN)
limits = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(limits)

PID1_LIMITS = """Limit                     Soft Limit           Hard Limit           Units
Max processes             unlimited            unlimited            processes
Max open files            {soft}                {hard}                files
"""


# The README's worked example, 1000 users x 2 notebooks x 3 sockets x 2 hops (budget 12000); the
# Molecule scenario `limits` checks the drop-in against it too.
REFERENCE_1000_USERS = {
    "net.ipv4.ip_forward": "1",
    "net.core.somaxconn": "4096",
    "net.ipv4.tcp_max_syn_backlog": "8192",
    "net.core.netdev_max_backlog": "8192",
    "net.ipv4.ip_local_port_range": "32768 65535",
    "net.ipv4.neigh.default.gc_thresh1": "1024",
    "net.ipv4.neigh.default.gc_thresh2": "2048",
    "net.ipv4.neigh.default.gc_thresh3": "4096",
    "kernel.pid_max": "65536",
    "fs.inotify.max_user_instances": "4096",
    "fs.inotify.max_user_watches": "1048576",
    "net.netfilter.nf_conntrack_max": "262144",
    "kernel.keys.maxkeys": "4096",
    "kernel.keys.maxbytes": "4096000",
    "fs.nr_open": "1048576",
    "fs.file-max": "4096000",
}


def _status(cap_eff: str) -> str:
    return f"Name:\tsystemd\nCapInh:\t0000000000000000\nCapEff:\t{cap_eff}\nCapBnd:\t{cap_eff}\n"


def test_worked_example_of_the_story() -> None:
    # PyData at Strata: 110 users, 2 notebooks, 3 websockets, nginx -> CHP -> container.
    assert limits.fd_budget(110, 2, 3, 2) == 1320
    assert limits.fd_budget(110, 2, 3, 2) > 1024


def test_budget_for_the_reference_host() -> None:
    assert limits.fd_budget(1000) == 12000
    assert limits.fd_budget("1000", "2", "3", "2") == 12000


@pytest.mark.parametrize(
    ("args", "named"),
    [
        ((-5,), "limits_users"),
        (("many",), "limits_users"),
        ((0,), "limits_users"),
        ((True,), "limits_users"),
        ((10, 0), "limits_notebooks_per_user"),
        ((10, 2, None), "limits_sockets_per_notebook"),
        ((10, 2, 3, "x"), "limits_proxy_hops"),
    ],
)
def test_bad_numbers_name_the_variable(args, named) -> None:
    with pytest.raises(ValueError, match=named):
        limits.fd_budget(*args)


def test_sysctl_for_the_reference_host() -> None:
    assert limits.sysctl_for_users(1000) == REFERENCE_1000_USERS


def test_sysctl_grows_with_users_and_keeps_kernel_minimums() -> None:
    small, big = limits.sysctl_for_users(10), limits.sysctl_for_users(5000)
    assert small["net.core.somaxconn"] == "4096"  # never below the kernel's default
    assert small["net.ipv4.neigh.default.gc_thresh1"] == "128"
    assert small["kernel.keys.maxkeys"] == "200"
    assert small["net.ipv4.ip_local_port_range"] == "32768 65535"
    assert big["net.core.somaxconn"] == "32768"
    assert big["net.ipv4.neigh.default.gc_thresh3"] == "32768"
    # 5000 users need 120000 ports: the range opens down to its floor, above the service ports.
    assert big["net.ipv4.ip_local_port_range"] == "10240 65535"
    thresholds = [int(big[f"net.ipv4.neigh.default.gc_thresh{i}"]) for i in (1, 2, 3)]
    assert thresholds == sorted(thresholds)


def test_nr_open_follows_nofile_within_the_kernel_maximum() -> None:
    assert limits.sysctl_for_users(1000, nofile=4194304)["fs.nr_open"] == "4194304"
    assert limits.sysctl_for_users(1000, nofile=2**31)["fs.nr_open"] == str(limits.NR_OPEN_MAX)


def test_parse_sysctl_normalises_multi_value_keys() -> None:
    text = "net.core.somaxconn = 4096\nnet.ipv4.ip_local_port_range = 32768\t60999\n"
    assert limits.parse_sysctl(text) == {
        "net.core.somaxconn": "4096",
        "net.ipv4.ip_local_port_range": "32768 60999",
    }


def test_ceiling_of_a_test_host_without_cap_sys_resource() -> None:
    # CapEff of a Docker test host here: no bit 24.
    ceiling = limits.nofile_ceiling(
        PID1_LIMITS.format(soft=20000, hard=20000), _status("00000000a82435fb"), "1048576\n"
    )
    assert ceiling["ceiling"] == 20000
    assert not ceiling["cap_sys_resource"]
    assert "PID 1" in ceiling["capped_by"]


def test_ceiling_of_a_real_host_is_nr_open() -> None:
    # systemd on a real host: full capabilities, its own hard limit does not bind its children.
    ceiling = limits.nofile_ceiling(
        PID1_LIMITS.format(soft=1024, hard=4096), _status("000001ffffffffff"), 1073741816
    )
    assert ceiling["ceiling"] == 1073741816
    assert ceiling["capped_by"] == "fs.nr_open"


def test_ceiling_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="Max open files"):
        limits.nofile_ceiling("nothing", _status("0"), 1)


def test_proc_nofile_reads_soft_and_hard() -> None:
    assert limits.proc_nofile(PID1_LIMITS.format(soft=1024, hard=524288)) == {"soft": 1024, "hard": 524288}


def test_proc_nofile_reads_unlimited_as_the_kernel_maximum() -> None:
    parsed = limits.proc_nofile(PID1_LIMITS.format(soft=4096, hard="unlimited"))
    assert parsed == {"soft": 4096, "hard": limits.NR_OPEN_MAX}


def test_proc_nofile_names_the_file_it_could_not_read() -> None:
    with pytest.raises(ValueError, match="/proc/1234/limits"):
        limits.proc_nofile("Max processes  1  1  processes\n", "/proc/1234/limits")


def test_ceiling_with_an_unlimited_pid1_is_nr_open() -> None:
    ceiling = limits.nofile_ceiling(
        PID1_LIMITS.format(soft="unlimited", hard="unlimited"), _status("00000000a82435fb"), 1048576
    )
    assert ceiling["ceiling"] == 1048576
    assert ceiling["pid1_hard"] == limits.NR_OPEN_MAX


WANTED = {
    "net.core.somaxconn": "4096",
    "kernel.pid_max": "65536",
    "net.ipv4.ip_local_port_range": "32768 65535",
}
RUNNING = {
    "net.core.somaxconn": "4096",
    "kernel.pid_max": "4194304",
    "net.ipv4.ip_local_port_range": "32768 60999",
}


def test_plan_on_a_read_only_test_host() -> None:
    plan = limits.sysctl_plan(
        WANTED, RUNNING, floors=["net.core.somaxconn", "kernel.pid_max"], container="docker"
    )
    assert plan["file"] == {"net.core.somaxconn": "4096", "net.ipv4.ip_local_port_range": "32768 65535"}
    assert plan["apply"] == {}
    assert plan["report"]["net.core.somaxconn"] == "in force: 4096"
    assert plan["report"]["kernel.pid_max"].startswith("not written: running value 4194304")
    assert plan["report"]["net.ipv4.ip_local_port_range"].startswith("skipped: /proc/sys is read-only")


def test_plan_in_a_writable_container_applies_only_namespaced_keys() -> None:
    running = {**RUNNING, "net.core.somaxconn": "128", "kernel.pid_max": "32768"}
    plan = limits.sysctl_plan(
        WANTED,
        running,
        floors=["kernel.pid_max"],
        netns_keys=["net.core.somaxconn", "net.ipv4.ip_local_port_range"],
        proc_sys_writable=True,
        container="lxc",
    )
    assert plan["apply"] == {"net.core.somaxconn": "4096", "net.ipv4.ip_local_port_range": "32768 65535"}
    assert plan["report"]["kernel.pid_max"].startswith("skipped: host-global key inside a lxc container")
    assert plan["file"]["kernel.pid_max"] == "65536"


def test_plan_on_a_real_host_applies_what_differs_and_is_idempotent() -> None:
    plan = limits.sysctl_plan(WANTED, {**RUNNING, "kernel.pid_max": "32768"}, proc_sys_writable=True)
    assert plan["apply"] == {"kernel.pid_max": "65536", "net.ipv4.ip_local_port_range": "32768 65535"}
    again = limits.sysctl_plan(WANTED, {**RUNNING, **plan["apply"]}, proc_sys_writable=True)
    assert again["apply"] == {}
    assert again["file"] == plan["file"]


def test_plan_writes_module_keys_only_where_loaded() -> None:
    wanted = {"net.netfilter.nf_conntrack_max": "262144"}
    absent = limits.sysctl_plan(wanted, {}, optional=wanted)
    assert absent["file"] == {}
    assert absent["report"]["net.netfilter.nf_conntrack_max"].startswith("not written: absent")
    loaded = limits.sysctl_plan(wanted, {"net.netfilter.nf_conntrack_max": "65536"}, optional=wanted)
    assert loaded["file"] == wanted
    assert loaded["optional"] == ["net.netfilter.nf_conntrack_max"]


def test_plan_tells_a_missing_key_on_a_real_host_from_a_hidden_one_in_a_container() -> None:
    wanted = {"net.core.netdev_max_backlog": "8192", "vm.no_such_key": "1"}
    real = limits.sysctl_plan(wanted, {"net.core.netdev_max_backlog": "1000"}, proc_sys_writable=True)
    assert real["report"]["vm.no_such_key"].startswith("skipped: this kernel has no such key")
    assert real["apply"] == {"net.core.netdev_max_backlog": "8192"}
    hidden = limits.sysctl_plan(wanted, {}, container="docker")
    assert hidden["report"]["net.core.netdev_max_backlog"].startswith(
        "skipped: not visible in this container"
    )
    assert hidden["file"] == {"net.core.netdev_max_backlog": "8192", "vm.no_such_key": "1"}
