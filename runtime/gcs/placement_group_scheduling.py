"""Where a placement group's bundles go: the pure decision, tested without processes.

``place_bundles`` takes the bundles still to place, the live nodes' free and total
resources, and the bundles already placed (when a group is rescheduled after a node
died), and answers which node each bundle goes to, or why none fits now. Strategies
are Ray's: PACK (as few nodes as possible, best effort), STRICT_PACK (one node),
SPREAD (distinct nodes where possible), STRICT_SPREAD (distinct nodes or nothing).
Running the same decision against the nodes' totals tells whether the group could
ever fit in the cluster as it is (else the creator is warned and the group waits).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from juno.gcs.placement_group_resources import fits_bundle as _fits, group_of, parse_name


@dataclass
class NodeRoom:
    """One live node as the placement sees it."""

    node_id: str
    available: dict[str, float]
    total: dict[str, float] = field(default_factory=dict)


@dataclass
class Placement:
    assignment: dict[int, str] | None  # bundle index -> node id, or None: does not fit now
    reason: str = ""


def _take(bundle: Mapping[str, float], room: dict[str, float]) -> None:
    for res, qty in bundle.items():
        room[res] = room.get(res, 0.0) - qty


def _sum(bundles: list[Mapping[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for b in bundles:
        for res, qty in b.items():
            out[res] = out.get(res, 0.0) + qty
    return out


def reserved_cpus(total: Mapping[str, float]) -> float:
    """CPUs of a node already held by placement-group bundles (from its ``CPU_group_<hex>`` totals)."""
    out = 0.0
    for name, qty in total.items():
        parsed = parse_name(name) if group_of(name) else None
        if parsed and parsed[0] == "CPU" and parsed[1] == -1:
            out += qty
    return out


def place_bundles(strategy: str, bundles: list[dict[str, float]], nodes: list[NodeRoom],
                  fixed: Mapping[int, str] | None = None, max_cpu_fraction: float | None = None,
                  use_totals: bool = False) -> Placement:
    """Choose a node for every bundle index not in ``fixed`` (see the module docstring).

    ``use_totals`` places against what each node has in all (could the group ever fit?).
    Nodes are tried in the order given, so the result is deterministic.
    """
    fixed = dict(fixed or {})
    todo = [i for i in range(len(bundles)) if i not in fixed]
    if not todo:
        return Placement({})
    room: dict[str, dict[str, float]] = {}
    for n in nodes:
        base = n.total if use_totals else n.available
        r = {k: v for k, v in base.items() if group_of(k) is None}
        if max_cpu_fraction is not None and n.total.get("CPU"):
            cap = max_cpu_fraction * n.total["CPU"] - (0.0 if use_totals else reserved_cpus(n.total))
            r["CPU"] = min(r.get("CPU", 0.0), cap)
        room[n.node_id] = r
    order = [n.node_id for n in nodes]
    pick = _STRATEGIES[strategy]
    assignment = pick(bundles, todo, order, room, fixed)
    if assignment is None:
        return Placement(None, _why(strategy, bundles, todo, len(nodes), fixed))
    return Placement(assignment)


def _strict_pack(bundles, todo, order, room, fixed):
    need = _sum([bundles[i] for i in todo])
    used = set(fixed.values())
    candidates = [n for n in order if n in used] if used else order
    for node in candidates:
        if _fits(need, room[node]):
            return {i: node for i in todo}
    return None


def _pack(bundles, todo, order, room, fixed):
    whole = _strict_pack(bundles, todo, order, room, fixed)
    if whole is not None:
        return whole
    out: dict[int, str] = {}
    used = list(dict.fromkeys(fixed.values()))
    for i in todo:
        # Fill the nodes the group already uses first, then the rest in order.
        for node in used + [n for n in order if n not in used]:
            if _fits(bundles[i], room[node]):
                _take(bundles[i], room[node])
                out[i] = node
                if node not in used:
                    used.append(node)
                break
        else:
            return None
    return out


def _spread(bundles, todo, order, room, fixed):
    out: dict[int, str] = {}
    count = {n: 0 for n in order}
    for node in fixed.values():
        if node in count:
            count[node] += 1
    for i in todo:
        # The least used node that fits (ties: the order given).
        fitting = [n for n in order if _fits(bundles[i], room[n])]
        if not fitting:
            return None
        node = min(fitting, key=lambda n: count[n])
        _take(bundles[i], room[node])
        count[node] += 1
        out[i] = node
    return out


def _strict_spread(bundles, todo, order, room, fixed):
    free = [n for n in order if n not in set(fixed.values())]
    if len(free) < len(todo):
        return None
    # Biggest bundles first; backtrack (groups are small) so a fit is found whenever one exists.
    todo = sorted(todo, key=lambda i: -sum(bundles[i].values()))
    out: dict[int, str] = {}

    def assign(k: int, taken: set) -> bool:
        if k == len(todo):
            return True
        i = todo[k]
        for node in free:
            if node not in taken and _fits(bundles[i], room[node]):
                out[i] = node
                if assign(k + 1, taken | {node}):
                    return True
                del out[i]
        return False

    return dict(out) if assign(0, set()) else None


_STRATEGIES = {"PACK": _pack, "SPREAD": _spread, "STRICT_PACK": _strict_pack, "STRICT_SPREAD": _strict_spread}


def _why(strategy: str, bundles, todo, num_nodes: int, fixed) -> str:
    wanted = [bundles[i] for i in todo]
    if strategy == "STRICT_SPREAD":
        distinct = num_nodes - len(set(fixed.values()))
        if distinct < len(todo):
            return (f"STRICT_SPREAD needs {len(todo)} distinct nodes for bundles {wanted} but only "
                    f"{max(distinct, 0)} live node(s) are free of this group's bundles")
        return f"STRICT_SPREAD: no {len(todo)} distinct nodes have room for bundles {wanted}"
    if strategy == "STRICT_PACK":
        return f"STRICT_PACK: no single node has room for all the bundles {wanted} together ({_sum(wanted)})"
    return f"{strategy}: the live nodes do not have room for bundles {wanted}"
