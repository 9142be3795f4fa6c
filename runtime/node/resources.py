"""Resource accounting for one node.

The node manager's scheduler asks this module whether a task or actor fits on
the node, takes its share, and gives it back when the work ends.  Quantities
are kept as integers in units of 1/10000 (the same granularity Ray uses) so
that repeatedly adding and subtracting fractions such as 0.1 CPU never drifts:
ten allocations of 0.1 add up to exactly 1.0.

GPUs are tracked individually as well as in aggregate, because a worker must be
told *which* devices it owns (CUDA_VISIBLE_DEVICES), and fractional requests
must be packed onto a single device.

Not thread-safe: the node manager is expected to call it from one thread (or
hold its own lock).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from juno.gcs.placement_group_resources import parse_name as parse_bundle_resource

__all__ = [
    "UNITS_PER_WHOLE",
    "to_units",
    "from_units",
    "ResourceSet",
    "Allocation",
    "NodeResources",
    "normalize_request",
]

#: Number of integer units that make up a quantity of 1.0.
UNITS_PER_WHOLE = 10_000

CPU = "CPU"
GPU = "GPU"
MEMORY = "memory"
OBJECT_STORE_MEMORY = "object_store_memory"


def _check_number(name: str, value: Any) -> float:
    """Reject values that cannot be a resource quantity (so errors name the culprit)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(
            f"resource {name!r} must be a number, got {type(value).__name__} {value!r}"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"resource {name!r} must be finite, got {value!r}")
    return value


def to_units(x: float) -> int:
    """Convert a float quantity to fixed-point units, rounding to the nearest unit.

    Ints are scaled exactly so byte counts for ``memory`` stay exact however big.
    """
    if isinstance(x, int) and not isinstance(x, bool):
        return x * UNITS_PER_WHOLE
    return int(round(x * UNITS_PER_WHOLE))


def from_units(u: int) -> float:
    """Convert fixed-point units back to a float quantity."""
    return u / UNITS_PER_WHOLE


class ResourceSet(Mapping[str, float]):
    """Immutable mapping name -> quantity; float API over integer storage.

    Zero quantities are never stored, so two sets that differ only by zero
    entries compare equal.  Negative quantities are allowed (they arise from
    subtraction and from oversubscribed CPUs); requests are validated
    separately by :class:`NodeResources`.
    """

    __slots__ = ("_units", "_hash")

    def __init__(self, quantities: Mapping[str, float] | None = None) -> None:
        units: dict[str, int] = {}
        for name, value in (quantities or {}).items():
            if not isinstance(name, str):
                raise ValueError(f"resource names must be strings, got {name!r}")
            u = to_units(_check_number(name, value))
            if u:
                units[name] = u
        self._units = units
        self._hash: int | None = None

    @classmethod
    def from_dict(cls, quantities: Mapping[str, float]) -> "ResourceSet":
        """Build a set from a plain ``{name: float}`` dict."""
        return cls(quantities)

    @classmethod
    def from_units(cls, units: Mapping[str, int]) -> "ResourceSet":
        """Build a set directly from integer units (no rounding)."""
        rs = cls()
        rs._units = {k: int(v) for k, v in units.items() if v}
        return rs

    # --- mapping protocol -------------------------------------------------
    def __getitem__(self, name: str) -> float:
        return from_units(self._units[name])

    def __iter__(self) -> Iterator[str]:
        return iter(self._units)

    def __len__(self) -> int:
        return len(self._units)

    def __contains__(self, name: object) -> bool:
        return name in self._units

    def get(self, name: str, default: float = 0.0) -> float:  # type: ignore[override]
        """Quantity of ``name``; absent resources count as 0.0."""
        u = self._units.get(name)
        return default if u is None else from_units(u)

    def units(self, name: str) -> int:
        """Quantity of ``name`` in integer units (0 when absent)."""
        return self._units.get(name, 0)

    def units_dict(self) -> dict[str, int]:
        """Copy of the integer storage."""
        return dict(self._units)

    def to_dict(self) -> dict[str, float]:
        """Plain ``{name: float}`` dict; zero entries are never present."""
        return {k: from_units(v) for k, v in self._units.items()}

    # --- arithmetic ---------------------------------------------------------
    def __add__(self, other: "ResourceSet") -> "ResourceSet":
        if not isinstance(other, ResourceSet):
            return NotImplemented
        out = dict(self._units)
        for k, v in other._units.items():
            out[k] = out.get(k, 0) + v
        return ResourceSet.from_units(out)

    def __sub__(self, other: "ResourceSet") -> "ResourceSet":
        if not isinstance(other, ResourceSet):
            return NotImplemented
        out = dict(self._units)
        for k, v in other._units.items():
            out[k] = out.get(k, 0) - v
        return ResourceSet.from_units(out)

    def fits_in(self, other: "ResourceSet") -> bool:
        """True if every quantity here is <= the same quantity in ``other``."""
        return all(v <= other._units.get(k, 0) for k, v in self._units.items())

    def is_empty(self) -> bool:
        """True if no resource has a non-zero quantity."""
        return not self._units

    # --- identity -----------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if isinstance(other, ResourceSet):
            return self._units == other._units
        if isinstance(other, Mapping):
            try:
                return self._units == ResourceSet(other)._units
            except ValueError:
                return False
        return NotImplemented

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._units.items()))
        return self._hash

    def __repr__(self) -> str:
        return f"ResourceSet({self.to_dict()!r})"


