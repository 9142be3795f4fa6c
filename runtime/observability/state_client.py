"""Gathers the state API's raw data from a running cluster.

Tasks, actors, nodes and jobs come from the GCS; workers from every node manager;
objects from every core worker (each node manager names its workers and drivers,
then each answers with its reference table, and the nodes add the sizes of objects
in their shared-memory stores). From a connected driver or task the requests go
through its own core worker; otherwise (the CLI, a plain script) through a private
probe connected to the GCS found from ``address`` / $JUNO_ADDRESS / the cluster
``juno start --head`` recorded.
"""
from __future__ import annotations

import concurrent.futures
import os
import time
from typing import Any

from juno.observability import state_schema as schema
from juno.observability.state_schema import StateApiException


def resolve_gcs_address(address: str | None) -> str:
    from juno.cluster import local_cluster

    if address in (None, "", "auto"):
        address = None if address == "auto" else (os.environ.get("JUNO_ADDRESS") or os.environ.get("RAY_ADDRESS"))
        if address in (None, "", "auto", "local"):
            address = local_cluster.read_current_cluster()
        if not address:
            raise ConnectionError(
                "No running Juno cluster found: call juno.init() first, pass address='host:port', set "
                "JUNO_ADDRESS, or start one with `juno start --head`.")
    return local_cluster.normalize_address(address)


class StateClient:
    """Requests to one cluster; use as a context manager."""

    def __init__(self, address: str | None = None, timeout: float = 30):
        from juno.owner.core_worker import global_worker

        self.timeout = float(timeout)
        self._probe = None
        cw = global_worker()
        gcs = cw.gcs_address if (address is None and cw is not None) else resolve_gcs_address(address)
        if cw is not None and cw.gcs_address == gcs:
            self._node = cw
        else:
            from juno.cluster.probe import GcsProbe

            self._probe = GcsProbe(gcs)
            self._node = self._probe
        self.gcs_address = gcs
        self.missing: list[str] = []  # sources that did not answer

    def close(self) -> None:
        if self._probe is not None:
            self._probe.close()
            self._probe = None

    def __enter__(self) -> "StateClient":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ requests
    def gcs(self, method: str, *args: Any) -> Any:
        try:
            return self._node.call_sync(self.gcs_address, method, *args, timeout=self.timeout,
                                        what=f"The GCS at {self.gcs_address.replace('tcp://', '')}")
        except TimeoutError as e:
            raise StateApiException(str(e)) from None

    def gather(self, calls: list[tuple[str, str, tuple]]) -> list[tuple[bool, Any]]:
        """Send every (address, method, args) at once; (ok, value or error) each, within the timeout."""
        futures = [self._node.call_future(address, method, *args) for address, method, args in calls]
        deadline = time.monotonic() + self.timeout
        out = []
        for (address, method, _), fut in zip(calls, futures):
            try:
                out.append((True, fut.result(max(0.0, deadline - time.monotonic()))))
            except concurrent.futures.TimeoutError:
                fut.cancel()
                out.append((False, TimeoutError(f"{address} did not answer {method!r} within {self.timeout:g} s")))
            except Exception as e:  # noqa: BLE001 - reported as missing output
                out.append((False, e))
        return out

    # ------------------------------------------------------------------ sources
    def nodes(self) -> list[dict]:
        return self.gcs("get_nodes")

    def jobs(self) -> list[dict]:
        return self.gcs("get_jobs")

    def task_records(self) -> tuple[list[list], dict]:
        snap = self.gcs("get_task_events")
        dead = {j["job_id"] for j in self.jobs() if j.get("is_dead")}
        snap["dead_jobs"] = dead
        records = snap["records"]
        # Runs that came back with their results name the worker only by id: add its node and pid.
        unnamed = schema.unnamed_runs(records)
        if unnamed:
            schema.name_runs(unnamed, {w["worker_id"]: (w["node_id"], w["pid"])
                                       for _, rows in self._worker_lists() for w in rows})
        return records, snap

    def tasks(self) -> tuple[list[dict], dict]:
        records, snap = self.task_records()
        rows = [schema.task_row(r, snap["dead_jobs"]) for r in records]
        rows.sort(key=lambda r: r["creation_time_ms"] or 0)  # oldest first
        return rows, snap

    def actors(self) -> list[dict]:
        return [schema.actor_row(a) for a in self.gcs("state_actors")]

    def _worker_lists(self) -> list[tuple[dict, list[dict]]]:
        nodes = [n for n in self.nodes() if n.get("alive")]
        answers = self.gather([(n["address"], "list_workers", ()) for n in nodes])
        out = []
        for node, (ok, value) in zip(nodes, answers):
            if ok:
                out.append((node, value))
            else:
                self.missing.append(f"node {node['node_id'][:12]}: {value}")
        return out

    def workers(self) -> list[dict]:
        return [schema.worker_row(w) for _, rows in self._worker_lists() for w in rows]

    def objects(self) -> tuple[list[dict], bool]:
        """(object rows, whether call sites are recorded)."""
        lists = self._worker_lists()
        procs = [w for _, rows in lists for w in rows if w.get("is_alive") and w.get("address")]
        owner_pids = {w["address"]: w["pid"] for w in procs}
        answers = self.gather([(w["address"], "object_refs", ()) for w in procs])
        tables = []
        for proc, (ok, value) in zip(procs, answers):
            if ok:
                tables.append(value)
            else:
                self.missing.append(f"{proc.get('worker_type', 'WORKER').lower()} pid {proc['pid']}: {value}")
        # Sizes of values in shared memory: ask the node that holds each.
        wanted: dict[str, set] = {}
        for table in tables:
            for oid, _t, storage, where, size, *_ in table["refs"]:
                if storage == "SHARED_MEMORY" and size is None and where:
                    wanted.setdefault(where, set()).add(oid)
        sizes: dict[bytes, int] = {}
        node_address = {n["node_id"]: n["address"] for n, _ in lists}
        calls, order = [], []
        for node_id, oids in wanted.items():
            if node_id in node_address:
                ids = sorted(oids)
                calls.append((node_address[node_id], "object_info", (ids,)))
                order.append(ids)
        for ids, (ok, infos) in zip(order, self.gather(calls)):
            if ok:
                for oid, info in zip(ids, infos):
                    if info:
                        sizes[oid] = info.get("size")
        rows = schema.object_rows(tables, sizes, owner_pids)
        return rows, any(t.get("call_sites") for t in tables)

