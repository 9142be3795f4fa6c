"""The dashboard's event hub: per-key diffs, pause/resume, events, no polling without listeners.

The hub takes any object with ``snapshot()``; a scripted one stands in for the cluster so
the hub's own logic (what it sends, when it polls) is what is tested. The payloads the
real StateService builds are tested against clusters in
tests/integration/test_dashboard_state.py.
"""
from __future__ import annotations

import asyncio
import copy
import threading
import time

import pytest

from juno.dashboard.event_hub import KEYS, EventHub, derive_events
from juno.dashboard.state_service import Unreachable

INTERVAL = 0.05


def base_snapshot() -> dict:
    node = {"node_id": "aa" * 14, "alive": True, "state": "ALIVE", "death_reason": None, "ip": "10.0.0.1",
            "is_head": True}
    return {
        "summary": {"address": "127.0.0.1:1", "time": 1.0, "nodes": {"alive": 1, "dead": 0}},
        "nodes": {"nodes": [node]},
        "tasks": {"by_state": {}, "by_function": [], "finished_total": 0, "failed_total": 0, "running": [],
                  "failed": []},
        "actors": {"actors": [{"actor_id": "bb" * 16, "class_name": "Counter", "name": "c", "state": "ALIVE",
                               "num_restarts": 0, "max_restarts": 2, "node_id": "aa" * 14,
                               "death_cause": None}]},
        "placement_groups": {"placement_groups": []},
        "jobs": {"jobs": [{"job_id": "01000000", "status": "RUNNING", "entrypoint": "train.py"}]},
        "library_runs": {"runs": []},
    }


class ScriptedService:
    """Gives the scripted snapshots in turn (the last one forever); an exception in the script is raised."""

    address = "127.0.0.1:1"

    def __init__(self, script: list):
        self.script = list(script)
        self.calls = 0
        self.lock = threading.Lock()

    def snapshot(self) -> dict:
        with self.lock:
            self.calls += 1
            item = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(item, Exception):
            raise item
        out = copy.deepcopy(item)
        out["summary"]["time"] = time.time()  # the clock alone is no change
        return out

    def append(self, item) -> None:
        with self.lock:
            self.script.append(item)


async def wait_until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s: {predicate.__doc__ or predicate}")
        await asyncio.sleep(0.005)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def messages_of(received: list, kind: str) -> list:
    return [m for m in received if m["type"] == kind]


# ============================================================================ updates and diffs
def test_first_update_has_every_key_then_only_changed_keys():
    async def main():
        snap1 = base_snapshot()
        snap2 = base_snapshot()
        snap2["tasks"]["by_state"] = {"RUNNING": 1}
        service = ScriptedService([snap1, snap1, snap2])
        hub = EventHub(service, interval=INTERVAL)
        got: list = []
        sub = hub.subscribe(got.append)
        assert got[0] == {"type": "hello", "address": "127.0.0.1:1", "interval": INTERVAL}
        await wait_until(lambda: len(messages_of(got, "update")) >= 2)
        first, second = messages_of(got, "update")[:2]
        assert set(first["data"]) == set(KEYS)
        assert first["seq"] == 1 and second["seq"] == 2
        # snap1 again (a new clock only) sent nothing; snap2 changed the tasks alone
        assert set(second["data"]) == {"tasks"}
        assert second["data"]["tasks"]["by_state"] == {"RUNNING": 1}
        assert service.calls >= 3
        sub.close()
        hub.close()

    run(main())


def test_clients_share_one_poll_and_each_gets_a_full_first_update():
    async def main():
        service = ScriptedService([base_snapshot()])
        hub = EventHub(service, interval=INTERVAL)
        a: list = []
        b: list = []
        hub.subscribe(a.append)
        await wait_until(lambda: messages_of(a, "update"))
        hub.subscribe(b.append)
        await wait_until(lambda: messages_of(b, "update"))
        assert set(messages_of(b, "update")[0]["data"]) == set(KEYS)
        polls = service.calls
        await wait_until(lambda: service.calls >= polls + 5)
        # both listen, yet one poll per interval: about (elapsed / interval) polls, never two per tick
        assert len(messages_of(a, "update")) == 1 and len(messages_of(b, "update")) == 1
        hub.close()

    run(main())


# ============================================================================ pause, resume, no listeners
def test_no_polling_without_active_subscribers():
    async def main():
        service = ScriptedService([base_snapshot()])
        hub = EventHub(service, interval=INTERVAL)
        await asyncio.sleep(0)  # the loop runs; nothing subscribed: nothing polls
        assert service.calls == 0 and not hub.polling
        got: list = []
        sub = hub.subscribe(got.append)
        await wait_until(lambda: service.calls >= 2)
        sub.pause()
        await wait_until(lambda: not hub.polling)
        paused_at = service.calls
        updates = len(messages_of(got, "update"))
        # The poller has exited (not merely idle): it cannot call the service any more.
        assert hub._task.done()
        sub.resume()
        assert hub.polling
        await wait_until(lambda: len(messages_of(got, "update")) > updates)
        resumed = messages_of(got, "update")[updates]
        assert set(resumed["data"]) == set(KEYS), "resume sends a full update"
        assert service.calls >= paused_at
        sub.close()
        await wait_until(lambda: not hub.polling)
        assert hub.subscribers == []
        hub.close()

    run(main())