@dataclass(frozen=True)
class Allocation:
    """What one task/actor holds on a node; hand it back to ``release``.

    ``gpu_shares`` lists ``(gpu_id, units)`` for every GPU touched, so the
    exact same capacity is returned to the same devices on release.
    """

    resources: ResourceSet
    gpu_ids: tuple[int, ...] = ()
    gpu_shares: tuple[tuple[int, int], ...] = ()
    id: int = 0
    # GPUs taken from placement-group bundles: (group hex, bundle index, gpu id, units)
    bundle_gpus: tuple[tuple[str, int, int, int], ...] = ()

    @property
    def num_gpus(self) -> float:
        """Total GPU quantity held (fractional for shared devices)."""
        return self.resources.get(GPU)


def _validate_request(request: Mapping[str, float]) -> ResourceSet:
    """Check a request and turn it into a ResourceSet (zero entries dropped).

    Raises ValueError naming the offending resource, so users see what to fix.
    """
    if isinstance(request, ResourceSet):
        rs = request
    else:
        if not isinstance(request, Mapping):
            raise ValueError(f"resource request must be a dict, got {type(request).__name__}")
        rs = ResourceSet(request)
    for name, u in rs.units_dict().items():
        if u < 0:
            raise ValueError(
                f"resource {name!r} must be >= 0, got {from_units(u)} in request {rs.to_dict()}"
            )
    gpu = rs.units(GPU)
    if gpu > UNITS_PER_WHOLE and gpu % UNITS_PER_WHOLE:
        raise ValueError(
            f"GPU requests above 1 must be whole numbers, got {from_units(gpu)}; "
            "fractional GPUs (0 < GPU < 1) share one device"
        )
    return rs


