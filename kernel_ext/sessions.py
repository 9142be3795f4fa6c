"""Running notebook cells on the cluster: one-off cell tasks and stateful remote sessions.

This is the library the magics adapt (``%%remote`` and ``%remote_session`` only parse
flags and call what is here), usable without IPython:

* ``submit_cell(code, namespace, options)`` runs a cell as a task: the names it reads from
  ``namespace`` travel with it, and the task returns what it assigned plus the value of its
  last expression.
* ``RemoteSession`` is an actor that keeps its own namespace between cells
  (``run``, ``push``, ``pull``, ``names``); ``SessionRegistry`` names the ones a kernel started.
"""

from __future__ import annotations

import builtins
import linecache
import pickle
import threading
from typing import Any

import cloudpickle

from juno.kernel_ext.cell_analysis import CELL_FILENAME, CellAnalysis, analyse_cell, split_last_expression


class UnpicklableValueError(TypeError):
    """A value a cell needs to ship (or send back) cannot be pickled; names the variables."""


# --------------------------------------------------------------------------- executing a cell
def execute_cell(code: str, namespace: dict) -> Any:
    """Run ``code`` in ``namespace`` like an IPython cell; return the last expression's value (or None).

    The source is registered with linecache so a traceback shows the cell's lines."""
    _register_source(code)
    namespace.setdefault("__builtins__", builtins)
    namespace.setdefault("__name__", "__main__")
    body, last = split_last_expression(code)
    exec(compile(body, CELL_FILENAME, "exec"), namespace)  # noqa: S102 - the user's own cell, run remotely
    if last is None:
        return None
    return eval(compile(last, CELL_FILENAME, "eval"), namespace)  # noqa: S307 - the user's own cell


def _register_source(code: str) -> None:
    lines = code.splitlines(keepends=True)
    linecache.cache[CELL_FILENAME] = (len(code), None, lines, CELL_FILENAME)


def _drop_buffer(buffer: pickle.PickleBuffer) -> bool:
    return False  # out of band: the check needs only that the value pickles, not its bytes


def unpicklable_names(values: dict) -> dict[str, str]:
    """name -> why, for each value cloudpickle cannot pickle. Large buffers (numpy, arrow) are
    left out of band, so the check does not copy the data the real send copies once more."""
    bad = {}
    for name, value in values.items():
        try:
            cloudpickle.dumps(value, protocol=5, buffer_callback=_drop_buffer)
        except Exception as exc:  # noqa: BLE001 - any pickling failure is reported by name
            bad[name] = f"{type(value).__name__}: {exc}"
    return bad


def _describe_unpicklable(bad: dict[str, str], direction: str) -> str:
    listed = "\n".join(f"  {name}: {why}" for name, why in bad.items())
    return (f"{len(bad)} variable(s) cannot be pickled to {direction}:\n{listed}\n"
            "Create such objects (locks, sockets, open files, clients) inside the cell instead.")


def run_cell_task(code: str, shipped: dict, assigns: tuple) -> dict:
    """The body of a ``%%remote`` task: run the cell in a fresh namespace holding ``shipped``;
    return ``{"values": {assigned name: value}, "last": value}``."""
    namespace: dict = {"__builtins__": builtins, "__name__": "__main__"}
    namespace.update(shipped)
    last = execute_cell(code, namespace)
    values = {name: namespace[name] for name in assigns if name in namespace}
    result = {"values": values, "last": last}
    check_picklable({**values, **({"<last expression>": last} if last is not None else {})},
                    "send back to the notebook")
    return result


class RemoteSession:
    """A stateful namespace on the cluster (the body of ``%remote_session`` actors)."""

    def __init__(self) -> None:
        self.namespace: dict = {"__builtins__": builtins, "__name__": "__main__"}

    def run(self, code: str, shipped: dict) -> Any:
        # the session's own names win over the notebook's: %remote_push replaces them
        for name, value in shipped.items():
            self.namespace.setdefault(name, value)
        last = execute_cell(code, self.namespace)
        if last is not None:
            check_picklable({"<last expression>": last}, "show in the notebook")
        return last

    def push(self, values: dict) -> list[str]:
        self.namespace.update(values)
        return sorted(values)

    def pull(self, names: list[str]) -> dict:
        missing = [n for n in names if n not in self.namespace]
        if missing:
            raise NameError(f"not defined in the session: {', '.join(missing)}")
        values = {n: self.namespace[n] for n in names}
        check_picklable(values, "pull into the notebook")
        return values

    def names(self) -> list[str]:
        return sorted(n for n in self.namespace if not n.startswith("__"))


