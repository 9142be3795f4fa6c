"""Placement groups, as ``ray.util.placement_group``: reserve bundles of resources at once.

    pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_SPREAD")
    juno.get(pg.ready(), timeout=30)
    f.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 0)).remote()

The GCS reserves every bundle or none (runtime/gcs/placement_groups.py); work placed in
the group asks for the bundle resources its nodes gained (runtime/gcs/placement_group_resources.py),
so it runs where its bundle is and within the bundle's resources.
"""
from __future__ import annotations

from typing import Any

from juno.gcs import placement_group_resources as br
from juno import exceptions as exc
from juno.owner import serialization

__all__ = [
    "PlacementGroup", "PlacementGroupID", "placement_group", "remove_placement_group", "get_placement_group",
    "placement_group_table", "get_current_placement_group", "check_placement_group_index",
]


class PlacementGroupID:
    """A placement group's id (``.hex()``, ``.binary()``), as Ray's."""

    __slots__ = ("_id",)

    def __init__(self, id: bytes):
        self._id = bytes(id)

    def binary(self) -> bytes:
        return self._id

    def hex(self) -> str:
        return self._id.hex()

    def is_nil(self) -> bool:
        return not self._id

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PlacementGroupID) and other._id == self._id

    def __hash__(self) -> int:
        return hash(self._id)

    def __repr__(self) -> str:
        return f"PlacementGroupID({self.hex()})"

    def __reduce__(self):
        return PlacementGroupID, (self._id,)


class PlacementGroup:
    """A handle to a placement group; picklable, so tasks and actors can receive it."""

    def __init__(self, id: PlacementGroupID | bytes, bundle_specs: list[dict] | None = None):
        self.id = id if isinstance(id, PlacementGroupID) else PlacementGroupID(id)
        self._bundles = [dict(b) for b in bundle_specs] if bundle_specs is not None else None

    @staticmethod
    def empty() -> "PlacementGroup":
        return PlacementGroup(PlacementGroupID(b""), [])

    @property
    def is_empty(self) -> bool:
        return self.id.is_nil()

    @property
    def bundle_specs(self) -> list[dict]:
        """The bundles, as given at creation (a list of resource dicts)."""
        if self._bundles is None:
            row = _gcs("get", self.id.binary())
            if row is None:
                raise ValueError(f"Placement group {self.id.hex()} does not exist.")
            self._bundles = [row["bundles"][i] for i in sorted(row["bundles"])]
        return [dict(b) for b in self._bundles]

    @property
    def bundle_count(self) -> int:
        return len(self.bundle_specs)

    def ready(self):
        """An ObjectRef that resolves (to this group) once every bundle is reserved; ``get`` raises if the
        group is removed first. Bound the wait with ``juno.get(pg.ready(), timeout=...)``."""
        from juno.api import _auto_init
        from juno.object_ref import ObjectRef

        cw = _auto_init()
        object_id = cw.ids.task_id() + b"\xfe\xff\xff\xff"
        cw.refs.add_owned(object_id)
        ref = ObjectRef(object_id, cw.address)
        cw.loop.call_soon(_poll_ready, cw, self, object_id)
        return ref

    def wait(self, timeout_seconds: float | int = 30) -> bool:
        """True once the group is created; False if ``timeout_seconds`` pass first (or it was removed)."""
        from juno.api import _auto_init

        cw = _auto_init()
        state, _ = cw.gcs_call("placement_group", "wait_ready", self.id.binary(), float(timeout_seconds),
                               timeout=float(timeout_seconds) + cw.config.rpc_timeout_s)
        return state == "CREATED"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PlacementGroup) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"PlacementGroup(id={self.id.hex()})"

    def __reduce__(self):
        return PlacementGroup, (self.id, self._bundles)


def _gcs(op: str, *args: Any) -> Any:
    from juno.api import _auto_init

    return _auto_init().gcs_call("placement_group", op, *args)


