"""How placement-group bundles appear as resources, and how work asks for them (Ray's scheme).

When bundle ``i`` of group ``G`` (its id in hex) is committed on a node, the node's
resources for the bundle move out of its free pool and the node gains, for every
resource ``R`` of the bundle with quantity ``q``:

* ``R_group_i_G: q``  (this bundle) and ``R_group_G: q`` (any bundle of G; it sums
  over the node's bundles of G),
* ``bundle_group_i_G`` and ``bundle_group_G`` (``BUNDLE_UNITS`` per bundle).

Work placed in the group asks for ``R_group_G`` (bundle index -1) or for both
``R_group_i_G`` and ``R_group_G`` (index ``i``), plus ``BUNDLE_REQUEST`` of the
matching ``bundle_group_*`` resource, so work that asks for no resources still runs
on the bundle's node. Taking the wildcard for indexed work too keeps "any bundle"
work from over-committing the group. No I/O here: the owner, the GCS and the node
managers all use these helpers.
"""
from __future__ import annotations

import math
import re
from typing import Any, Mapping

STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")
BUNDLE = "bundle"
BUNDLE_UNITS = 1000.0
BUNDLE_REQUEST = 0.001

# <resource>_group_<hex> or <resource>_group_<index>_<hex>
_NAME = re.compile(r"^(?P<res>.+?)_group_(?:(?P<index>\d+)_)?(?P<pg>[0-9a-f]{32})$")


def resource_name(resource: str, pg_hex: str, index: int = -1) -> str:
    """``CPU_group_<hex>`` (any bundle, index -1) or ``CPU_group_<index>_<hex>``."""
    if index < 0:
        return f"{resource}_group_{pg_hex}"
    return f"{resource}_group_{index}_{pg_hex}"


def parse_name(name: str) -> tuple[str, int, str] | None:
    """``(resource, index or -1, pg_hex)`` for a bundle resource name, else None."""
    m = _NAME.match(name)
    if m is None:
        return None
    index = m.group("index")
    return m.group("res"), int(index) if index is not None else -1, m.group("pg")


def group_of(name: str) -> str | None:
    """The placement group (hex id) a resource name belongs to, or None for ordinary resources."""
    if "_group_" not in name:
        return None
    parsed = parse_name(name)
    return parsed[2] if parsed else None


def groups_in(resources: Mapping[str, float]) -> set[str]:
    """The placement groups a resource request (or a node's totals) refers to."""
    out = set()
    for name in resources:
        pg = group_of(name)
        if pg is not None:
            out.add(pg)
    return out


def bundle_totals(pg_hex: str, index: int, bundle: Mapping[str, float]) -> dict[str, float]:
    """What a node gains when bundle ``index`` of the group is committed there."""
    out: dict[str, float] = {}
    for res, qty in bundle.items():
        if qty:
            out[resource_name(res, pg_hex, index)] = float(qty)
            out[resource_name(res, pg_hex)] = float(qty)
    out[resource_name(BUNDLE, pg_hex, index)] = BUNDLE_UNITS
    out[resource_name(BUNDLE, pg_hex)] = BUNDLE_UNITS
    return out


def request_in_group(resources: Mapping[str, float], pg_hex: str, index: int) -> dict[str, float]:
    """Rewrite a task's or actor's resource request to run in the group (bundle ``index``, -1: any)."""
    out: dict[str, float] = {}
    for res, qty in resources.items():
        if not qty:
            continue
        out[resource_name(res, pg_hex)] = float(qty)
        if index >= 0:
            out[resource_name(res, pg_hex, index)] = float(qty)
    out[resource_name(BUNDLE, pg_hex, index)] = BUNDLE_REQUEST
    return out


def fits_bundle(request: Mapping[str, float], bundle: Mapping[str, float]) -> bool:
    return all(qty <= bundle.get(res, 0) + 1e-9 for res, qty in request.items() if qty)


def check_fits(request: Mapping[str, float], bundles: list[dict], index: int, what: str) -> None:
    """Raise ValueError (as Ray does) if the request fits no bundle it may use."""
    candidates = bundles if index < 0 else [bundles[index]]
    if any(fits_bundle(request, b) for b in candidates):
        return
    where = "any bundle" if index < 0 else f"bundle {index} ({bundles[index]})"
    raise ValueError(
        f"Cannot schedule {what} with the placement group because the resource request {dict(request)} "
        f"cannot fit into {where} of the placement group, whose bundles are {bundles}. Ask for less "
        "(num_cpus, num_gpus, resources=...), or create the group with bigger bundles.")


def check_bundle_index(index: int, bundle_count: int) -> None:
    if index != -1 and not 0 <= index < bundle_count:
        raise ValueError(
            f"placement_group_bundle_index {index} is out of range: the placement group has {bundle_count} "
            f"bundle(s), so the index must be -1 (any bundle) or between 0 and {bundle_count - 1}.")


def validate_bundles(bundles: Any) -> list[dict[str, float]]:
    """Check ``placement_group(bundles=...)`` and return a normalized copy (floats, zeros dropped)."""
    if not isinstance(bundles, (list, tuple)):
        raise TypeError(f"placement_group bundles must be a list of dicts, got {type(bundles).__name__}: "
                        f"{bundles!r}.")
    if not bundles:
        raise ValueError("The placement group `bundles` argument cannot contain an empty list: give at least "
                         "one bundle, e.g. [{'CPU': 1}].")
    out = []
    for i, bundle in enumerate(bundles):
        if not isinstance(bundle, Mapping):
            raise TypeError(f"Bundle {i} must be a dict of resource name -> quantity, got "
                            f"{type(bundle).__name__}: {bundle!r}.")
        clean: dict[str, float] = {}
        for res, qty in bundle.items():
            if not isinstance(res, str) or not res:
                raise TypeError(f"Bundle {i} has a bad resource name {res!r}: names are non-empty strings.")
            if isinstance(qty, bool) or not isinstance(qty, (int, float)) or not math.isfinite(qty):
                raise TypeError(f"Bundle {i}: {res!r} must be a finite number, got {qty!r}.")
            if qty < 0:
                raise ValueError(f"Bundle {i}: {res!r} must be >= 0, got {qty!r}.")
            if group_of(res) is not None or res.startswith(BUNDLE + "_group_"):
                raise ValueError(f"Bundle {i}: {res!r} is a placement group resource; bundles ask for plain "
                                 "resources such as CPU, GPU, memory or custom ones.")
            if qty:
                clean[res] = float(qty)
        if not clean:
            raise ValueError(f"Bundles cannot be an empty dictionary or resources with only 0 values: bundle {i} "
                             f"is {dict(bundle)!r}. Bundles: {list(bundles)!r}.")
        if "GPU" in clean and clean["GPU"] > 1 and clean["GPU"] != int(clean["GPU"]):
            raise ValueError(f"Bundle {i}: GPU above 1 must be a whole number, got {clean['GPU']!r}.")
        out.append(clean)
    return out


def validate_strategy(strategy: Any) -> str:
    if strategy not in STRATEGIES:
        raise ValueError(f"Invalid placement group strategy {strategy!r}. Supported strategies are: "
                         f"{', '.join(STRATEGIES)}.")
    return strategy