def test_resume_with_a_fresh_snapshot_sends_it_at_once():
    async def main():
        service = ScriptedService([base_snapshot()])
        hub = EventHub(service, interval=10.0)  # long: the second poll would be far away
        got: list = []
        sub = hub.subscribe(got.append)
        await wait_until(lambda: messages_of(got, "update"))
        sub.pause()
        sub.resume()
        updates = messages_of(got, "update")
        assert len(updates) == 2 and set(updates[1]["data"]) == set(KEYS)
        assert service.calls == 1
        hub.close()

    run(main())


def test_a_failing_send_drops_only_that_subscriber():
    async def main():
        service = ScriptedService([base_snapshot()])
        hub = EventHub(service, interval=INTERVAL)

        def broken(message):
            if message["type"] == "update":
                raise ConnectionError("socket closed")

        good: list = []
        bad = hub.subscribe(broken)
        hub.subscribe(good.append)
        await wait_until(lambda: messages_of(good, "update"))
        await wait_until(lambda: bad.closed)
        assert len(hub.subscribers) == 1
        hub.close()

    run(main())


# ============================================================================ unreachable clusters
def test_unreachable_cluster_sends_one_error_keeps_trying_and_recovers():
    async def main():
        down = Unreachable("The Juno cluster at 127.0.0.1:1 did not answer within 1 s")
        service = ScriptedService([base_snapshot(), down, down, down, base_snapshot()])
        hub = EventHub(service, interval=INTERVAL)
        got: list = []
        hub.subscribe(got.append)
        await wait_until(lambda: len(messages_of(got, "update")) >= 2)
        errors = messages_of(got, "error")
        assert len(errors) == 1 and "did not answer" in errors[0]["error"]
        assert service.calls >= 5
        after = messages_of(got, "update")[1]
        assert set(after["data"]) == set(KEYS), "after an outage the client gets everything again"
        assert got.index(errors[0]) < got.index(after)
        hub.close()

    run(main())


# ============================================================================ events
def test_events_derived_from_snapshot_sequences():
    s0 = base_snapshot()
    s1 = copy.deepcopy(s0)
    new_node = {"node_id": "cc" * 14, "alive": True, "state": "ALIVE", "death_reason": None, "ip": "10.0.0.2"}
    s1["nodes"]["nodes"].append(new_node)
    s1["actors"]["actors"][0]["num_restarts"] = 1
    s1["tasks"]["failed"] = [{"task_id": "dd" * 16, "attempt_number": 0, "func_or_class_name": "train",
                              "job_id": "01000000", "node_id": "aa" * 14, "error_type": "TASK_EXECUTION_EXCEPTION",
                              "error_message": "Traceback...\nValueError: bad batch"}]
    s2 = copy.deepcopy(s1)
    s2["nodes"]["nodes"][1].update(alive=False, state="DEAD", death_reason="the node sent no heartbeat for 30 s")
    s2["actors"]["actors"][0].update(state="DEAD", death_cause="The actor was killed: juno.kill() was called.")
    s2["jobs"]["jobs"][0]["status"] = "SUCCEEDED"

    assert derive_events(None, s0) == []
    events1 = derive_events(s0, s1, now=5.0)
    assert [e["kind"] for e in events1] == ["node_added", "actor_restarted", "task_failed"]
    assert events1[0]["node_id"] == "cc" * 14 and events1[0]["time"] == 5.0
    assert events1[1]["actor_id"] == "bb" * 16 and "restart 1 of 2" in events1[1]["message"]
    assert events1[2]["task_id"] == "dd" * 16 and "ValueError: bad batch" in events1[2]["message"]
    events2 = derive_events(s1, s2)
    assert sorted(e["kind"] for e in events2) == ["actor_died", "job_finished", "node_died"]
    died = next(e for e in events2 if e["kind"] == "node_died")
    assert "no heartbeat" in died["message"]
    assert next(e for e in events2 if e["kind"] == "actor_died")["actor_id"] == "bb" * 16
    assert derive_events(s2, s2) == [], "an unchanged snapshot is no news"


def test_hub_sends_events_between_its_updates():
    async def main():
        s0 = base_snapshot()
        s1 = copy.deepcopy(s0)
        s1["jobs"]["jobs"][0]["status"] = "SUCCEEDED"
        service = ScriptedService([s0, s1])
        hub = EventHub(service, interval=INTERVAL)
        got: list = []
        hub.subscribe(got.append)
        await wait_until(lambda: messages_of(got, "event"))
        event = messages_of(got, "event")[0]["event"]
        assert event["kind"] == "job_finished" and event["job_id"] == "01000000"
        update = messages_of(got, "update")[1]
        assert set(update["data"]) == {"jobs"}
        hub.close()

    run(main())


def test_subscribe_needs_the_loop():
    hub = EventHub(ScriptedService([base_snapshot()]), interval=INTERVAL)
    with pytest.raises(RuntimeError):
        hub.subscribe(lambda m: None)
