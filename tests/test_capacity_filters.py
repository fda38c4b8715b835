"""The capacity plan's arithmetic (playbooks/filter_plugins/capacity.py): the OnMetal reference host
against figures computed by hand, the host checks of the preflight, and a host read from facts."""

import importlib.util
from pathlib import Path

import pytest

PLUGIN = Path(__file__).resolve().parents[1] / "playbooks" / "filter_plugins" / "capacity.py"
_spec = importlib.util.spec_from_file_location("capacity_filters", PLUGIN)
capacity = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(capacity)

# inventories/rackspace as a host not yet bought: 512 GB, 24 cores, $1,600 a month.
ONMETAL = {
    "plan_memory_mb": 524288,
    "plan_cores": 24,
    "plan_price_month": 1600,
    "plan_pid_max": 4194304,
    "plan_distribution": "Debian",
    "plan_distribution_version": "12",
    "tmpnb_pool_size": 150,
    "limits_users": 1000,
}


def onmetal(**overrides: object) -> dict:
    values = {**ONMETAL, **overrides}
    return capacity.capacity_plan(capacity.capacity_host_from_inventory(values), values)


def test_the_onmetal_host_by_hand() -> None:
    plan = onmetal()
    mem, cpu, fds = plan["memory"], plan["cpu"], plan["fds"]
    # (524288 MB - 12288 MB reserve) / 512 MB = 1000 slices, and they fill the host exactly.
    assert (mem["capacity"], mem["capacity_from"], mem["needed_mb"]) == (1000, "memory", 524288)
    assert (mem["pool"], mem["users"], mem["reserve_mb"], mem["slice_mb"]) == (150, 1000, 12288, 512)
    # 24 cores / 1000 users = 0.024 core each; weight 1024 x 24 / 1000 = 24
    # (cgroup v2: 1 + 22 x 9999 // 262142 = 1).
    assert (cpu["cores_per_user"], cpu["shares"], cpu["shares_from"]) == (0.024, 24, "derived")
    assert cpu["weight_v2"] == 1
    assert cpu["cap_cpus"] is None
    # 1000 users x 2 notebooks x 3 sockets x 2 hops = 12000 descriptors; nginx gets as many connections.
    assert (fds["budget"], fds["per_user"], fds["nginx_worker_connections"]) == (12000, 12, 12000)
    assert fds["users_covered"] == 1048576 // 12
    # 256 tasks x 1000 containers + 4096 for the host, against Debian 12's pid_max.
    assert plan["pids"] == {"per_container": 256, "needed": 260096, "pid_max": 4194304, "host_tasks": 4096}
    # Two ports per descriptor of the budget (one in use, one in TIME_WAIT) in 32768-65535.
    assert plan["ports"] == {"needed": 24000, "range": "32768 65535", "available": 32768}
    assert plan["bridges"] == {
        "ports_per_bridge": 1023,
        "ports_needed": 1000,
        "per_network": 1000,
        "networks": 1,
        "max_networks": 64,
    }
    assert plan["neighbours"] == {"needed": 1001, "gc_thresh2": 2048, "gc_thresh3": 4096}
    # 2 images x 2048 MB + 3 static copies x 64 MB + 1000 visitors x (10 MB x 3 log files).
    assert plan["disk"]["needed_mb"] == 4096 + 128 + 30000
    # $1,600 / 1000 users = $1.60 per user per month.
    assert plan["cost"]["per_user_month"] == 1.6
    assert capacity.capacity_problems(plan) == []


def test_the_table_shows_every_item_at_a_glance() -> None:
    lines = capacity.capacity_table(onmetal(), "onmetal-1")
    text = "\n".join(lines)
    for label in ("slices / users", "pool", "memory", "cpu", "open files", "processes", "ephemeral ports"):
        assert label in text
    for label in ("bridges", "neighbours", "disk", "cost"):
        assert label in text
    assert "onmetal-1 from inventory: 512 GB, 24 cores" in lines[0]
    assert "1,000 slices (memory) for 1,000 users" in text
    assert "cpu_shares 24" in text
    assert "$1,600/month = $1.60/user/month" in text
    assert "SHORT" not in text


