"""Scheduling strategies, named and shaped like ``ray.util.scheduling_strategies``.

Users pass these as ``scheduling_strategy=`` to ``@remote`` / ``.options()``.
Arguments are checked when the strategy is built so that mistakes surface at
the call site rather than later inside the scheduler.
"""

from __future__ import annotations

import string
from typing import Any, Mapping, Union

__all__ = [
    "DEFAULT_SCHEDULING_STRATEGY", "SPREAD_SCHEDULING_STRATEGY",
    "NodeAffinitySchedulingStrategy", "PlacementGroupSchedulingStrategy",
    "NodeLabelSchedulingStrategy", "In", "NotIn", "Exists", "DoesNotExist",
    "SchedulingStrategyT",
]

DEFAULT_SCHEDULING_STRATEGY = "DEFAULT"
SPREAD_SCHEDULING_STRATEGY = "SPREAD"

_HEX = frozenset(string.hexdigits)


def _check_bool(name: str, value: Any, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, bool):
        allowed = "a bool or None" if allow_none else "a bool"
        raise TypeError(f"{name} must be {allowed}, got {value!r} "
                        f"({type(value).__name__}).")


class NodeAffinitySchedulingStrategy:
    """Run on the node with ``node_id``; if ``soft``, fall back to other nodes."""

    def __init__(self, node_id: str, soft: bool, _spill_on_unavailable: bool = False,
                 _fail_on_unavailable: bool = False) -> None:
        if isinstance(node_id, (bytes, bytearray)):
            node_id = node_id.hex()
        if not isinstance(node_id, str):
            raise TypeError(f"node_id must be a hex string, got {node_id!r} "
                            f"({type(node_id).__name__}).")
        if not node_id or not set(node_id) <= _HEX:
            raise ValueError(f"node_id must be a non-empty hex string (e.g. from "
                             f"get_runtime_context().get_node_id()), got {node_id!r}.")
        _check_bool("soft", soft)
        _check_bool("_spill_on_unavailable", _spill_on_unavailable)
        _check_bool("_fail_on_unavailable", _fail_on_unavailable)
        self.node_id = node_id.lower()
        self.soft = soft
        self._spill_on_unavailable = _spill_on_unavailable
        self._fail_on_unavailable = _fail_on_unavailable

    def _key(self) -> tuple:
        return (self.node_id, self.soft, self._spill_on_unavailable,
                self._fail_on_unavailable)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NodeAffinitySchedulingStrategy):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash((type(self).__name__,) + self._key())

    def __repr__(self) -> str:
        extra = ""
        if self._spill_on_unavailable:
            extra += ", _spill_on_unavailable=True"
        if self._fail_on_unavailable:
            extra += ", _fail_on_unavailable=True"
        return (f"NodeAffinitySchedulingStrategy(node_id={self.node_id!r}, "
                f"soft={self.soft}{extra})")


class PlacementGroupSchedulingStrategy:
    """Run inside a placement group, optionally in one bundle (-1 means any)."""

    def __init__(self, placement_group: Any, placement_group_bundle_index: int = -1,
                 placement_group_capture_child_tasks: bool | None = None) -> None:
        index = placement_group_bundle_index
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError("placement_group_bundle_index must be an int, got "
                            f"{index!r} ({type(index).__name__}).")
        if index < -1:
            raise ValueError("placement_group_bundle_index must be -1 (any bundle) "
                             f"or a bundle index >= 0, got {index}.")
        _check_bool("placement_group_capture_child_tasks",
                    placement_group_capture_child_tasks, allow_none=True)
        self.placement_group = placement_group
        self.placement_group_bundle_index = index
        self.placement_group_capture_child_tasks = placement_group_capture_child_tasks

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PlacementGroupSchedulingStrategy):
            return NotImplemented
        return (self.placement_group == other.placement_group
                and self.placement_group_bundle_index == other.placement_group_bundle_index
                and self.placement_group_capture_child_tasks
                == other.placement_group_capture_child_tasks)

    def __hash__(self) -> int:
        # The placement group may be unhashable; equal strategies still hash equal.
        return hash((type(self).__name__, self.placement_group_bundle_index,
                     self.placement_group_capture_child_tasks))

    def __repr__(self) -> str:
        return (f"PlacementGroupSchedulingStrategy(placement_group={self.placement_group!r}, "
                f"placement_group_bundle_index={self.placement_group_bundle_index}, "
                "placement_group_capture_child_tasks="
                f"{self.placement_group_capture_child_tasks})")


