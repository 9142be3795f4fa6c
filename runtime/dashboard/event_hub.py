"""Live updates for the dashboard's websocket: one poll per cluster, shared by its clients.

An :class:`EventHub` asks its state service for a snapshot once per ``interval`` while
at least one subscriber is active (subscribed and not paused), in an executor (the
snapshot blocks on the cluster), and never when none is: a hidden panel costs the
cluster nothing. Each subscriber gets only the keys whose payload changed since the
last update it got (all of them first, and again after ``resume``), plus events derived
from successive snapshots (a node died, an actor restarted, a task failed...). A cluster
that does not answer gets one ``{"type": "error"}`` per outage per subscriber; polling goes
on, and the next answer sends a full update.

Everything but the snapshot runs on the asyncio loop of the caller (tornado's), so the
hub needs no locks. The HTTP layer keeps one hub per cluster (http_api.ServiceRegistry).
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, Callable

logger = logging.getLogger(__name__)

KEYS = ("summary", "nodes", "tasks", "actors", "placement_groups", "jobs", "library_runs")


# ============================================================================ events
def _event(kind: str, message: str, now: float, **ids: Any) -> dict:
    return {"time": now, "kind": kind, "message": message, **ids}


def derive_events(prev: dict | None, cur: dict, now: float | None = None) -> list[dict]:
    """What happened between two snapshots (none for the first: its past is unknown)."""
    if prev is None:
        return []
    now = time.time() if now is None else now
    out: list[dict] = []
    if "nodes" in prev and "nodes" in cur:
        before = {n["node_id"]: n for n in prev["nodes"]["nodes"]}
        for n in cur["nodes"]["nodes"]:
            old = before.get(n["node_id"])
            where = f"{n['node_id'][:12]} ({n.get('ip')})"
            if n["alive"] and (old is None or not old["alive"]):
                out.append(_event("node_added", f"Node {where} joined the cluster.", now, node_id=n["node_id"]))
            elif not n["alive"] and (old is None or old["alive"]) and old is not None:
                out.append(_event("node_died", f"Node {where} died: {n.get('death_reason') or 'reason unknown'}",
                                  now, node_id=n["node_id"]))
    if "actors" in prev and "actors" in cur:
        before = {a["actor_id"]: a for a in prev["actors"]["actors"]}
        for a in cur["actors"]["actors"]:
            old = before.get(a["actor_id"])
            if old is None:
                continue
            label = f"Actor {a.get('class_name')}" + (f" {a['name']!r}" if a.get("name") else "") + \
                f" ({a['actor_id'][:12]})"
            if a["state"] == "DEAD" and old["state"] != "DEAD":
                out.append(_event("actor_died", f"{label} died: {a.get('death_cause') or 'reason unknown'}", now,
                                  actor_id=a["actor_id"], node_id=a.get("node_id")))
            elif (a.get("num_restarts") or 0) > (old.get("num_restarts") or 0):
                out.append(_event("actor_restarted", f"{label} restarted (restart {a['num_restarts']} of "
                                  f"{'unlimited' if a.get('max_restarts') == -1 else a.get('max_restarts')}).",
                                  now, actor_id=a["actor_id"], node_id=a.get("node_id")))
    if "tasks" in prev and "tasks" in cur:
        seen = {(t["task_id"], t["attempt_number"]) for t in prev["tasks"]["failed"]}
        for t in reversed(cur["tasks"]["failed"]):  # oldest first
            if (t["task_id"], t["attempt_number"]) not in seen:
                last_line = ((t.get("error_message") or "").strip().splitlines() or [""])[-1]
                detail = f"{t.get('error_type')}: {last_line}" if last_line else str(t.get("error_type"))
                out.append(_event("task_failed", f"Task {t['func_or_class_name']} ({t['task_id'][:12]}) failed "
                                  f"({detail})", now, task_id=t["task_id"], job_id=t.get("job_id"),
                                  node_id=t.get("node_id"), error_type=t.get("error_type")))
    if "jobs" in prev and "jobs" in cur:
        before = {j["job_id"]: j for j in prev["jobs"]["jobs"]}
        for j in cur["jobs"]["jobs"]:
            old = before.get(j["job_id"])
            if old is not None and old["status"] == "RUNNING" and j["status"] != "RUNNING":
                out.append(_event("job_finished", f"Job {j['job_id']} ({j.get('entrypoint') or 'driver'}) "
                                  f"finished: {j['status']}.", now, job_id=j["job_id"]))
    return out


def fingerprint(key: str, payload: Any) -> str:
    """What decides whether a key changed: its JSON, less the summary's clock."""
    if key == "summary" and isinstance(payload, dict):
        payload = {k: v for k, v in payload.items() if k != "time"}
    return json.dumps(payload, sort_keys=True, default=str, separators=(",", ":"))


