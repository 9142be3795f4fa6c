"""One cluster's state for the dashboard: the JSON payloads of its state API.

A :class:`StateService` holds ONE private probe connection to the cluster's GCS
(runtime/cluster/probe.py) for its whole life, never a connected driver's core worker:
the dashboard runs inside servers (standalone, Jupyter) where a driver may or may not
exist, and its calls must not queue behind that driver's work. Calls are blocking and
thread-safe (the HTTP layer runs them in a thread pool); the payload shapes are built
in runtime/dashboard/payloads.py. Errors map to HTTP statuses: :class:`NotFound` (404),
:class:`BadRequest` (400), :class:`Unreachable` (502).
"""
from __future__ import annotations

import concurrent.futures
import threading
import time
from typing import Any

import juno
from juno.cluster import local_cluster
from juno.comm import auth
from juno.observability import state_schema as schema
from juno.observability import task_events as te
from juno.dashboard import payloads
from juno.dashboard.payloads import HEX as _HEX, MAX_LOG_LINES, MIN_ID_PREFIX
from juno.observability.state_client import StateClient, resolve_gcs_address
from juno.observability.state_schema import StateApiException

MAX_LOG_BYTES = 4 << 20
_NO_ANSWER = object()  # a node that did not answer in time (None: it has no such log)
# A GCS that has not answered by then is checked for a listener: a cluster that is gone (or a wrong
# port) is reported at once instead of after the whole timeout.
REFUSAL_CHECK_AFTER_S = 0.5


class NotFound(Exception):
    """No actor or worker with that id (HTTP 404)."""


class BadRequest(Exception):
    """A parameter is malformed or out of range (HTTP 400)."""


class Unreachable(Exception):
    """The cluster did not answer in time, or refused the token (HTTP 502)."""


class _ProbeClient(StateClient):
    """The state client's gathering logic over the service's own probe (never a driver's core worker)."""

    def __init__(self, probe, gcs_address: str, timeout: float):
        self.timeout = float(timeout)
        self._probe = None  # not ours to close
        self._node = probe
        self.gcs_address = gcs_address
        self.missing = []