def _poll_ready(cw, pg: PlacementGroup, object_id: bytes) -> None:
    """IO thread: ask the GCS (a long poll) until the group is created or removed, then fill the ref."""
    if cw.shutting_down or not cw.refs.owns(object_id):
        return  # the caller dropped the ref
    poll = cw.config.placement_group_wait_poll_s

    def done(ok: bool, value: Any) -> None:
        if ok and value[0] == "CREATED":
            cw.owned.put(object_id, ("v", serialization.serialize(pg).to_bytes()))
        elif ok and value[0] == "REMOVED":
            _fail(cw, object_id, f"Placement group {pg.id.hex()} was removed before it was ready: {value[1]}.")
        elif not ok and isinstance(value, ValueError):
            _fail(cw, object_id, str(value))
        else:  # still pending, or the GCS did not answer (restarting?): ask again
            cw.loop.call_later(0 if ok else 0.5, _poll_ready, cw, pg, object_id)

    # A GCS that restarts loses the question: ask again soon after the poll should have ended.
    cw.call(cw.gcs_address, "placement_group", "wait_ready", pg.id.binary(), poll, callback=done,
            timeout=poll + min(cw.config.rpc_timeout_s, 5.0))


def _fail(cw, object_id: bytes, text: str) -> None:
    error = exc.TaskUnschedulableError(text)
    cw.owned.put(object_id, ("v", serialization.serialize(error, error=True).to_bytes()))


def placement_group(bundles: list[dict], strategy: str = "PACK", name: str = "", lifetime: str | None = None,
                    _max_cpu_fraction_per_node: float | None = None) -> PlacementGroup:
    """Reserve ``bundles`` (a list of resource dicts) with ``strategy`` PACK, SPREAD, STRICT_PACK or
    STRICT_SPREAD. Returns at once; ``pg.ready()`` / ``pg.wait()`` tell when the bundles are reserved.
    ``lifetime="detached"`` keeps the group after the job that created it ends; ``name`` makes it
    findable with ``get_placement_group(name)`` in this namespace."""
    from juno import ids
    from juno.api import _auto_init

    bundles = br.validate_bundles(bundles)
    br.validate_strategy(strategy)
    if not isinstance(name, str):
        raise TypeError(f"placement_group name must be a string, got {type(name).__name__}: {name!r}.")
    if lifetime not in (None, "detached"):
        raise ValueError(f"Placement group `lifetime` argument must be either `None` or 'detached', got "
                         f"{lifetime!r}.")
    if _max_cpu_fraction_per_node is not None:
        f = _max_cpu_fraction_per_node
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 < f <= 1:
            raise ValueError(f"_max_cpu_fraction_per_node must be a number in (0, 1], got {f!r}.")
        f = float(f)
        _max_cpu_fraction_per_node = None if f == 1.0 else f
    cw = _auto_init()
    ctx = cw.context()
    namespace = ctx.namespace or cw.namespace or ""
    job_id = ctx.job_id if ctx.job_id is not None else cw.job_id
    pg_id = ids.random_id(16)
    cw.gcs_call("placement_group", "create", pg_id, bundles, strategy, name, namespace, job_id,
                lifetime == "detached", cw.address, _max_cpu_fraction_per_node)
    return PlacementGroup(PlacementGroupID(pg_id), bundles)


def remove_placement_group(placement_group: PlacementGroup) -> None:
    """Release the group's bundles: workers using them are killed (their tasks fail, their actors die)."""
    if not isinstance(placement_group, PlacementGroup):
        raise TypeError(f"remove_placement_group() takes a PlacementGroup, got {type(placement_group).__name__}.")
    _gcs("remove", placement_group.id.binary())


def get_placement_group(placement_group_name: str) -> PlacementGroup:
    """The live group named so in this job's namespace; ValueError if there is none."""
    from juno.api import _auto_init

    if not isinstance(placement_group_name, str) or not placement_group_name:
        raise ValueError("get_placement_group() needs the group's name, a non-empty string.")
    cw = _auto_init()
    namespace = cw.context().namespace or cw.namespace or ""
    row = cw.gcs_call("placement_group", "get_named", placement_group_name, namespace)
    if row is None:
        raise ValueError(f"Failed to look up placement group with name: {placement_group_name} (namespace "
                         f"{namespace!r}). It does not exist, or it was removed.")
    return PlacementGroup(PlacementGroupID(bytes.fromhex(row["placement_group_id"])),
                          [row["bundles"][i] for i in sorted(row["bundles"])])