class NodeResources:
    """Total and available resources of one node, with per-GPU bookkeeping.

    Every GPU has capacity 1.0.  Whole requests (GPU >= 1) take wholly free
    GPUs, lowest ids first; fractional requests (0 < GPU < 1) are packed onto
    one GPU by best fit (least remaining capacity that still fits, ties to the
    lowest id) so that whole GPUs stay free for whole requests.
    """

    def __init__(self, total: Mapping[str, float], gpu_ids: list[int] | None = None) -> None:
        total_rs = ResourceSet(total)
        for name, u in total_rs.units_dict().items():
            if u < 0:
                raise ValueError(f"node total for {name!r} must be >= 0, got {from_units(u)}")
        gpu_units = total_rs.units(GPU)
        if gpu_units % UNITS_PER_WHOLE:
            raise ValueError(f"node GPU total must be a whole number, got {from_units(gpu_units)}")
        num_gpus = gpu_units // UNITS_PER_WHOLE
        if gpu_ids is None:
            ids = list(range(num_gpus))
        else:
            ids = [int(i) for i in gpu_ids]
            if len(set(ids)) != len(ids):
                raise ValueError(f"duplicate GPU ids: {gpu_ids}")
            if len(ids) != num_gpus:
                raise ValueError(
                    f"GPU total {from_units(gpu_units)} does not match the {len(ids)} "
                    f"GPU ids given {ids}"
                )
        self._total = total_rs
        self._avail: dict[str, int] = total_rs.units_dict()
        # Remaining capacity per GPU id, in units (each starts at one whole GPU).
        self._gpu_free: dict[int, int] = {i: UNITS_PER_WHOLE for i in sorted(ids)}
        self._live: dict[int, Allocation] = {}
        # GPUs held by committed placement-group bundles: group hex -> bundle index -> {gpu id: free units}
        self._bundle_gpus: dict[str, dict[int, dict[int, int]]] = {}
        self._blocked: set[int] = set()
        self._ids = itertools.count(1)

    # --- views --------------------------------------------------------------
    @property
    def total(self) -> dict[str, float]:
        """Node capacity (zero entries omitted)."""
        return self._total.to_dict()

    @property
    def available(self) -> dict[str, float]:
        """Currently free quantity of every resource the node has.

        Keys are all resources in ``total``, even when fully used (0.0); CPU
        may be negative while blocked workers have reacquired their CPUs.
        """
        return {k: from_units(self._avail.get(k, 0)) for k in self._total}

    @property
    def gpu_ids(self) -> list[int]:
        """The node's GPU ids, ascending."""
        return list(self._gpu_free)

    def gpu_available(self) -> dict[int, float]:
        """Remaining capacity of each GPU (1.0 = wholly free)."""
        return {i: from_units(u) for i, u in self._gpu_free.items()}

    def used(self) -> dict[str, float]:
        """Quantities currently in use (zero entries omitted)."""
        out: dict[str, float] = {}
        for k, t in self._total.units_dict().items():
            u = t - self._avail.get(k, 0)
            if u:
                out[k] = from_units(u)
        return out

    def utilization(self) -> dict[str, tuple[float, float]]:
        """``name -> (used, total)`` for every resource the node has."""
        return {
            k: (from_units(t - self._avail.get(k, 0)), from_units(t))
            for k, t in self._total.units_dict().items()
        }

    def is_blocked(self, allocation: Allocation) -> bool:
        """True while ``allocation`` has lent its CPUs back (see ``release_cpus``)."""
        return allocation.id in self._blocked

    def __repr__(self) -> str:
        return f"NodeResources(total={self.total!r}, available={self.available!r})"

    # --- feasibility ---------------------------------------------------------
    def _shortfall(self, rs: ResourceSet) -> dict[str, int]:
        """Resources whose request exceeds the node total (name -> total units)."""
        return {
            k: self._total.units(k) for k, v in rs.units_dict().items() if v > self._total.units(k)
        }

    def is_feasible(self, request: Mapping[str, float]) -> bool:
        """Could the request ever run here, with everything free?"""
        return not self._shortfall(_validate_request(request))

    def infeasible_reason(self, request: Mapping[str, float]) -> str | None:
        """Human-readable reason the request can never fit here, or None if it can."""
        rs = _validate_request(request)
        short = self._shortfall(rs)
        if not short:
            return None
        asked = {k: rs.get(k) for k in short}
        have = {k: from_units(u) for k, u in short.items()}
        return f"requires {asked} but this node has {have}"

    # --- placement-group bundles (runtime/node/placement_group_bundles.py) -----------------------
    def add_total(self, extra: Mapping[str, float]) -> None:
        """Grow the node's totals and free pool by ``extra`` (a committed bundle's resources)."""
        rs = _validate_request(extra)
        if rs.units(GPU):
            raise ValueError("bundle resources are named per group; plain GPU cannot be added")
        self._total = self._total + rs
        for k, v in rs.units_dict().items():
            self._avail[k] = self._avail.get(k, 0) + v

    def remove_total(self, extra: Mapping[str, float]) -> None:
        """Shrink totals and free pool by ``extra``; names that reach zero disappear (held leases
        of them give nothing back when released)."""
        rs = _validate_request(extra)
        self._total = self._total - rs
        for k, v in rs.units_dict().items():
            if k in self._total:
                self._avail[k] = self._avail.get(k, 0) - v
            else:
                self._avail.pop(k, None)

    def add_bundle_gpus(self, pg_hex: str, index: int, shares: tuple[tuple[int, int], ...]) -> None:
        """The GPUs a committed bundle holds: work asking for its ``GPU_group_*`` gets these ids."""
        self._bundle_gpus.setdefault(pg_hex, {})[index] = {i: u for i, u in shares}

    def remove_bundle_gpus(self, pg_hex: str, index: int) -> None:
        bundles = self._bundle_gpus.get(pg_hex)
        if bundles is not None:
            bundles.pop(index, None)
            if not bundles:
                del self._bundle_gpus[pg_hex]

    def _pick_bundle_gpus(self, rs: ResourceSet) -> tuple | None:
        """GPU ids for a request in a placement group: () if it asks for no bundle GPUs, None if
        its bundle (or, for index -1, every bundle of the group here) has no room now."""
        want = None
        for name, units in rs.units_dict().items():
            if name.startswith("GPU_group_"):
                parsed = parse_bundle_resource(name)
                if parsed is not None and (want is None or parsed[1] >= 0):
                    want = (parsed[2], parsed[1], units)
        if want is None:
            return ()
        pg_hex, index, units = want
        bundles = self._bundle_gpus.get(pg_hex)
        if not bundles:
            return ()
        for i in ([index] if index >= 0 else sorted(bundles)):
            shares = _pick_shares(bundles.get(i) or {}, units)
            if shares is not None:
                return tuple((pg_hex, i, gpu, u) for gpu, u in shares)
        return None

    # --- allocation ------------------------------------------------------------
    def _pick_gpus(self, gpu_units: int) -> list[tuple[int, int]] | None:
        """Choose GPU shares for a request, or None if it does not fit right now."""
        return [] if gpu_units <= 0 else _pick_shares(self._gpu_free, gpu_units)

    def _fits_now(self, rs: ResourceSet) -> tuple[list[tuple[int, int]], tuple] | None:
        """(the node's GPU shares, the bundles' GPU picks) for ``rs`` now, or None if it does not fit."""
        for k, v in rs.units_dict().items():
            if k != GPU and v > self._avail.get(k, 0):
                return None
        shares = self._pick_gpus(rs.units(GPU))
        if shares is None:
            return None
        picks = self._pick_bundle_gpus(rs) if self._bundle_gpus else ()
        return None if picks is None else (shares, picks)

    def can_allocate(self, request: Mapping[str, float]) -> bool:
        """Would ``allocate`` succeed right now?"""
        return self._fits_now(_validate_request(request)) is not None

    def allocate(self, request: Mapping[str, float]) -> Allocation | None:
        """Take the request's resources, or return None if they are not free now.

        Raises ValueError for invalid requests (negative amounts, GPU > 1 not
        whole, non-numeric values).  An infeasible request also returns None;
        use ``is_feasible``/``infeasible_reason`` to tell the two apart.
        """
        rs = _validate_request(request)
        fit = self._fits_now(rs)
        if fit is None:
            return None
        shares, picks = fit
        for k, v in rs.units_dict().items():
            self._avail[k] = self._avail.get(k, 0) - v
        for i, u in shares:
            self._gpu_free[i] -= u
        for pg_hex, index, gpu, u in picks:
            self._bundle_gpus[pg_hex][index][gpu] -= u
        alloc = Allocation(
            resources=rs,
            gpu_ids=tuple(i for i, _ in shares) + tuple(p[2] for p in picks),
            gpu_shares=tuple(shares),
            id=next(self._ids),
            bundle_gpus=tuple(picks),
        )
        self._live[alloc.id] = alloc
        return alloc

    def _check_live(self, allocation: Allocation) -> None:
        if self._live.get(allocation.id) != allocation:
            raise ValueError(
                f"allocation {allocation.id} is not held on this node (already released?)"
            )

    def release(self, allocation: Allocation) -> None:
        """Give an allocation back, whether or not its CPUs are currently lent out.

        Raises ValueError if the allocation is unknown or was already released,
        since a double release would silently inflate availability.
        """
        self._check_live(allocation)
        del self._live[allocation.id]
        blocked = allocation.id in self._blocked
        self._blocked.discard(allocation.id)
        for k, v in allocation.resources.units_dict().items():
            if k == CPU and blocked:
                continue  # already returned by release_cpus
            if k not in self._total:
                continue  # a placement-group bundle resource that was removed meanwhile
            self._avail[k] = self._avail.get(k, 0) + v
        for i, u in allocation.gpu_shares:
            self._gpu_free[i] += u
        for pg_hex, index, gpu, u in allocation.bundle_gpus:
            pool = self._bundle_gpus.get(pg_hex, {}).get(index)
            if pool is not None and gpu in pool:
                pool[gpu] += u

    def release_cpus(self, allocation: Allocation) -> None:
        """Lend the CPUs of a worker blocked in ``get``/``wait`` back to the node.

        Lets nested tasks run instead of deadlocking.  Other resources (GPUs,
        memory, custom) stay held.  A no-op if it is already blocked.
        """
        self._check_live(allocation)
        if allocation.id in self._blocked:
            return
        self._blocked.add(allocation.id)
        cpu = allocation.resources.units(CPU)
        if cpu:
            self._avail[CPU] = self._avail.get(CPU, 0) + cpu

    def reacquire_cpus(self, allocation: Allocation) -> None:
        """Take a blocked worker's CPUs back when it unblocks, even if that
        oversubscribes the node (available CPU may go negative, which stops new
        CPU work until enough is released).  A no-op if it is not blocked.
        """
        self._check_live(allocation)
        if allocation.id not in self._blocked:
            return
        self._blocked.discard(allocation.id)
        cpu = allocation.resources.units(CPU)
        if cpu:
            self._avail[CPU] = self._avail.get(CPU, 0) - cpu


