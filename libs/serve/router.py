"""Which replica takes a request: the router that handles and the HTTP proxy share.

``ReplicaScheduler`` decides (the replica set, this router's count of ongoing requests per
replica, power of two choices, who waits and in what order, the queue limit) with no I/O, so
it is tested with plain calls. ``Router`` is the thin shell around it on an asyncio loop: one
actor call per request, a completion callback that gives the slot back, and a long poll of the
controller that keeps the replica set current. Nothing on the hot path talks to the controller.
"""
from __future__ import annotations

import asyncio
import logging
import os
import random
import threading
import time
import uuid
from typing import Any, Hashable, Iterable

from juno.exceptions import RayActorError
from juno.serve.exceptions import (BackPressureError, DeploymentUnavailableError, RequestCancelledError,
                                   RequestTimeoutError)
from juno.util.notebook import known_actor_state, on_completed

logger = logging.getLogger(__name__)

LONG_POLL_TIMEOUT_S = 30.0      # wait_for_replicas's own timeout; the controller answers earlier on a change
CONTROLLER_CALL_MARGIN_S = 30.0  # how much longer the router waits for the controller's answer than that
QUEUE_REPORT_PERIOD_S = 0.5     # at most one record_queued_requests per router per period
PROBE_PERIOD_S = 1.0            # a replica's count of others' requests is refreshed at most this often
PROBE_TIMEOUT_S = 5.0
FIRST_MEMBERSHIP_TIMEOUT_S = 60.0  # the first replica list, when the caller set no request timeout
# A deployment in one of these states with no replica left will not get one: waiting requests fail.
UNAVAILABLE_STATUSES = frozenset({"DEPLOY_FAILED", "DELETING", "DELETED", "NOT_FOUND"})
_DEAD = "DEAD"

Assignment = tuple[Hashable, str]  # (waiting request's token, replica_id it now has a slot on)


class _Slot:
    """What the scheduler knows of one replica."""
    __slots__ = ("max_ongoing", "ongoing", "others", "probed_at", "probing")

    def __init__(self, max_ongoing: int):
        self.max_ongoing = max_ongoing
        self.ongoing = 0          # this router's requests on it, exact
        self.others = 0           # other routers' requests on it, as last probed
        self.probed_at = None     # monotonic time of the last probe answer
        self.probing = False