def placement_group_table(placement_group: PlacementGroup | None = None) -> dict:
    """One group's row (id, name, bundles, bundles_to_node_id, strategy, state, stats), or every
    group's row keyed by id hex."""
    if placement_group is not None:
        row = _gcs("get", placement_group.id.binary())
        return row if row is not None else {}
    return {row["placement_group_id"]: row for row in _gcs("table")}


def get_current_placement_group() -> PlacementGroup | None:
    """The group the calling task or actor runs in; None in a driver or outside any group."""
    from juno.owner.core_worker import current_task, global_worker

    cw = global_worker()
    ctx = current_task.get() or (cw.default_context if cw is not None else None)
    pg = getattr(ctx, "placement_group", None)
    if not pg:
        return None
    return PlacementGroup(PlacementGroupID(pg[0]), pg[3])


def state_row(row: dict) -> dict:
    """A table row as the state API shows it (Ray's ``PlacementGroupState`` columns)."""
    from juno.observability.state_schema import job_hex

    nodes = row.get("bundles_to_node_id") or {}
    return {
        "placement_group_id": row["placement_group_id"], "name": row.get("name") or "",
        "creator_job_id": job_hex(row.get("creator_job_id")), "state": row.get("state"),
        "bundles": [{"bundle_id": f"{row['placement_group_id']}_{i}", "node_id": nodes.get(i),
                     "unit_resources": dict(b)} for i, b in sorted((row.get("bundles") or {}).items())],
        "is_detached": bool(row.get("is_detached")), "strategy": row.get("strategy"),
        "stats": row.get("stats"),
    }


def check_placement_group_index(placement_group: PlacementGroup, bundle_index: int) -> None:
    br.check_bundle_index(bundle_index, placement_group.bundle_count)


# ------------------------------------------------------------------ owner side: work placed in a group


def apply_placement_group(strategy: Any, options: dict, ctx: Any, resources: dict, what: str) -> tuple[dict, Any, tuple | None]:
    """Resolve a task's or actor's placement-group strategy (explicit, legacy options, or captured
    from the calling task's group) into bundle resources. Returns ``(resources, strategy, pg)``
    where ``pg`` is ``(id bytes, bundle index, capture_child_tasks, bundles)`` or None."""
    from juno.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    if not isinstance(strategy, PlacementGroupSchedulingStrategy):
        current = getattr(ctx, "placement_group", None)
        if strategy is not None or not current or not current[2]:
            return resources, strategy, None
        if "placement_group" in options and options["placement_group"] is None:
            return resources, strategy, None  # placement_group=None: opt out of the parent's group
        strategy = PlacementGroupSchedulingStrategy(PlacementGroup(PlacementGroupID(current[0]), current[3]), -1,
                                                    True)
    pg = strategy.placement_group
    if pg is None or (isinstance(pg, PlacementGroup) and pg.is_empty):
        return resources, None, None
    if not isinstance(pg, PlacementGroup):
        raise TypeError(f"PlacementGroupSchedulingStrategy needs a PlacementGroup from placement_group(), got "
                        f"{type(pg).__name__}: {pg!r}.")
    index = strategy.placement_group_bundle_index
    bundles = pg.bundle_specs
    br.check_bundle_index(index, len(bundles))
    br.check_fits(resources, bundles, index, what)
    capture = strategy.placement_group_capture_child_tasks
    if capture is None:
        current = getattr(ctx, "placement_group", None)
        capture = bool(current and current[2])
    rewritten = br.request_in_group(resources, pg.id.hex(), index)
    return rewritten, None, (pg.id.binary(), index, capture, bundles)


def strategy_from_options(strategy: Any, options: dict) -> Any:
    """Ray's older ``.options(placement_group=pg, placement_group_bundle_index=i, ...)`` as a strategy."""
    pg = options.get("placement_group", "default")
    if pg in ("default", None):
        return strategy
    from juno.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    index = options.get("placement_group_bundle_index")
    return PlacementGroupSchedulingStrategy(pg, -1 if index is None else index,
                                            options.get("placement_group_capture_child_tasks"))
