"""The GCS node table: heartbeats keep nodes alive, silence kills them, the view follows."""
from juno.gcs.node_table import UNKNOWN_NODE, NodeTable


def node(nid: str, cpus: float = 2.0) -> dict:
    return {"node_id": nid, "address": f"ipc:///tmp/{nid}", "resources": {"CPU": cpus}}


def test_heartbeat_sends_the_view_only_when_it_changed():
    table = NodeTable(death_timeout_s=5)
    table.register(node("a"))
    version, view = table.heartbeat("a", {"CPU": 2.0}, [], -1)
    assert set(view) == {"a"} and view["a"]["available"] == {"CPU": 2.0}
    assert table.heartbeat("a", {"CPU": 2.0}, [], version) == (version, None)
    table.register(node("b"))
    new_version, view = table.heartbeat("a", {"CPU": 1.0}, [{"CPU": 1.0}], version)
    assert new_version > version and set(view) == {"a", "b"} and view["a"]["available"] == {"CPU": 1.0}
    assert table.nodes["a"]["demand"] == [{"CPU": 1.0}]


def test_silent_nodes_expire_and_dead_nodes_are_unknown():
    table = NodeTable(death_timeout_s=5)
    table.register(node("a"))
    table.register(node("b"))
    table.nodes["a"]["last_heartbeat"] -= 10
    assert table.expired() == ["a"]
    dead = table.mark_dead("a", "silent")
    assert dead["death_reason"] == "silent" and not dead["alive"] and dead["end_time"]
    assert table.mark_dead("a", "again") is None  # declared once
    assert table.expired() == [] and [n["node_id"] for n in table.alive()] == ["b"]
    assert set(table.view()) == {"b"}
    assert table.heartbeat("a", {}, [], -1) == UNKNOWN_NODE
    assert table.heartbeat("never-registered", {}, [], -1) == UNKNOWN_NODE
