"""The reconciliation diff: adopt living containers, restore lost routes, drop orphans."""

from __future__ import annotations

from tmpnb.docker_spec import parse_container
from tmpnb.pool import Slot, State
from tmpnb.reconcile import (
    DATA_HANDED_OUT,
    DATA_INSTANCE,
    DATA_STATE,
    ContainerInfo,
    RouteInfo,
    diff,
    parse_routes,
    parse_time,
    route_data,
)

INST = "inst"


def container(
    uid: str, running: bool = True, target: str | None = None, created: float = 5.0
) -> ContainerInfo:
    return ContainerInfo(
        id=f"c-{uid}",
        user_id=uid,
        path=f"/user/{uid}",
        running=running,
        target=target if target is not None else f"http://10.0.0.{len(uid)}:8888",
        image="img",
        created=created,
    )


def route(c: ContainerInfo, state: str, handed_out: float | None = None) -> RouteInfo:
    data = {DATA_INSTANCE: INST, DATA_STATE: state, DATA_HANDED_OUT: handed_out, "target": c.target}
    return RouteInfo(c.path, c.target or "", data, None)


def known(c: ContainerInfo, state: State, handed_out: float | None = None) -> Slot:
    return Slot(c.user_id, c.path, c.image, c.created, state, c.id, c.target or "", handed_out)


def test_nothing_to_do_when_all_agree() -> None:
    a, b = container("a"), container("bb")
    routes = {a.path: route(a, "pooled"), b.path: route(b, "in_use", 7.0)}
    mem = {"a": known(a, State.POOLED), "bb": known(b, State.IN_USE, 7.0)}
    assert diff([a, b], routes, mem, INST).empty


def test_restart_adopts_from_route_data() -> None:
    a, b = container("a"), container("bb")
    plan = diff([a, b], {a.path: route(a, "pooled"), b.path: route(b, "in_use", 7.0)}, {}, INST)
    adopted = {s.user_id: (s.state, s.handed_out) for s in plan.adopt}
    assert adopted == {"a": (State.POOLED, None), "bb": (State.IN_USE, 7.0)}
    assert plan.add_routes == [] and plan.delete_routes == [] and plan.remove_containers == []


def test_unknown_living_container_without_route_is_kept_as_in_use() -> None:
    # both CHP and the orchestrator restarted: a visitor may be on it, never hand it out again
    a = container("a", created=42.0)
    plan = diff([a], {}, {}, INST)
    (slot,) = plan.adopt
    assert slot.state is State.IN_USE and slot.handed_out == 42.0
    assert plan.add_routes == [slot]


def test_chp_restart_readds_known_routes_with_their_state() -> None:
    a, b = container("a"), container("bb")
    mem = {"a": known(a, State.POOLED), "bb": known(b, State.IN_USE, 7.0)}
    plan = diff([a, b], {}, mem, INST)
    assert plan.missing_routes == 2
    assert {s.user_id for s in plan.add_routes} == {"a", "bb"}
    assert route_data(mem["bb"], INST)[DATA_HANDED_OUT] == 7.0


def test_dead_containers_removed_and_their_routes_dropped() -> None:
    a = container("a", running=False)
    plan = diff([a], {a.path: route(a, "in_use", 1.0)}, {"a": known(a, State.IN_USE, 1.0)}, INST)
    assert plan.remove_containers == [a]
    assert plan.delete_routes == [a.path]
    assert plan.forget == ["a"]


def test_orphan_routes_deleted_but_not_those_of_booting_slots() -> None:
    gone, booting = container("gone"), container("boot")
    routes = {gone.path: route(gone, "pooled"), booting.path: route(booting, "pooled")}
    mem = {"boot": known(booting, State.STARTING)}
    plan = diff([], routes, mem, INST)
    assert plan.delete_routes == [gone.path]


def test_slots_owned_by_a_task_are_left_alone() -> None:
    a = container("a", running=False)
    plan = diff([a], {}, {"a": known(a, State.REMOVING)}, INST)
    assert plan.empty


def test_memory_slot_whose_container_vanished_is_forgotten() -> None:
    a = container("a")
    plan = diff([], {a.path: route(a, "in_use", 1.0)}, {"a": known(a, State.IN_USE, 1.0)}, INST)
    assert plan.forget == ["a"]
    assert plan.delete_routes == [a.path]


def test_lost_hand_out_record_is_rewritten() -> None:
    a = container("a")
    plan = diff([a], {a.path: route(a, "pooled")}, {"a": known(a, State.IN_USE, 9.0)}, INST)
    assert [s.user_id for s in plan.add_routes] == ["a"]


def test_changed_target_is_rerouted() -> None:
    a = container("a", target="http://10.0.0.99:8888")
    old = known(container("a"), State.POOLED)
    plan = diff([a], {a.path: route(container("a"), "pooled")}, {"a": old}, INST)
    assert plan.retarget == {"a": "http://10.0.0.99:8888"}
    assert plan.add_routes == [old]


def test_parse_routes_keeps_only_ours() -> None:
    raw = {
        "/": {"target": "http://127.0.0.1:9999", "last_activity": "2024-01-01T00:00:00.000Z"},
        "/user/a": {"target": "http://x:1", DATA_INSTANCE: INST, "last_activity": "2024-01-01T00:00:10.500Z"},
        "/user/b": {"target": "http://x:2", DATA_INSTANCE: "other"},
        "/weird": "not a dict",
    }
    routes = parse_routes(raw, INST)
    assert list(routes) == ["/user/a"]
    assert routes["/user/a"].last_activity == parse_time("2024-01-01T00:00:00Z") + 10.5
    assert parse_time("garbage") is None and parse_time(None) is None


def test_parse_container_needs_our_labels() -> None:
    labels = {
        "tmpnb.instance": INST,
        "tmpnb.user_id": "a",
        "tmpnb.user_path": "/user/a/",
        "tmpnb.created": "12.5",
    }
    raw = {
        "Id": "abc",
        "State": "running",
        "Labels": labels,
        "NetworkSettings": {"Networks": {"net": {"IPAddress": "10.1.2.3"}}},
    }
    c = parse_container(raw, INST, "net", 8888)
    assert c == ContainerInfo("abc", "a", "/user/a", True, "http://10.1.2.3:8888", "", 12.5, "net")
    assert (
        parse_container({**raw, "Labels": {**labels, "tmpnb.instance": "other"}}, INST, "net", 8888) is None
    )
    assert parse_container({**raw, "Labels": {}}, INST, "net", 8888) is None
    assert parse_container(raw, INST, "othernet", 8888).target is None


def test_running_container_off_our_network_is_never_removed() -> None:
    # e.g. the operator changed `network`: living sessions are not killed for it
    a = container("a")
    off = ContainerInfo(a.id, a.user_id, a.path, True, None, "img", 1.0)
    plan = diff([off], {a.path: route(a, "in_use", 1.0)}, {}, INST)
    assert plan.unroutable == [off]
    assert plan.remove_containers == [] and plan.delete_routes == [] and plan.adopt == []


def test_target_port_comes_from_the_containers_own_label() -> None:
    # container_port may change on reload; old containers keep listening where they started
    raw = {
        "Id": "abc",
        "State": "running",
        "Labels": {
            "tmpnb.instance": INST,
            "tmpnb.user_id": "a",
            "tmpnb.user_path": "/user/a/",
            "tmpnb.port": "8000",
        },
        "NetworkSettings": {"Networks": {"net": {"IPAddress": "10.1.2.3"}}},
    }
    assert parse_container(raw, INST, "net", 8888).target == "http://10.1.2.3:8000"