def _pick_shares(free: dict[int, int], units: int) -> list[tuple[int, int]] | None:
    """GPU shares for ``units`` (> 0) from ``free`` (GPU id -> free units; the node's GPUs or one
    bundle's): the lowest whole GPUs for whole requests, else the fullest GPU the fraction fits.
    None if they are not free."""
    if units >= UNITS_PER_WHOLE:
        whole = [i for i, u in sorted(free.items()) if u == UNITS_PER_WHOLE]
        n = units // UNITS_PER_WHOLE
        return [(i, UNITS_PER_WHOLE) for i in whole[:n]] if len(whole) >= n else None
    candidates = [(u, i) for i, u in free.items() if u >= units]
    return [(min(candidates)[1], units)] if candidates else None


def normalize_request(
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    memory: float | None = None,
    object_store_memory: float | None = None,
    resources: Mapping[str, float] | None = None,
    default_cpus: float = 1.0,
) -> dict[str, float]:
    """Build a resource request dict from task/actor options.

    ``num_cpus=None`` means ``default_cpus`` (Ray: 1 for tasks; actors pass
    their own default).  ``memory``/``object_store_memory`` are bytes.  Zero
    entries are dropped.  As in Ray, "CPU"/"GPU" must be given through
    num_cpus/num_gpus rather than ``resources``.
    """
    out: dict[str, float] = {}
    named = {
        CPU: default_cpus if num_cpus is None else num_cpus,
        GPU: num_gpus,
        MEMORY: memory,
        OBJECT_STORE_MEMORY: object_store_memory,
    }
    for name, value in named.items():
        if value is None:
            continue
        _check_number(name, value)
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value!r}")
        if value:
            out[name] = float(value)
    if resources:
        if not isinstance(resources, Mapping):
            raise ValueError(f"resources must be a dict, got {type(resources).__name__}")
        for name, value in resources.items():
            if name in (CPU, GPU):
                raise ValueError(
                    f"use num_cpus/num_gpus instead of {name!r} in resources={dict(resources)!r}"
                )
            if not isinstance(name, str):
                raise ValueError(f"resource names must be strings, got {name!r}")
            _check_number(name, value)
            if value < 0:
                raise ValueError(f"resource {name!r} must be >= 0, got {value!r}")
            if value:
                out[name] = float(value)
    gpu = out.get(GPU, 0.0)
    if gpu > 1 and to_units(gpu) % UNITS_PER_WHOLE:
        raise ValueError(f"num_gpus above 1 must be a whole number, got {gpu!r}")
    return out