class ReplicaScheduler:
    """The router's decisions, with no I/O: time and randomness come in as arguments.

    A request either gets a replica at once (``try_assign``) or waits in FIFO order
    (``enqueue``); slots freed by ``finished`` or new replicas from ``set_replicas`` go to the
    waiting requests first, returned as ``(token, replica_id)`` assignments for the shell to
    deliver. Capacity counts only this router's requests (exact, so a wait always ends); the
    choice between two free replicas also weighs other routers' requests as last probed.
    """

    def __init__(self, *, rng: random.Random | None = None, max_queued_requests: int = -1,
                 deployment: str = "", probe_period_s: float = PROBE_PERIOD_S):
        self._rng = rng or random.Random()
        self.max_queued_requests = max_queued_requests
        self.deployment = deployment
        self.probe_period_s = probe_period_s
        self._slots: dict[str, _Slot] = {}
        self._waiting: dict[Hashable, None] = {}  # FIFO of tokens (dicts keep insertion order)
        self._next_probe_at = 0.0

    # ------------------------------------------------------------------ what the shell reads
    @property
    def num_replicas(self) -> int:
        return len(self._slots)

    @property
    def num_queued(self) -> int:
        return len(self._waiting)

    def replica_ids(self) -> list[str]:
        return list(self._slots)

    def ongoing(self, replica_id: str) -> int:
        slot = self._slots.get(replica_id)
        return slot.ongoing if slot is not None else 0

    # ------------------------------------------------------------------ requests
    def try_assign(self) -> str | None:
        """A replica for a new request, its count taken; None when it must wait (no free replica,
        or earlier requests wait: they go first)."""
        if self._waiting:
            return None
        replica_id = self._pick()
        if replica_id is not None:
            self._slots[replica_id].ongoing += 1
        return replica_id

    def enqueue(self, token: Hashable) -> None:
        """The request ``token`` waits for a slot; BackPressureError if max_queued_requests already wait."""
        limit = self.max_queued_requests
        if limit >= 0 and len(self._waiting) >= limit:
            raise BackPressureError(len(self._waiting), limit, self.deployment)
        self._waiting[token] = None

    def cancel(self, token: Hashable) -> bool:
        """A waiting request gave up (timeout, cancel); False if it was not waiting."""
        if token in self._waiting:
            del self._waiting[token]
            return True
        return False

    def drain(self) -> list[Hashable]:
        """Every waiting request, removed (the deployment is gone: the shell fails them)."""
        tokens = list(self._waiting)
        self._waiting.clear()
        return tokens

    def finished(self, replica_id: str) -> list[Assignment]:
        """A request on ``replica_id`` ended: its slot goes to the first waiting request."""
        slot = self._slots.get(replica_id)
        if slot is None:  # removed meanwhile: its requests no longer count
            return []
        if slot.ongoing > 0:
            slot.ongoing -= 1
        return self._assign_waiting()

    # ------------------------------------------------------------------ membership
    def set_replicas(self, replicas: Iterable[tuple[str, int]], max_queued_requests: int | None = None
                     ) -> list[Assignment]:
        """The replica set is now ``(replica_id, max_ongoing_requests)`` pairs: counts of replicas
        that stay are kept, new ones start empty, and waiting requests take the new room."""
        old = self._slots
        slots: dict[str, _Slot] = {}
        for replica_id, max_ongoing in replicas:
            slot = old.get(replica_id)
            if slot is None:
                slot = _Slot(max_ongoing)
            slot.max_ongoing = max_ongoing
            slots[replica_id] = slot
        self._slots = slots
        if max_queued_requests is not None:
            self.max_queued_requests = max_queued_requests
        return self._assign_waiting()

    def remove(self, replica_id: str) -> None:
        """Drop a replica found dead; its requests no longer count (the controller confirms later)."""
        self._slots.pop(replica_id, None)

    # ------------------------------------------------------------------ probes of other routers' load
    def probes_due(self, now: float) -> list[str]:
        """Replicas whose load from other routers is older than ``probe_period_s``, marked as being
        probed; only worth asking when there is a choice to make (two replicas or more)."""
        if now < self._next_probe_at or len(self._slots) < 2:
            return []
        period = self.probe_period_s
        due = []
        next_at = now + period
        for replica_id, slot in self._slots.items():
            if slot.probing:
                continue
            if slot.probed_at is None or now - slot.probed_at >= period:
                slot.probing = True
                due.append(replica_id)
            else:
                next_at = min(next_at, slot.probed_at + period)
        self._next_probe_at = next_at  # so the hot path costs one comparison until then
        return due

    def probe_result(self, replica_id: str, total_ongoing: int | None, now: float) -> None:
        """The replica's own count (all routers), or None if the probe failed."""
        slot = self._slots.get(replica_id)
        if slot is None:
            return
        slot.probing = False
        self._next_probe_at = min(self._next_probe_at, now + self.probe_period_s)
        if total_ongoing is not None:
            slot.others = max(0, total_ongoing - slot.ongoing)
            slot.probed_at = now

    # ------------------------------------------------------------------ internals
    def _pick(self) -> str | None:
        """Power of two choices among replicas with room: two at random, the less loaded wins."""
        free = [(replica_id, slot) for replica_id, slot in self._slots.items() if slot.ongoing < slot.max_ongoing]
        if not free:
            return None
        if len(free) == 1:
            return free[0][0]
        (id_a, a), (id_b, b) = self._rng.sample(free, 2)
        return id_b if b.ongoing + b.others < a.ongoing + a.others else id_a

    def _assign_waiting(self) -> list[Assignment]:
        out: list[Assignment] = []
        waiting = self._waiting
        while waiting:
            replica_id = self._pick()
            if replica_id is None:
                break
            token = next(iter(waiting))
            del waiting[token]
            self._slots[replica_id].ongoing += 1
            out.append((token, replica_id))
        return out


