"""Checks a run makes when it starts (``fit()``), before any worker exists.

A function that cannot be pickled, or that drags a big array along, or a placement group
no node set can ever hold, would otherwise fail minutes later inside a worker or wait
forever. These checks fail at once and say which name, which resource, and what to do.
Train calls them from ``fit()``; Tune and RL reuse them for their trainables and runners.
"""
from __future__ import annotations

import functools
import inspect
import io
import sys
import types
from typing import Any, Callable, Iterator, Mapping, Sequence

import cloudpickle

__all__ = ["DEFAULT_MAX_FUNCTION_BYTES", "ResourcesUnavailableError", "check_function_shippable",
           "check_loop_signature", "check_resources_fit", "pickled_size", "STRATEGIES"]

_MIB = 1 << 20
# Past this a function is refused: it is pickled and sent to every worker of every attempt.
DEFAULT_MAX_FUNCTION_BYTES = 16 * _MIB
STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")
_NAMES_SHOWN = 3
_WALK_DEPTH = 3
# Types that hold an OS handle or a thread's state: they belong to the process that made them.
_HANDLE_WORDS = ("lock", "socket", "file", "thread", "condition", "semaphore", "event", "queue",
                 "connection", "cursor", "generator", "process", "pool", "session", "client")


class ResourcesUnavailableError(ValueError):
    """The resources a run asks for can never be placed on the cluster's live nodes."""


# ----------------------------------------------------------------------------- shipping functions
class _SizeSink:
    """A file that only counts what is written to it, plus the out-of-band buffers' bytes."""

    def __init__(self) -> None:
        self.nbytes = 0

    def write(self, data: Any) -> int:
        n = memoryview(data).nbytes
        self.nbytes += n
        return n

    def add_buffer(self, buffer: Any) -> bool:
        self.nbytes += buffer.raw().nbytes
        return False  # out of band: the buffer's bytes are counted, never copied


class _SizingPickler(cloudpickle.Pickler):
    """cloudpickle with protocol 5 (as Juno ships values), counting big buffers without copying them.

    numpy arrays go out of band by themselves; torch CPU tensors would be copied by torch's own
    reduce, so their size is counted here instead (Juno's serializer ships them zero-copy too).
    """

    def __init__(self, sink: _SizeSink) -> None:
        super().__init__(sink, protocol=5, buffer_callback=sink.add_buffer)
        self._sink = sink

    def reducer_override(self, obj: Any) -> Any:
        torch = sys.modules.get("torch")
        if (torch is not None and isinstance(obj, torch.Tensor) and obj.device.type == "cpu"
                and (obj.is_leaf or not obj.requires_grad)):
            self._sink.nbytes += obj.element_size() * obj.nelement()
            return _counted, ()
        return super().reducer_override(obj)


def _counted() -> None:
    """Stands for a value whose bytes were counted directly (never unpickled)."""


def pickled_size(value: Any) -> int:
    """Bytes ``value`` takes pickled as Juno ships it; raises what pickling raises."""
    sink = _SizeSink()
    _SizingPickler(sink).dump(value)
    return sink.nbytes


def check_function_shippable(fn: Callable, *, what: str = "train_loop_per_worker", hint: str = "train_loop_config",
                             max_bytes: int = DEFAULT_MAX_FUNCTION_BYTES) -> int:
    """Refuse ``fn`` now if it cannot reach the workers; return its pickled size in bytes.

    ``what`` names the function in messages; ``hint`` is the argument through which values
    reach it (Train: ``train_loop_config``; Tune: ``param_space``). Unpicklable: TypeError
    naming the captured variable or global at fault. Over ``max_bytes``: ValueError naming
    the biggest captured values. Arrays and tensors are measured without being copied, so
    the check costs one pickling of the function's small parts, whatever it captures
    (measured: ~0.1 ms for a closure, ~0.7 ms with a small torch model captured, ~0.1 ms to
    refuse a captured 100 MB array, which cloudpickle.dumps takes ~200 ms to copy).
    """
    if not callable(fn):
        raise TypeError(f"{what} must be a function, got {type(fn).__name__}: {_short_repr(fn)}.")
    try:
        size = pickled_size(fn)
    except Exception as exc:  # noqa: BLE001 - any pickling failure is explained, then re-raised as TypeError
        raise TypeError(_unpicklable_message(fn, what, hint, exc)) from exc
    if size > max_bytes:
        raise ValueError(_too_large_message(fn, what, hint, size, max_bytes))
    return size