def check_picklable(values: dict, direction: str) -> None:
    """Raise UnpicklableValueError naming every value of ``values`` that cannot be pickled."""
    bad = unpicklable_names(values)
    if bad:
        raise UnpicklableValueError(_describe_unpicklable(bad, direction))


# --------------------------------------------------------------------------- submitting
def ship(analysis: CellAnalysis, namespace: dict, hidden: set | frozenset = frozenset()) -> dict:
    """The values to ship, checked: an unpicklable one fails here, naming it."""
    shipped = {k: v for k, v in analysis.shipped(namespace).items() if k not in hidden}
    check_picklable(shipped, "ship to the cluster")
    return shipped


_remote_lock = threading.Lock()
_remote_cell_fn = None


def _cell_function():
    global _remote_cell_fn
    with _remote_lock:
        if _remote_cell_fn is None:
            import juno

            _remote_cell_fn = juno.remote(run_cell_task)
        return _remote_cell_fn


def submit_cell(code: str, namespace: dict, options: dict | None = None,
                hidden: set | frozenset = frozenset()) -> tuple[Any, CellAnalysis]:
    """Submit ``code`` as a task; return its ObjectRef and the analysis (which names come back)."""
    analysis = analyse_cell(code)
    shipped = ship(analysis, namespace, hidden)
    fn = _cell_function()
    if options:
        fn = fn.options(**options)
    return fn.remote(code, shipped, analysis.assigns), analysis


class SessionRegistry:
    """The remote sessions a kernel started, by name."""

    def __init__(self) -> None:
        self._sessions: dict[str, Any] = {}
        self._options: dict[str, dict] = {}
        self._connection: dict[str, Any] = {}  # name -> the juno connection it was started in

    @staticmethod
    def _current_connection():
        from juno.util.notebook import current_context

        return current_context()

    def _prune(self) -> None:
        """Forget sessions of an earlier connection (juno.shutdown() took their actors with it)."""
        current = self._current_connection()
        for name in [n for n, conn in self._connection.items() if conn is not current]:
            self._sessions.pop(name, None)
            self._options.pop(name, None)
            self._connection.pop(name, None)

    def start(self, name: str, options: dict | None = None):
        import juno

        self._prune()
        if name in self._sessions:
            raise ValueError(f"a remote session named {name!r} is already running; "
                             f"stop it first with %remote_session --stop {name}")
        actor_cls = juno.remote(RemoteSession)
        handle = actor_cls.options(**(options or {})).remote()
        juno.get(handle.names.remote(), timeout=60)  # started (or its failure surfaces here)
        self._sessions[name] = handle
        self._options[name] = dict(options or {})
        self._connection[name] = self._current_connection()
        return handle

    def get(self, name: str):
        self._prune()
        try:
            return self._sessions[name]
        except KeyError:
            known = ", ".join(sorted(self._sessions)) or "none"
            raise KeyError(f"no remote session named {name!r} (running: {known}); "
                           f"start one with %remote_session {name}") from None

    def stop(self, name: str) -> None:
        import juno

        handle = self.get(name)
        del self._sessions[name]
        self._options.pop(name, None)
        self._connection.pop(name, None)
        juno.kill(handle)

    def stop_all(self) -> None:
        for name in list(self._sessions):
            try:
                self.stop(name)
            except Exception:  # noqa: BLE001 - best effort while unloading
                pass

    def listing(self) -> dict[str, dict]:
        self._prune()
        return {name: dict(self._options[name]) for name in sorted(self._sessions)}

    def run(self, name: str, code: str, namespace: dict, hidden: set | frozenset = frozenset()):
        """Submit ``code`` to the session; return the ObjectRef of its last expression's value."""
        handle = self.get(name)
        shipped = ship(analyse_cell(code), namespace, hidden)
        return handle.run.remote(code, shipped)