class StateService:
    """One cluster's state as JSON-able dicts; thread-safe, blocking calls (the HTTP layer
    runs them in a thread pool)."""

    def __init__(self, address: str | None, timeout: float = 10.0, token: str | None = None):
        if address is None:  # this process's own cluster when it is a driver (still through a private probe)
            from juno.owner.core_worker import global_worker

            cw = global_worker()
            address = cw.gcs_address if cw is not None else None
        try:
            self._gcs = resolve_gcs_address(address)
        except (ConnectionError, ValueError) as e:
            raise Unreachable(str(e)) from None
        self.address = self._gcs.replace("tcp://", "")
        self.timeout = float(timeout)
        self._token = token
        self._lock = threading.Lock()
        self._probe = None
        self._closed = False
        self._where: dict[bytes, tuple[str, int]] = {}  # worker id -> (node id, pid), for task rows

    # ------------------------------------------------------------------ connection
    def _get_probe(self):
        with self._lock:
            if self._closed:
                raise Unreachable(f"The state service of {self.address} was closed.")
            if self._probe is None:
                from juno.cluster.probe import GcsProbe

                self._probe = GcsProbe(self._gcs, self._token) if self._token else GcsProbe(self._gcs)
            if self._probe.refused is not None:
                raise Unreachable(str(self._probe.refused))
            return self._probe

    def close(self) -> None:
        with self._lock:
            self._closed = True
            probe, self._probe = self._probe, None
        if probe is not None:
            probe.close()

    def _unreachable(self, error: BaseException) -> Unreachable:
        if isinstance(error, auth.ClusterAuthError):
            return Unreachable(str(error))
        return Unreachable(f"The Juno cluster at {self.address} did not answer within {self.timeout:g} s ({error}); "
                           "is it still running? (`juno status` shows it)")

    def _gcs_many(self, *calls: tuple) -> list[Any]:
        """Several GCS requests at once; their answers in order, or Unreachable."""
        probe = self._get_probe()
        futures = [probe.call_future(self._gcs, method, *args) for method, *args in calls]
        deadline = time.monotonic() + self.timeout
        done, _ = concurrent.futures.wait(futures, timeout=min(REFUSAL_CHECK_AFTER_S, self.timeout))
        if len(done) < len(futures) and local_cluster.connection_refused(self._gcs):
            for f in futures:
                f.cancel()
            raise Unreachable(f"Nothing listens at {self.address}: no Juno cluster runs there (it stopped, or the "
                              "address is wrong). `juno status` lists the clusters on this machine.")
        out = []
        for (method, *_), fut in zip(calls, futures):
            try:
                out.append(fut.result(max(0.0, deadline - time.monotonic())))
            except concurrent.futures.TimeoutError:
                for f in futures:
                    f.cancel()
                raise self._unreachable(TimeoutError(f"no answer to {method!r}")) from None
            except auth.ClusterAuthError as e:
                raise self._unreachable(e) from None
        if probe.refused is not None:
            raise self._unreachable(probe.refused)
        return out

    def _gcs_call(self, method: str, *args: Any) -> Any:
        return self._gcs_many((method, *args))[0]

    def _client(self) -> _ProbeClient:
        return _ProbeClient(self._get_probe(), self._gcs, self.timeout)

    # ------------------------------------------------------------------ payloads
    def summary(self) -> dict:
        return self._snapshot(task_limit=0)["summary"]  # the counts, without task records

    def nodes(self) -> dict:
        return payloads.nodes_payload(self._gcs_call("get_nodes"))

    def tasks(self, limit: int = 100) -> dict:
        limit = _int_param("limit", limit, 1, payloads.MAX_TASK_LIMIT)
        summary, jobs = self._gcs_many(("task_summary", limit), ("get_jobs",))
        return self._tasks_payload(summary, jobs)

    def actors(self) -> dict:
        return payloads.actors_payload(self._gcs_call("state_actors"))

    def placement_groups(self) -> dict:
        return payloads.placement_groups_payload(self._gcs_call("placement_group", "table"))

    def jobs(self) -> dict:
        return payloads.jobs_payload(self._gcs_call("get_jobs"))

    def library_runs(self) -> dict:
        return payloads.library_runs_payload(self._gcs_call("library_runs", None, False))

    def workers(self) -> dict:
        client = self._client()
        try:
            lists = client._worker_lists()
        except StateApiException as e:
            raise self._unreachable(e) from None
        return {"workers": [payloads.worker_entry(w) for _, rows in lists for w in rows]}

    def objects(self, limit: int = 500) -> dict:
        limit = _int_param("limit", limit, 1, payloads.MAX_OBJECT_LIMIT)
        client = self._client()
        try:
            rows, _ = client.objects()
        except StateApiException as e:
            raise self._unreachable(e) from None
        return payloads.objects_payload(rows, limit)

    def snapshot(self) -> dict:
        """{"summary","nodes","tasks","actors","placement_groups","jobs","library_runs"} from one round of GCS calls
        (what the event hub polls once a second)."""
        return self._snapshot(task_limit=100)

    def _snapshot(self, task_limit: int) -> dict:
        nodes, jobs, actors, pgs, summary, runs = self._gcs_many(
            ("get_nodes",), ("get_jobs",), ("state_actors",), ("placement_group", "table"),
            ("task_summary", task_limit), ("library_runs", None, False))
        tasks = self._tasks_payload(summary, jobs, nodes)
        return {
            "summary": payloads.summary_payload(self.address, juno.__version__, nodes, tasks, actors, pgs, jobs),
            "nodes": payloads.nodes_payload(nodes), "tasks": tasks, "actors": payloads.actors_payload(actors),
            "placement_groups": payloads.placement_groups_payload(pgs), "jobs": payloads.jobs_payload(jobs),
            "library_runs": payloads.library_runs_payload(runs),
        }

    def _tasks_payload(self, summary: dict, jobs: list[dict], nodes: list[dict] | None = None) -> dict:
        dead = {j["job_id"] for j in jobs if j.get("is_dead")}
        self._name_workers(summary.get("running", []) + summary.get("failed", []), nodes)
        return payloads.tasks_payload(summary, dead)

    def _name_workers(self, records: list[list], nodes: list[dict] | None) -> None:
        """Runs whose result came back name only their worker: add its node and pid (asking the
        nodes only about workers not seen before)."""
        unnamed = schema.unnamed_runs(records)
        if any(r[te.WORKER_ID] not in self._where for r in unnamed):
            if nodes is None:
                nodes = self._gcs_call("get_nodes")
            alive = [n for n in nodes if n.get("alive")]
            probe = self._get_probe()
            futures = [probe.call_future(n["address"], "list_workers") for n in alive]
            deadline = time.monotonic() + min(self.timeout, 2.0)
            for fut in futures:
                try:
                    rows = fut.result(max(0.0, deadline - time.monotonic()))
                except Exception:  # noqa: BLE001 - a slow or dying node: its workers stay unnamed
                    fut.cancel()
                    continue
                for w in rows:
                    if w.get("worker_id") is not None:
                        self._where[w["worker_id"]] = (w["node_id"], w["pid"])
            if len(self._where) > 20000:
                self._where = dict(list(self._where.items())[-10000:])
        schema.name_runs(unnamed, self._where)

    # ------------------------------------------------------------------ actors: lookup, kill, logs
    def _find_actor(self, actor_id: str) -> dict:
        key = _hex_param("actor_id", actor_id)
        matches = [a for a in self._gcs_call("state_actors") if a["actor_id"].hex().startswith(key)]
        if not matches:
            raise NotFound(f"No actor with id {actor_id!r} in the cluster at {self.address}; "
                           "GET /api/actors lists them.")
        if len(matches) > 1:
            raise BadRequest(f"The actor id prefix {actor_id!r} names {len(matches)} actors; give more of the id.")
        return matches[0]

    def kill_actor(self, actor_id: str, no_restart: bool = True) -> dict:
        """Ray's ``ray.kill`` semantics: the GCS kills the actor's process (for good with ``no_restart``)
        and answers once the death (or restart) is published."""
        if not isinstance(no_restart, bool):
            raise BadRequest(f"no_restart must be true or false, not {no_restart!r}.")
        actor = self._find_actor(actor_id)
        self._gcs_call("kill_actor", actor["actor_id"], no_restart, False, "killed from the Juno dashboard")
        return {"ok": True}

    def logs(self, *, actor_id: str | None = None, worker_id: str | None = None, tail: int = 200) -> dict:
        """The last ``tail`` lines of an actor's (its current worker's) or a worker's log, from its node."""
        if (actor_id is None) == (worker_id is None):
            raise BadRequest("Give exactly one of actor_id or worker_id (hex, at least 8 characters).")
        tail = _int_param("tail", tail, 1, MAX_LOG_LINES)
        max_bytes = min(MAX_LOG_BYTES, max(64 << 10, tail * 1024))
        if actor_id is not None:
            actor = self._find_actor(actor_id)
            hex_id = actor["actor_id"].hex()
            if actor.get("worker_id") is None:
                raise NotFound(f"Actor {hex_id} has no worker process yet (state {actor.get('state')}); "
                               "its log appears once it is placed.")
            node = {n["node_id"]: n for n in self._gcs_call("get_nodes")}.get(actor.get("node_id"))
            if node is None or not node.get("alive"):
                raise NotFound(f"Actor {hex_id} ran on node {actor.get('node_id')}, which is dead: its log "
                               "stays on that machine (<session>/logs/).")
            answers = self._ask_nodes([node], actor["worker_id"].hex(), tail, max_bytes)
            found = next((a for _, a in answers if a and "lines" in a), None)
            if found is None:
                raise NotFound(f"The log of actor {hex_id}'s worker was not found on node {node['node_id']}.")
            return _log_payload("actor", hex_id, found)
        key = _hex_param("worker_id", worker_id)
        nodes = [n for n in self._gcs_call("get_nodes") if n.get("alive")]
        answers = [(n, a) for n, a in self._ask_nodes(nodes, key, tail, max_bytes) if a]
        ambiguous = sorted({w for _, a in answers for w in a.get("ambiguous", [])})
        found = [a for _, a in answers if "lines" in a]
        ids = {a["worker_id"] for a in found}
        if ambiguous or len(ids) > 1:
            raise BadRequest(f"The worker id prefix {worker_id!r} names several workers "
                             f"({', '.join(sorted(ids | set(ambiguous)))}); give more of the id.")
        if not found:
            raise NotFound(f"No worker with id {worker_id!r} on the live nodes of {self.address}; "
                           "GET /api/workers lists them.")
        found.sort(key=lambda a: not a.get("known"))  # nodes on one machine share the log folder
        return _log_payload("worker", found[0]["worker_id"], found[0])

    def _ask_nodes(self, nodes: list[dict], key: str, tail: int, max_bytes: int) -> list[tuple[dict, Any]]:
        probe = self._get_probe()
        futures = [probe.call_future(n["address"], "read_log", key, tail, max_bytes) for n in nodes]
        deadline = time.monotonic() + self.timeout
        out = []
        for node, fut in zip(nodes, futures):
            try:
                out.append((node, fut.result(max(0.0, deadline - time.monotonic()))))
            except concurrent.futures.TimeoutError:
                fut.cancel()
                out.append((node, _NO_ANSWER))
            except Exception as e:  # noqa: BLE001 - e.g. a node of an older version without read_log
                out.append((node, {"error": str(e)}))
        if nodes and all(a is _NO_ANSWER for _, a in out):
            raise self._unreachable(TimeoutError("no node answered 'read_log'"))
        return [(node, None if a is _NO_ANSWER else a) for node, a in out]


def _log_payload(kind: str, hex_id: str, found: dict) -> dict:
    return {"source": {"kind": kind, "id": hex_id, "node_id": found.get("node_id"), "pid": found.get("pid"),
                       "path": found.get("path")},
            "lines": list(found.get("lines") or []), "truncated": bool(found.get("truncated"))}


def _int_param(name: str, value: Any, low: int, high: int) -> int:
    """An integer parameter in [low, high] (query strings arrive as text)."""
    try:
        number = int(value)
        if isinstance(value, float) and not value.is_integer():
            raise ValueError
    except (TypeError, ValueError):
        raise BadRequest(f"{name} must be an integer from {low} to {high}, not {value!r}.") from None
    if number < low:
        raise BadRequest(f"{name} must be at least {low}, not {number}.")
    return min(number, high)


def _hex_param(name: str, value: Any) -> str:
    if not isinstance(value, str) or not _HEX.match(value) or len(value) < MIN_ID_PREFIX:
        raise BadRequest(f"{name} must be a hex id (the whole id, or its first {MIN_ID_PREFIX} or more "
                         f"characters), not {value!r}.")
    return value.lower()