def check_loop_signature(fn: Callable, *, what: str = "train_loop_per_worker", hint: str = "train_loop_config") -> int:
    """Refuse a loop the workers cannot call: it must take no argument, or one (``hint``, the config).

    Returns how many arguments to call it with (0 or 1, one when both work). Ray raises the same
    ValueError when the run starts; here it comes before any worker exists.
    """
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin or C callable: nothing to read, the call will tell
        return 1
    for count in (1, 0):
        try:
            signature.bind(*([None] * count))
            return count
        except TypeError:
            continue
    name = getattr(fn, "__name__", type(fn).__name__)
    suggested = what if name.startswith("<") else name  # a lambda
    raise ValueError(f"{what} must take no argument or one (the {hint} dict), but it is {name}{signature}. "
                     f"Write it as def {suggested}(config): ... and read the values from config[...].")


def _unpicklable_message(fn: Callable, what: str, hint: str, exc: Exception) -> str:
    error = f"{type(exc).__name__}: {exc}"
    culprit = _find_unpicklable(fn)
    if culprit is None:
        return (f"{what} cannot be pickled to be sent to the workers ({error}). Create the values it uses "
                f"inside {what}, or pass picklable settings through {hint} and build them there.")
    path, value = culprit
    kind = _type_name(value)
    if _is_handle(value):
        fix = (f"A {kind} belongs to the process that made it: create or open it inside {what} "
               "(each worker then has its own).")
    else:
        fix = (f"Create it inside {what}, or pass picklable settings through {hint} and build it "
               f"there (e.g. {what}(config) reads config[...]).")
    return f"{what} cannot be pickled to be sent to the workers: it refers to {path} (a {kind}) ({error}). {fix}"