def test_cpu_shares() -> None:
    assert capacity.cpu_shares(24, 1000) == 24
    assert capacity.cpu_shares(2, 6) == 341  # the local test host
    assert capacity.cpu_shares(64, 10) == 1024  # never above Docker's default
    assert capacity.cpu_shares(1, 100000) == 2  # never below Docker's minimum
    assert onmetal(tmpnb_cpu_shares=512)["cpu"]["shares"] == 512
    assert onmetal(tmpnb_cpus=0.5)["cpu"]["cap_cpus"] == 0.5


def test_capacity_set_by_the_inventory_wins_and_more_bridges_show() -> None:
    plan = onmetal(tmpnb_capacity=2000, plan_memory_mb=2 * 524288)
    assert (plan["memory"]["capacity"], plan["memory"]["capacity_from"]) == (2000, "tmpnb_capacity")
    assert plan["bridges"]["networks"] == 2  # the orchestrator spreads them over tmpnb-tmpnb-0 and -1
    line = next(x for x in capacity.capacity_table(plan) if x.startswith("bridges"))
    assert "2 Docker networks" in line and "[ok]" in line, line


def test_a_host_not_yet_bought_needs_its_size() -> None:
    with pytest.raises(ValueError, match="plan_memory_mb, plan_cores"):
        capacity.capacity_host_from_inventory({"plan_memory_mb": 0})
    with pytest.raises(ValueError, match="plan_cores"):
        capacity.capacity_host_from_inventory({"plan_memory_mb": 1024, "plan_cores": "many"})


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        # 1000 x 512 + 12288 = 524288 MB on a 256 GB host: (262144 - 12288) // 512 = 488 fit.
        (
            {"tmpnb_capacity": 1000, "plan_memory_mb": 262144},
            "= 524288 MB, the host has 262144 MB (plan_memory_mb): set tmpnb_capacity to at most 488",
        ),
        ({"plan_memory_mb": 8192}, "holds no slice of tmpnb_slice_mb 512 MB"),
        # 20000 open files cover 20000 // 12 = 1666 users of the 1000 x 12 budget... and 2000 do not fit.
        (
            {"limits_users": 2000, "plan_nofile_ceiling": 20000},
            "fd budget is 24000 (2000 users (limits_users) x 12 descriptors each) but units get 20000",
        ),
        ({"limits_users": 2000, "plan_nofile_ceiling": 20000}, "set limits_users to at most 1666"),
        ({"limits_nofile": 4096}, "covers 341 users"),
        ({"plan_disk_free_mb": 20000}, "20000 MB free under /var/lib/docker"),
        ({"plan_disk_free_mb": 20000}, "need 34224 MB"),
        ({"plan_distribution": "CentOS", "plan_distribution_version": "7"}, "plan_supported lists Debian 12"),
        ({"plan_distribution_version": "11"}, "Debian 11 (ansible_distribution) is not supported"),
        ({"plan_kernel": "4.19.0-27-amd64"}, "older than plan_kernel_min 5.10"),
    ],
)
def test_a_host_that_cannot_hold_its_plan_is_named(overrides: dict, named: str) -> None:
    problems = capacity.capacity_problems(onmetal(**overrides))
    assert any(named in p for p in problems), problems


PID1_LIMITS = "Limit  Soft Limit  Hard Limit  Units\nMax open files  20000  20000  files\n"
PID1_STATUS = "Name:\tsystemd\nCapEff:\t00000000a80425fb\n"  # no CAP_SYS_RESOURCE
FACTS = {
    "memtotal_mb": 24105,
    "processor_vcpus": 2,
    "swaptotal_mb": 0,
    "distribution": "Debian",
    "distribution_major_version": "12",
    "kernel": "6.1.0-28-amd64",
    "mounts": [
        {"mount": "/", "size_available": 100 * 1048576 * 1024},
        {"mount": "/var/lib/docker", "size_available": 3000 * 1048576},
    ],
}


def facts_files(**overrides: object) -> dict:
    files = {
        "pid1_limits": PID1_LIMITS,
        "pid1_status": PID1_STATUS,
        "nr_open": "1048576\n",
        "pid_max": "4194304\n",
        "cgroup_controllers": "cpuset cpu io memory pids\n",
        "cgroup_v2": True,
        "memory_v1": False,
        "swap_accounting": True,
    }
    return {**files, **overrides}