class Router:
    """Sends a deployment's requests to its replicas, from one asyncio loop (``loop``).

    Construct it anywhere; everything else runs on ``loop``. ``assign_request`` returns the
    replica call's ObjectRef (or ObjectRefGenerator for ``meta["stream"]``) once a replica has
    room; ``request_timeout_s`` bounds the wait for one (None: wait as long as it takes).
    """

    def __init__(self, controller: Any, app: str, deployment: str, *, loop: asyncio.AbstractEventLoop,
                 request_timeout_s: float | None = None, router_id: str | None = None,
                 rng: random.Random | None = None):
        if request_timeout_s is not None and request_timeout_s <= 0:
            raise ValueError(f"request_timeout_s must be a positive number of seconds or None, "
                             f"got {request_timeout_s!r}.")
        self._controller = controller
        self.app = app
        self.deployment = deployment
        self._loop = loop
        self._request_timeout_s = request_timeout_s
        self.router_id = router_id or uuid.uuid4().hex[:16]
        self._scheduler = ReplicaScheduler(rng=rng, deployment=deployment)
        self._actors: dict[str, Any] = {}     # replica_id -> actor handle
        self._methods: dict[str, tuple] = {}  # replica_id -> (handle_request, handle_request_streaming)
        self._dead: set[str] = set()          # dropped here, until the controller's set leaves them out too
        self._version: int | None = None
        self._known = asyncio.Event()  # set once the controller's first replica list arrived
        self._status = ""
        self._unavailable: str | None = None  # why no replica will come, while that holds
        self._closed = False
        self._poll_task: asyncio.Task | None = None
        self._reported_queue = 0
        self._last_report = float("-inf")
        self._report_timer: asyncio.TimerHandle | None = None
        loop.call_soon_threadsafe(self._start_poll)

    # ------------------------------------------------------------------ the hot path
    async def assign_request(self, meta: dict, args: tuple, kwargs: dict) -> Any:
        """Send one request to a replica with room; see the class docstring."""
        scheduler = self._scheduler
        while True:
            if self._closed:
                raise RequestCancelledError(meta.get("request_id", ""),
                                            f"The router of deployment '{self.deployment}' was shut down; "
                                            f"get a new handle and send the request again.")
            if self._version is None:  # the queue limit is part of the first answer: a first burst obeys it too
                await self._first_membership()
            replica_id = scheduler.try_assign()
            if replica_id is None:
                replica_id = await self._wait_for_slot(meta)
            actor = self._actors.get(replica_id)
            if actor is None:  # removed between its assignment and now
                continue
            if known_actor_state(actor) == _DEAD:  # died since we last heard: never sent, send elsewhere
                self._drop(replica_id)
                continue
            unary, streaming = self._methods[replica_id]
            try:
                if meta.get("stream"):
                    result = streaming.remote(meta, args, kwargs)
                    done = result.completed()
                else:
                    result = done = unary.remote(meta, args, kwargs)
            except RayActorError:
                self._drop(replica_id)
                continue
            except BaseException:
                self._release(replica_id)
                raise
            loop = self._loop
            # The callback holds ``done``: a ref nobody holds is never filled in, and the slot must come back.
            on_completed(done, lambda failed, rid=replica_id, _keep=done: loop.call_soon_threadsafe(
                self._request_done, rid, failed))
            if scheduler.num_replicas > 1:
                self._start_probes()
            return result

    async def _first_membership(self) -> None:
        timeout = self._request_timeout_s or FIRST_MEMBERSHIP_TIMEOUT_S
        try:
            await asyncio.wait_for(self._known.wait(), timeout)
        except asyncio.TimeoutError:
            raise DeploymentUnavailableError(
                self.deployment, f"Serve's controller did not answer with the replicas of deployment "
                                 f"'{self.deployment}' of app '{self.app}' within {timeout:g} s; check "
                                 f"serve.status().") from None

    async def _wait_for_slot(self, meta: dict) -> str:
        if self._unavailable is not None and self._scheduler.num_replicas == 0:
            raise DeploymentUnavailableError(self.deployment, self._unavailable)
        fut = self._loop.create_future()
        self._scheduler.enqueue(fut)  # BackPressureError past max_queued_requests
        self._queue_changed()
        timer = None
        if self._request_timeout_s is not None:
            timer = self._loop.call_later(self._request_timeout_s, self._time_out, fut)
        try:
            return await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                self._release(fut.result())  # the slot came as the caller gave up: pass it on
            else:
                self._scheduler.cancel(fut)
            raise
        finally:
            if timer is not None:
                timer.cancel()
            self._queue_changed()

    def _time_out(self, fut: asyncio.Future) -> None:
        if fut.done() or not self._scheduler.cancel(fut):
            return
        if self._scheduler.num_replicas == 0:
            fut.set_exception(DeploymentUnavailableError(
                self.deployment, f"Deployment '{self.deployment}' of app '{self.app}' had no running replica for "
                f"{self._request_timeout_s:g} s (status: {self._status or 'unknown'}). Check serve.status() "
                f"for why its replicas are not up."))
        else:
            fut.set_exception(RequestTimeoutError(self.deployment, self._request_timeout_s))

    def _request_done(self, replica_id: str, failed: bool) -> None:
        """A request ended (on the loop): free its slot; a failure from a dead replica drops it."""
        if failed:
            actor = self._actors.get(replica_id)
            if actor is not None and known_actor_state(actor) == _DEAD:
                self._drop(replica_id)
                return
        self._release(replica_id)

    def _release(self, replica_id: str) -> None:
        self._deliver(self._scheduler.finished(replica_id))

    def _deliver(self, assignments: list[Assignment]) -> None:
        for fut, replica_id in assignments:
            if fut.done():  # its caller gave up: the slot goes on to the next one
                self._release(replica_id)
            else:
                fut.set_result(replica_id)

    def _drop(self, replica_id: str) -> None:
        self._dead.add(replica_id)
        self._scheduler.remove(replica_id)
        self._actors.pop(replica_id, None)
        self._methods.pop(replica_id, None)

    def _fail_waiting(self, make_error) -> None:
        for fut in self._scheduler.drain():
            if not fut.done():
                fut.set_exception(make_error())

    # ------------------------------------------------------------------ membership (long poll)
    def _start_poll(self) -> None:
        if not self._closed and self._poll_task is None:
            self._poll_task = self._loop.create_task(self._poll(), name=f"serve-router-poll-{self.deployment}")

    async def _poll(self) -> None:
        """get_replicas once, then wait_for_replicas in a loop; errors back off, never end the loop
        (a controller that restarts is found again), until shutdown()."""
        controller, app, deployment = self._controller, self.app, self.deployment
        backoff = 0.1
        while not self._closed:
            try:
                if self._version is None:
                    call = controller.get_replicas.remote(app, deployment)
                else:
                    call = controller.wait_for_replicas.remote(app, deployment, self._version, LONG_POLL_TIMEOUT_S)
                info = await asyncio.wait_for(call, LONG_POLL_TIMEOUT_S + CONTROLLER_CALL_MARGIN_S)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - the loop must outlive any one failure
                self._controller_failed(err)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.1
            self._apply(info)

    def _apply(self, info: dict) -> None:
        replicas = info.get("replicas") or []
        ids = {r["replica_id"] for r in replicas}
        self._dead &= ids  # the controller left them out: forget them
        replicas = [r for r in replicas if r["replica_id"] not in self._dead]
        self._version = info.get("version")
        self._known.set()
        self._status = str(info.get("status") or "")
        actors = {r["replica_id"]: r["actor"] for r in replicas}
        methods = self._methods
        self._methods = {rid: methods.get(rid) or (actor.handle_request,
                                                    actor.handle_request_streaming.options(num_returns="streaming"))
                         for rid, actor in actors.items()}
        self._actors = actors
        assignments = self._scheduler.set_replicas(
            [(r["replica_id"], int(r["max_ongoing_requests"])) for r in replicas],
            info.get("max_queued_requests", -1))
        self._deliver(assignments)
        if not replicas and self._status in UNAVAILABLE_STATUSES:
            self._set_unavailable(f"Deployment '{self.deployment}' of app '{self.app}' has no replica and will get "
                                  f"none: its status is {self._status}. Check serve.status() and redeploy it.")
        else:
            self._unavailable = None
        self._queue_changed()

    def _controller_failed(self, err: Exception) -> None:
        if isinstance(err, RayActorError) and self._scheduler.num_replicas == 0:
            self._set_unavailable(f"Serve's controller is gone (serve.shutdown() or it died), and deployment "
                                  f"'{self.deployment}' of app '{self.app}' has no replica here: start Serve and "
                                  f"deploy the app again.")
        elif not isinstance(err, (RayActorError, asyncio.TimeoutError)):
            logger.warning("Serve router for %s/%s: asking the controller for replicas failed: %r",
                           self.app, self.deployment, err)

    def _set_unavailable(self, why: str) -> None:
        self._unavailable = why
        self._fail_waiting(lambda: DeploymentUnavailableError(self.deployment, why))
        self._queue_changed()

    # ------------------------------------------------------------------ probes of the replicas' own counts
    def _start_probes(self) -> None:
        for replica_id in self._scheduler.probes_due(time.monotonic()):
            actor = self._actors.get(replica_id)
            if actor is not None:
                self._loop.create_task(self._probe(replica_id, actor))

    async def _probe(self, replica_id: str, actor: Any) -> None:
        total = None
        try:
            total = await asyncio.wait_for(actor.get_num_ongoing_requests.remote(), PROBE_TIMEOUT_S)
        except Exception:  # noqa: BLE001 - a failed probe only leaves the old estimate
            pass
        self._scheduler.probe_result(replica_id, total, time.monotonic())

    # ------------------------------------------------------------------ queue length for autoscaling
    def _queue_changed(self) -> None:
        """Report the queue length when it changed, at most once per QUEUE_REPORT_PERIOD_S."""
        if self._scheduler.num_queued == self._reported_queue or self._report_timer is not None or self._closed:
            return
        delay = self._last_report + QUEUE_REPORT_PERIOD_S - time.monotonic()
        if delay <= 0:
            self._report_queue()
        else:
            self._report_timer = self._loop.call_later(delay, self._report_queue)

    def _report_queue(self) -> None:
        self._report_timer = None
        queued = self._scheduler.num_queued
        if queued == self._reported_queue or self._closed:
            return
        self._reported_queue = queued
        self._last_report = time.monotonic()
        try:  # fire and forget: the controller's autoscaler reads it
            self._controller.record_queued_requests.remote(self.app, self.deployment, self.router_id, queued)
        except Exception as err:  # noqa: BLE001 - a lost report only delays autoscaling
            logger.debug("Serve router: record_queued_requests failed: %r", err)

    # ------------------------------------------------------------------ introspection and shutdown
    @property
    def num_replicas(self) -> int:
        return self._scheduler.num_replicas

    @property
    def num_queued_requests(self) -> int:
        return self._scheduler.num_queued

    def num_ongoing_requests(self) -> dict[str, int]:
        """This router's requests per replica (for tests and views)."""
        return {rid: self._scheduler.ongoing(rid) for rid in self._scheduler.replica_ids()}

    def shutdown(self) -> None:
        """Stop the long poll and fail the requests still waiting (RequestCancelledError); thread-safe."""
        if self._closed:
            return
        self._closed = True
        try:
            self._loop.call_soon_threadsafe(self._shutdown_on_loop)
        except RuntimeError:  # the loop is closed: nothing runs there any more
            pass

    def _shutdown_on_loop(self) -> None:
        if self._poll_task is not None:
            self._poll_task.cancel()
        if self._report_timer is not None:
            self._report_timer.cancel()
            self._report_timer = None
        self._fail_waiting(lambda: RequestCancelledError(
            "", f"The router of deployment '{self.deployment}' was shut down while the request waited for a replica."))


# ---------------------------------------------------------------------------- the shared loop
_shared_lock = threading.Lock()
_shared: tuple[int, asyncio.AbstractEventLoop] | None = None  # (pid, loop)


def shared_loop() -> asyncio.AbstractEventLoop:
    """This process's loop for routers used from sync code: one daemon thread, started on first
    use, started afresh in a forked child (the parent's thread does not exist there)."""
    global _shared
    shared = _shared
    pid = os.getpid()
    if shared is not None and shared[0] == pid:
        return shared[1]
    with _shared_lock:
        if _shared is None or _shared[0] != pid:
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            threading.Thread(target=run, name="juno-serve-router-loop", daemon=True).start()
            if not ready.wait(10.0):
                raise RuntimeError("Serve's router loop thread did not start within 10 s.")
            _shared = (pid, loop)
        return _shared[1]


def _after_fork_in_child() -> None:
    global _shared_lock, _shared
    _shared_lock = threading.Lock()  # the parent's may have been held by a thread that is gone
    _shared = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


__all__ = ["ReplicaScheduler", "Router", "shared_loop"]