def _too_large_message(fn: Callable, what: str, hint: str, size: int, max_bytes: int) -> str:
    sizes = []
    for path, value in _captured(fn):
        try:
            sizes.append((pickled_size(value), path, value))
        except Exception:  # noqa: BLE001 - the whole function pickled, so this is a part shared elsewhere
            continue
    sizes.sort(key=lambda t: -t[0])
    biggest = ", ".join(f"{path} ({_type_name(value)}, {n / _MIB:.1f} MiB)"
                        for n, path, value in sizes[:_NAMES_SHOWN] if n >= max(1, max_bytes // 100))
    culprits = f" The biggest values it captures: {biggest}." if biggest else ""
    return (f"{what} is {size / _MIB:.1f} MiB pickled (the limit is {max_bytes / _MIB:.1f} MiB): it is sent to "
            f"every worker at every start.{culprits} Put large values in the object store once, "
            f"ref = juno.put(value), pass the ref through {hint} and call juno.get(ref) inside {what} "
            "(or use tune.with_parameters).")


def _find_unpicklable(fn: Any, depth: int = 0) -> tuple[str, Any] | None:
    """(``"the global 'lock'"``, value) of the first captured value that does not pickle."""
    for path, value in _captured(fn):
        try:
            pickled_size(value)
        except Exception:  # noqa: BLE001 - this is the value we are looking for, or holds it
            inner = _find_unpicklable(value, depth + 1) if depth < _WALK_DEPTH else None
            if inner is not None and _by_value(value):
                return f"{path}, which refers to {inner[0]}", inner[1]
            return path, value
    return None


def _captured(obj: Any) -> Iterator[tuple[str, Any]]:
    """(description, value) of what pickling ``obj`` by value pickles along with it."""
    if isinstance(obj, types.MethodType):
        yield "the bound object (self)", obj.__self__
        obj = obj.__func__
    if isinstance(obj, functools.partial):
        yield from ((f"the partial's argument {i}", a) for i, a in enumerate(obj.args))
        yield from ((f"the partial's argument {k!r}", v) for k, v in (obj.keywords or {}).items())
        yield from _captured(obj.func)
        return
    if not inspect.isfunction(obj):
        if not isinstance(obj, type):
            for name, value in getattr(obj, "__dict__", {}).items():
                yield f"the attribute {name!r}", value
        return
    code = obj.__code__
    for name, cell in zip(code.co_freevars, obj.__closure__ or ()):
        try:
            yield f"the captured variable {name!r}", cell.cell_contents
        except ValueError:  # an empty cell: the variable is not assigned yet
            continue
    for i, value in enumerate(obj.__defaults__ or ()):
        yield f"the default value {i} of {obj.__name__}()", value
    for name, value in (obj.__kwdefaults__ or {}).items():
        yield f"the default of {obj.__name__}()'s argument {name!r}", value
    fn_globals = obj.__globals__
    for name in _global_names(code):
        if name in fn_globals:
            value = fn_globals[name]
            if not isinstance(value, types.ModuleType):
                yield f"the global {name!r}", value


def _global_names(code: types.CodeType) -> Iterator[str]:
    """Names ``code`` and the code nested in it (lambdas, inner functions) may read as globals."""
    seen: set[str] = set()
    stack = [code]
    while stack:
        c = stack.pop()
        for name in c.co_names:
            if name not in seen:
                seen.add(name)
                yield name
        stack.extend(k for k in c.co_consts if isinstance(k, types.CodeType))


def _by_value(value: Any) -> bool:
    """Whether cloudpickle pickles ``value``'s code and captures (not a name to import)."""
    if isinstance(value, (types.MethodType, functools.partial)):
        return True
    if not inspect.isfunction(value):
        return not isinstance(value, type)
    module = sys.modules.get(value.__module__ or "")
    if module is None or value.__module__ == "__main__":
        return True
    target: Any = module
    for part in value.__qualname__.split("."):
        target = getattr(target, part, None)
    return target is not value


def _is_handle(value: Any) -> bool:
    if isinstance(value, (io.IOBase, types.GeneratorType)):
        return True
    name = _type_name(value).lower()
    return any(word in name for word in _HANDLE_WORDS)


def _type_name(value: Any) -> str:
    cls = type(value)
    module = cls.__module__
    return cls.__qualname__ if module in ("builtins", "__main__") else f"{module}.{cls.__qualname__}"


def _short_repr(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


# ----------------------------------------------------------------------------- resources
def check_resources_fit(bundles: Sequence[Mapping[str, float]], strategy: str, nodes: Sequence[Mapping],
                        unit: str = "worker") -> None:
    """Raise ResourcesUnavailableError if the placement group (``bundles``, ``strategy``) can never be
    placed on the alive ``nodes`` (``juno.nodes()`` entries), even with the cluster idle.

    PACK and SPREAD place anywhere a bundle fits on one node: first-fit-decreasing bin packing,
    then (only when that fails) an exact search with a step budget, so a run is refused only
    when no placement exists. STRICT_PACK needs one node with room for all bundles together,
    STRICT_SPREAD one distinct node per bundle (a bipartite matching). ``unit`` names what one
    bundle is for in the message (a worker, a trial ...).
    """
    strategy = strategy.upper() if isinstance(strategy, str) else strategy
    if strategy not in STRATEGIES:
        raise ValueError(f"placement strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}.")
    wanted = [{r: float(q) for r, q in b.items() if q} for b in bundles]
    rooms = [{r: float(q) for r, q in (n.get("Resources") or {}).items()} for n in nodes if n.get("Alive")]
    if _placeable(strategy, wanted, rooms):
        return
    raise ResourcesUnavailableError(_resources_message(strategy, wanted, rooms, unit))


def _fits(bundle: Mapping[str, float], room: Mapping[str, float]) -> bool:
    return all(q <= room.get(r, 0.0) + 1e-9 for r, q in bundle.items())


def _total(bundles: Sequence[Mapping[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for b in bundles:
        for r, q in b.items():
            out[r] = out.get(r, 0.0) + q
    return out


def _placeable(strategy: str, bundles: list[dict], rooms: list[dict]) -> bool:
    if not bundles:
        return True
    if strategy == "STRICT_PACK":
        need = _total(bundles)
        return any(_fits(need, room) for room in rooms)
    if strategy == "STRICT_SPREAD":
        return _distinct_nodes(bundles, rooms)
    return _bin_pack(bundles, rooms)


def _distinct_nodes(bundles: list[dict], rooms: list[dict]) -> bool:
    """One node per bundle, each node used once: augmenting-path bipartite matching."""
    if len(bundles) > len(rooms):
        return False
    owner: dict[int, int] = {}  # node -> bundle

    def claim(b: int, seen: set[int]) -> bool:
        for n, room in enumerate(rooms):
            if n in seen or not _fits(bundles[b], room):
                continue
            seen.add(n)
            if n not in owner or claim(owner[n], seen):
                owner[n] = b
                return True
        return False

    return all(claim(b, set()) for b in range(len(bundles)))


def _bin_pack(bundles: list[dict], rooms: list[dict], budget: int = 20_000) -> bool:
    """Each bundle on one node, nodes shared: first-fit decreasing, then a bounded exact search."""
    order = sorted(bundles, key=lambda b: sorted(b.values(), reverse=True), reverse=True)
    left = [dict(room) for room in rooms]
    for b in order:
        node = next((room for room in left if _fits(b, room)), None)
        if node is None:
            break
        _take(b, node)
    else:
        return True
    if any(not any(_fits(b, room) for room in rooms) for b in order):
        return False  # some bundle fits no node at all
    if any(q > _total(rooms).get(r, 0.0) + 1e-9 for r, q in _total(order).items()):
        return False  # the totals cannot cover it
    steps = [budget]

    def place(k: int, left: list[dict]) -> bool:
        if k == len(order):
            return True
        tried: list[dict] = []
        for room in left:
            if steps[0] <= 0:
                return True  # undecided within the budget: never refuse what might fit
            if room in tried or not _fits(order[k], room):
                continue  # a node with the same room left as one tried gives the same outcome
            tried.append(dict(room))
            steps[0] -= 1
            _take(order[k], room)
            ok = place(k + 1, left)
            _give(order[k], room)
            if ok:
                return True
        return False

    return place(0, [dict(room) for room in rooms])


def _take(bundle: Mapping[str, float], room: dict[str, float]) -> None:
    for r, q in bundle.items():
        room[r] = room.get(r, 0.0) - q


def _give(bundle: Mapping[str, float], room: dict[str, float]) -> None:
    for r, q in bundle.items():
        room[r] = room.get(r, 0.0) + q


def _fmt(resources: Mapping[str, float]) -> str:
    return "{" + ", ".join(f"{r}: {q:g}" for r, q in resources.items()) + "}"


def _resources_message(strategy: str, bundles: list[dict], rooms: list[dict], unit: str) -> str:
    n = len(bundles)
    need = _total(bundles)
    have = _total(rooms)
    distinct = [dict(t) for t in dict.fromkeys(tuple(sorted(b.items())) for b in bundles)]
    per = (f"{_fmt(distinct[0])} per {unit}" if len(distinct) == 1
           else "per " + unit + ": " + ", ".join(_fmt(b) for b in bundles))
    if not rooms:
        return (f"The run needs {n} {unit}(s) ({per}) but the cluster has no alive node. Start one "
                "(juno.init(), or `juno start` on a machine) and try again.")
    largest = {r: max(room.get(r, 0.0) for room in rooms) for r in need}
    missing = next((r for b in bundles for r, q in b.items() if q > largest[r] + 1e-9), None)
    short = next((r for r, q in need.items() if q > have.get(r, 0.0) + 1e-9), None)
    if missing is not None:
        q = max(b.get(missing, 0.0) for b in bundles)
        why = (f"each {unit} needs {missing}={q:g} but " +
               (f"no alive node has any {missing}" if not largest[missing]
                else f"the largest node has {missing}={largest[missing]:g}"))
        resource = missing
    elif short is not None:
        why = f"the run needs {short}={need[short]:g} in all but the cluster has {short}={have.get(short, 0.0):g}"
        resource = short
    elif strategy == "STRICT_PACK":
        biggest = max(rooms, key=lambda room: sum(min(room.get(r, 0.0), q) for r, q in need.items()))
        resource = next((r for r, q in need.items() if q > biggest.get(r, 0.0) + 1e-9), next(iter(need), "CPU"))
        why = (f"STRICT_PACK puts every {unit} on one node, and no node has {_fmt(need)} "
               f"(the best has {resource}={biggest.get(resource, 0.0):g})")
    elif strategy == "STRICT_SPREAD":
        fit = sum(1 for room in rooms if any(_fits(b, room) for b in bundles))
        resource = next(iter(need), "CPU")
        if len(rooms) < n:
            why = f"STRICT_SPREAD puts each {unit} on its own node, and only {len(rooms)} node(s) are alive"
        elif fit < n:
            why = (f"STRICT_SPREAD puts each {unit} on its own node, and only {fit} of the {len(rooms)} alive "
                   f"node(s) can hold one")
        else:
            why = f"STRICT_SPREAD puts each {unit} on its own node, and no assignment gives every {unit} one that fits"
    else:
        resource = next(iter(need), "CPU")
        why = f"the totals are enough, but split over the nodes no placement gives each {unit} one node"
    nodes = "; ".join(_fmt({r: room.get(r, 0.0) for r in need}) for room in rooms)
    fixes = [f"fewer {unit}s (ScalingConfig(num_workers=...))", "smaller resources_per_worker"]
    if resource == "GPU":
        fixes += ["use_gpu=False", "a node with GPUs (juno.init(num_gpus=N) declares logical ones)"]
    else:
        fixes.append("more nodes or bigger ones")
    if strategy.startswith("STRICT_"):
        fixes.append(f"placement_strategy={strategy.split('_')[1]!r}")
    return (f"The run's resources can never be placed with {strategy}: {why}. It asks for {n} {unit}(s), "
            f"{per}, {_fmt(need)} in all; the cluster's alive nodes have {_fmt(have)} in all "
            f"({len(rooms)} node(s): {nodes}). Use {', '.join(fixes[:-1])} or {fixes[-1]}.")