def test_a_host_from_its_facts() -> None:
    host = capacity.capacity_host_from_facts(FACTS, facts_files())
    assert host["source"] == "facts"
    assert (host["memory_mb"], host["cores"]) == (24105, 2)
    assert (host["nofile_ceiling"], host["pid_max"]) == (20000, 4194304)
    # The longest mount point holding /var/lib/docker.
    assert (host["disk_mount"], host["disk_free_mb"]) == ("/var/lib/docker", 3000)
    assert (host["cgroup"], host["memory_controller"]) == ("v2", True)
    local = {"tmpnb_capacity": 6, "tmpnb_pool_size": 2, "limits_users": 6}
    plan = capacity.capacity_plan(host, local)
    assert (plan["memory"]["capacity"], plan["cpu"]["shares"], plan["fds"]["effective"]) == (6, 341, 20000)
    # 4096 + 128 + 6 x 30 = 4404 MB do not fit 3000 MB free.
    assert capacity.capacity_problems(plan) == [
        "disk: 3000 MB free under /var/lib/docker (/var/lib/docker) but images 4096 MB (plan_images_kept x "
        "plan_image_mb) + static copies 128 MB (nginx_static_keep + 2 x plan_static_mb) + 6 visitors x 30 MB "
        "of logs (docker_log_max_size x docker_log_max_file) need 4404 MB"
    ]


@pytest.mark.parametrize(
    ("files", "swap", "named"),
    [
        ({"cgroup_controllers": "cpuset cpu io pids"}, 0, "the memory controller is not available"),
        ({"cgroup_v2": False, "memory_v1": False, "cgroup_controllers": ""}, 0, "memory controller"),
        ({"swap_accounting": False}, 2048, "2048 MB swap (ansible_swaptotal_mb) but no swap accounting"),
    ],
)
def test_cgroup_checks(files: dict, swap: int, named: str) -> None:
    facts = {**FACTS, "swaptotal_mb": swap, "mounts": []}
    plan = capacity.capacity_plan(capacity.capacity_host_from_facts(facts, facts_files(**files)), {})
    assert any(named in p for p in capacity.capacity_problems(plan))


def test_cgroup_v1_with_memory_and_no_swap_passes() -> None:
    files = facts_files(cgroup_v2=False, memory_v1=True, cgroup_controllers="", swap_accounting=False)
    host = capacity.capacity_host_from_facts({**FACTS, "mounts": []}, files)
    assert (host["cgroup"], host["memory_controller"]) == ("v1", True)
    plan = capacity.capacity_plan(host, {"tmpnb_capacity": 6, "limits_users": 6})
    assert capacity.capacity_problems(plan) == []


def test_role_defaults_fill_what_the_inventory_leaves_unset() -> None:
    values = capacity.plan_inputs({"tmpnb_slice_mb": 256})
    assert values["tmpnb_slice_mb"] == 256
    assert values["tmpnb_memory_reserve_mb"] == 12288  # roles/tmpnb/defaults
    assert values["docker_log_max_size"] == "10m"  # roles/docker/defaults
    assert values["plan_image_mb"] == 2048  # roles/plan/defaults


@pytest.mark.parametrize(("text", "mb"), [("10m", 10), ("1g", 1024), ("512k", 0.5), ("10MB", 10)])
def test_size_mb(text: str, mb: float) -> None:
    assert capacity.size_mb("x", text) == mb


def test_bad_sizes_name_the_variable() -> None:
    with pytest.raises(ValueError, match="docker_log_max_size"):
        onmetal(docker_log_max_size="lots")
    with pytest.raises(ValueError, match="tmpnb_slice_mb"):
        onmetal(tmpnb_slice_mb=0)


def test_slices_carved_from_memory_unless_set() -> None:
    assert capacity.slices(0, 524288, 12288, 512) == 1000
    assert capacity.slices(6, 24105, 12288, 512) == 6
    assert capacity.slices(0, 8192, 12288, 512) == 0
    with pytest.raises(ValueError, match="tmpnb_slice_mb"):
        capacity.slices(0, 8192, 0, 0)