# ============================================================================ subscriptions
class Subscription:
    """One client of a hub. ``send`` gets contract messages (dicts) on the hub's loop."""

    def __init__(self, hub: "EventHub", send: Callable[[dict], None]):
        self._hub = hub
        self._send = send
        self.paused = False
        self.closed = False
        self.seq = 0
        self.sent: dict[str, str] = {}  # key -> fingerprint of what this client has
        self.error_sent = False

    @property
    def active(self) -> bool:
        return not self.paused and not self.closed

    def pause(self) -> None:
        """Stop sending updates (the panel is hidden); the hub stops polling if no one else listens."""
        self.paused = True

    def resume(self) -> None:
        """Send a full update now (from the latest snapshot, when fresh), then changes."""
        if self.closed:
            return
        self.paused = False
        self.sent = {}
        self._hub._resumed(self)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._hub._remove(self)

    def deliver(self, message: dict) -> None:
        if self.closed:
            return
        try:
            self._send(message)
        except Exception:  # noqa: BLE001 - a closed socket: this client is gone
            logger.debug("dashboard subscriber failed; dropping it", exc_info=True)
            self.close()

    def update(self, snapshot: dict, prints: dict[str, str], now: float) -> None:
        """The keys this client lacks, if any."""
        changed = {k: snapshot[k] for k in KEYS if k in snapshot and self.sent.get(k) != prints[k]}
        if not changed:
            return
        self.seq += 1
        self.sent.update({k: prints[k] for k in changed})
        self.deliver({"type": "update", "seq": self.seq, "time": now, "data": changed})


# ============================================================================ the hub
class EventHub:
    """Polls one StateService's snapshot once per interval while any subscriber is active,
    diffs per key, and hands each subscriber the changed keys and derived events."""

    def __init__(self, service: Any, interval: float = 1.0, executor=None):
        self.service = service
        self.interval = float(interval)
        self.executor = executor
        self.subscribers: list[Subscription] = []
        self._latest: dict | None = None  # last good snapshot, its fingerprints and time
        self._prints: dict[str, str] = {}
        self._latest_at = 0.0
        self._task: asyncio.Task | None = None
        self._wake: asyncio.Event | None = None
        self._closed = False
        self.address = getattr(service, "address", None)

    # ---- subscribers (on the loop) ----
    def subscribe(self, send: Callable[[dict], None]) -> Subscription:
        """A new client: ``hello`` now, a full update as soon as there is one, then changes.
        Call it on the asyncio loop the hub polls on (tornado's)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError("EventHub.subscribe() runs on the server's asyncio loop (call it from a "
                               "handler or coroutine there)") from None
        sub = Subscription(self, send)
        self.subscribers.append(sub)
        sub.deliver({"type": "hello", "address": self.address, "interval": self.interval})
        self._resumed(sub)
        return sub

    def _resumed(self, sub: Subscription) -> None:
        if self._latest is not None and time.monotonic() - self._latest_at < self.interval:
            sub.update(self._latest, self._prints, time.time())  # fresh enough: no extra poll
        elif self._wake is not None:
            self._wake.set()  # the poller sleeps: poll now
        self._ensure_polling()

    def _remove(self, sub: Subscription) -> None:
        if sub in self.subscribers:
            self.subscribers.remove(sub)

    def active(self) -> list[Subscription]:
        return [s for s in self.subscribers if s.active]

    @property
    def polling(self) -> bool:
        return self._task is not None and not self._task.done()

    def _ensure_polling(self) -> None:
        if self._closed or self.polling or not self.active():
            return
        loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._task = loop.create_task(self._poll_loop())

    # ---- polling ----
    async def _poll_loop(self) -> None:
        loop = asyncio.get_running_loop()
        prev = self._latest
        while not self._closed and self.active():
            started = time.monotonic()
            self._wake.clear()
            try:
                snapshot = await loop.run_in_executor(self.executor, self.service.snapshot)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - Unreachable, or a bug: clients hear of it, polling goes on
                if type(e).__name__ != "Unreachable":
                    logger.exception("dashboard snapshot of %s failed", self.address)
                self._latest = None
                for sub in self.active():
                    if not sub.error_sent:
                        sub.error_sent = True
                        sub.sent = {}  # after the outage: a full update
                        sub.deliver({"type": "error", "error": str(e) or type(e).__name__})
            else:
                now = time.time()
                self._prints = {k: fingerprint(k, snapshot[k]) for k in KEYS if k in snapshot}
                self._latest, self._latest_at = snapshot, time.monotonic()
                events = derive_events(prev, snapshot, now)
                prev = snapshot
                for sub in self.active():
                    sub.error_sent = False
                    sub.update(snapshot, self._prints, now)
                    for event in events:
                        sub.deliver({"type": "event", "event": event})
            if self._closed or not self.active():
                break
            delay = self.interval - (time.monotonic() - started)
            if delay > 0:
                try:
                    await asyncio.wait_for(self._wake.wait(), delay)
                except asyncio.TimeoutError:
                    pass

    def close(self) -> None:
        """Stop polling and forget the subscribers (the service is the caller's to close)."""
        self._closed = True
        for sub in list(self.subscribers):
            sub.closed = True
        self.subscribers.clear()
        if self._task is not None and not self._task.done():
            self._task.cancel()