# --------------------------------------------------------------------------- #
# Label expressions for NodeLabelSchedulingStrategy
# --------------------------------------------------------------------------- #

class _LabelOperator:
    """Base of label match expressions; compared and hashed by their values."""

    values: tuple[str, ...] = ()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _LabelOperator):
            return NotImplemented
        return type(self) is type(other) and set(self.values) == set(other.values)

    def __hash__(self) -> int:
        return hash((type(self).__name__, frozenset(self.values)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(repr(v) for v in self.values)})"


class _ValuesOperator(_LabelOperator):
    def __init__(self, *values: str) -> None:
        if not values:
            raise ValueError(f"{type(self).__name__}() needs at least one label value.")
        for v in values:
            if not isinstance(v, str) or not v:
                raise TypeError(f"{type(self).__name__}() label values must be "
                                f"non-empty strings, got {v!r}.")
        self.values = tuple(values)


class In(_ValuesOperator):
    """The node's label value is one of ``values``."""


class NotIn(_ValuesOperator):
    """The node's label value is none of ``values`` (or the label is absent)."""


class Exists(_LabelOperator):
    """The node has the label, with any value."""


class DoesNotExist(_LabelOperator):
    """The node does not have the label."""


def _to_expressions(param: str, labels: Mapping[str, Any] | None) -> dict[str, _LabelOperator]:
    """Normalize a label map; plain strings and lists of strings mean ``In(...)``."""
    if labels is None:
        return {}
    if not isinstance(labels, Mapping):
        raise TypeError(f"{param} must be a dict of label name -> In/NotIn/Exists/"
                        f"DoesNotExist, got {labels!r} ({type(labels).__name__}).")
    out: dict[str, _LabelOperator] = {}
    for key, value in labels.items():
        if not isinstance(key, str) or not key:
            raise TypeError(f"{param} label names must be non-empty strings, got {key!r}.")
        if isinstance(value, _LabelOperator):
            out[key] = value
        elif isinstance(value, str):
            out[key] = In(value)
        elif isinstance(value, (list, tuple, set, frozenset)):
            out[key] = In(*value)
        else:
            raise ValueError(f"{param}[{key!r}] must be In(...), NotIn(...), Exists(), "
                             f"DoesNotExist(), a string or a list of strings, got {value!r}.")
    return out


class NodeLabelSchedulingStrategy:
    """Run on nodes whose labels match ``hard``; prefer those also matching ``soft``."""

    def __init__(self, hard: Mapping[str, Any], *, soft: Mapping[str, Any] | None = None
                 ) -> None:
        if hard is None:
            raise TypeError("hard must be a dict of label expressions (it may be {} "
                            "when soft is given), got None.")
        self.hard = _to_expressions("hard", hard)
        self.soft = _to_expressions("soft", soft)
        if not self.hard and not self.soft:
            raise ValueError("NodeLabelSchedulingStrategy needs at least one hard or "
                             "soft label expression.")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NodeLabelSchedulingStrategy):
            return NotImplemented
        return self.hard == other.hard and self.soft == other.soft

    def __hash__(self) -> int:
        return hash((type(self).__name__, frozenset(self.hard.items()),
                     frozenset(self.soft.items())))

    def __repr__(self) -> str:
        soft = f", soft={self.soft!r}" if self.soft else ""
        return f"NodeLabelSchedulingStrategy(hard={self.hard!r}{soft})"


SchedulingStrategyT = Union[None, str, NodeAffinitySchedulingStrategy,
                            PlacementGroupSchedulingStrategy, NodeLabelSchedulingStrategy]
