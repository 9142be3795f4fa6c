"""The magics of ``%load_ext juno``: ``%%remote``, remote sessions and ``%juno``.

Magics are adapters: they parse flags with IPython's magic_arguments and call
juno.kernel_ext.sessions and juno's API; nothing user-typed is ever eval'ed.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import MagicArgumentParser, argument, magic_arguments, parse_argstring

from juno.kernel_ext.sessions import SessionRegistry, check_picklable, submit_cell

DEFAULT_OUT = "_remote"


# --------------------------------------------------------------------------- flags -> options
def _json_dict(flag: str, text: str | None, example: str) -> dict | None:
    if text is None:
        return None
    text = _unquote(text)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{flag} must be a JSON object, e.g. {flag} '{example}'; "
                         f"could not parse {text!r}: {exc.msg} at column {exc.colno}") from None
    if not isinstance(value, dict):
        raise UsageError(f"{flag} must be a JSON object, e.g. {flag} '{example}', got {text!r}")
    return value


def _unquote(text: str) -> str:
    # magic_arguments splits like a shell but keeps quotes on a single token
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def task_options(args) -> dict:
    """Juno task options from parsed ``%%remote``/``%remote_session`` flags."""
    options: dict[str, Any] = {}
    if args.num_cpus is not None:
        options["num_cpus"] = args.num_cpus
    if args.num_gpus is not None:
        options["num_gpus"] = args.num_gpus
    if args.memory is not None:
        options["memory"] = args.memory
    resources = _json_dict("--resources", args.resources, '{"accelerator": 1}')
    if resources is not None:
        options["resources"] = resources
    runtime_env = _json_dict("--runtime-env", args.runtime_env, '{"env_vars": {"A": "1"}}')
    if runtime_env is not None:
        options["runtime_env"] = runtime_env
    if args.node is not None:
        from juno.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        try:
            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(_unquote(args.node), soft=False)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"--node: {exc}") from None
    return options


def _resource_flags(func):
    for decorator in reversed([
        argument("--num-cpus", type=float, default=None, help="CPUs the cell needs"),
        argument("--num-gpus", type=float, default=None, help="GPUs the cell needs (fractions share a GPU)"),
        argument("--memory", type=int, default=None, help="memory the cell needs, in bytes"),
        argument("--resources", default=None, help="custom resources as JSON, e.g. '{\"TPU\": 1}'"),
        argument("--node", default=None, help="run on this node (its hex id); fails if it cannot"),
        argument("--runtime-env", default=None, help="runtime_env as JSON, e.g. '{\"env_vars\": {\"A\": \"1\"}}'"),
    ]):
        func = decorator(func)
    return func


def _ensure_initialized() -> None:
    import juno

    if not juno.is_initialized():
        juno.init()


# --------------------------------------------------------------------------- futures
class RemoteCellFuture:
    """What ``%%remote --no-block`` leaves in ``--out``: the running cell, ObjectRef-like.

    ``result(timeout)`` waits and returns the value of the cell's last expression (raising
    the cell's error); ``done()`` says whether it finished. Assigned names reach the
    notebook namespace by themselves, on the kernel's thread, when the cell finishes."""

    def __init__(self, ref, assigns: tuple, session: str | None = None) -> None:
        self.ref = ref
        self.assigns = assigns
        self.session = session
        self.assigned = threading.Event()
        self._future = ref.future()

    def done(self) -> bool:
        return self._future.done()

    def result(self, timeout: float | None = None) -> Any:
        import juno

        value = juno.get(self.ref, timeout=timeout)
        return value if self.session else value["last"]

    def __repr__(self) -> str:
        state = "done" if self.done() else "running"
        where = f" in session {self.session!r}" if self.session else ""
        return f"<RemoteCellFuture{where} {state} {self.ref!r}>"


def _get_showing_remote_traceback(ref):
    """``juno.get(ref)``; a cell's error is raised without the driver's frames (the remote
    traceback, which the error carries, is the one that matters)."""
    import juno
    from juno.exceptions import RayTaskError

    __tracebackhide__ = True  # noqa: F841 - read by IPython's traceback formatter
    try:
        return juno.get(ref)
    except RayTaskError as exc:
        raise exc.with_traceback(None) from None


def _call_on_kernel_thread(shell, fn) -> None:
    """Run ``fn`` on the kernel's own thread (its IOLoop); in a plain IPython, at once."""
    kernel = getattr(shell, "kernel", None)
    loop = getattr(kernel, "io_loop", None)
    if loop is not None:
        loop.add_callback(fn)
    else:
        fn()


# --------------------------------------------------------------------------- the magics
@magics_class
class JunoMagics(Magics):
    """``%%remote``, ``%remote_session``, ``%remote_push``, ``%remote_pull`` and ``%juno``."""

    def __init__(self, shell) -> None:
        super().__init__(shell)
        self.sessions = SessionRegistry()

    def _hidden(self) -> set:
        hidden = set(getattr(self.shell, "user_ns_hidden", {}) or ())
        return hidden | {"In", "Out", "get_ipython", "exit", "quit"}

    # ---------------------------------------------------------------- %%remote
    @magic_arguments()
    @_resource_flags
    @argument("--no-block", action="store_true", help="return at once; the future goes into --out")
    @argument("--out", default=DEFAULT_OUT, help=f"where --no-block puts its future (default {DEFAULT_OUT})")
    @argument("--session", default=None, help="run the cell in this remote session (see %%remote_session)")
    @cell_magic
    def remote(self, line: str, cell: str):
        """Run this cell as a juno task (or in a remote session with --session).

        The names the cell reads from the notebook are shipped with it; the names it
        assigns come back (in a session they stay there); its last expression is shown."""
        __tracebackhide__ = True  # noqa: F841 - a failing cell shows its own traceback, not this magic
        args = parse_argstring(self.remote, line)
        if not args.out.isidentifier():
            raise UsageError(f"--out must be a Python name, got {args.out!r}")
        options = task_options(args)
        try:
            compile(cell, "<remote-cell>", "exec")
        except SyntaxError as exc:
            raise UsageError(f"the cell is not valid Python: {exc}") from None
        if args.session is not None:
            if options:
                raise UsageError("--session runs on the session's resources; start the session with "
                                 "%remote_session NAME --num-gpus ... instead of passing resource flags here")
            return self._run_in_session(args, cell)
        _ensure_initialized()
        ref, analysis = submit_cell(cell, self.shell.user_ns, options, hidden=self._hidden())
        if args.no_block:
            future = RemoteCellFuture(ref, analysis.assigns)
            self.shell.user_ns[args.out] = future
            future._future.add_done_callback(lambda _f: _call_on_kernel_thread(
                self.shell, lambda: self._assign_results(future)))
            return None
        result = _get_showing_remote_traceback(ref)
        self.shell.user_ns.update(result["values"])
        return result["last"]

    def _assign_results(self, future: RemoteCellFuture) -> None:
        try:
            result = future._future.result(timeout=0)
        except BaseException as exc:  # noqa: BLE001 - the cell failed: say so, keep it in the future
            print(f"juno: the %%remote --no-block cell failed ({type(exc).__name__}); "
                  f"call .result() on its future for the traceback", file=sys.stderr)
        else:
            self.shell.user_ns.update(result["values"])
        finally:
            future.assigned.set()

    def _run_in_session(self, args, cell: str):
        __tracebackhide__ = True  # noqa: F841
        _ensure_initialized()
        try:
            ref = self.sessions.run(args.session, cell, self.shell.user_ns, hidden=self._hidden())
        except KeyError as exc:
            raise UsageError(exc.args[0]) from None
        if args.no_block:
            future = RemoteCellFuture(ref, (), session=args.session)
            future._future.add_done_callback(lambda _f: future.assigned.set())
            self.shell.user_ns[args.out] = future
            return None
        return _get_showing_remote_traceback(ref)

    # ---------------------------------------------------------------- sessions
    @magic_arguments()
    @argument("name", nargs="?", default=None, help="the session's name")
    @_resource_flags
    @argument("--stop", action="store_true", help="stop the session NAME")
    @argument("--list", action="store_true", help="list the running sessions")
    @line_magic
    def remote_session(self, line: str):
        """Start a remote session NAME (an actor keeping its own namespace), or --stop/--list."""
        args = parse_argstring(self.remote_session, line)
        if args.list:
            listing = self.sessions.listing()
            if not listing:
                print("No remote sessions are running.")
            for name, options in listing.items():
                shown = ", ".join(f"{k}={v}" for k, v in options.items()) or "default resources"
                print(f"{name}: {shown}")
            return None
        if not args.name:
            raise UsageError("usage: %remote_session NAME [--num-cpus N --num-gpus N ...], "
                             "%remote_session --stop NAME, %remote_session --list")
        if not args.name.isidentifier():
            raise UsageError(f"a session name must be a Python name, got {args.name!r}")
        if args.stop:
            try:
                self.sessions.stop(args.name)
            except KeyError as exc:
                raise UsageError(exc.args[0]) from None
            print(f"Stopped remote session {args.name!r}.")
            return None
        options = task_options(args)
        _ensure_initialized()
        try:
            self.sessions.start(args.name, options)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        print(f"Started remote session {args.name!r}; run cells there with %%remote --session {args.name}")
        return None

    def _session_and_names(self, line: str, magic: str) -> tuple[str, list[str]]:
        words = line.split()
        if len(words) < 2:
            raise UsageError(f"usage: %{magic} SESSION NAME [NAME ...]")
        bad = [w for w in words if not w.isidentifier()]
        if bad:
            raise UsageError(f"%{magic} takes Python names, got {', '.join(map(repr, bad))}")
        return words[0], words[1:]

    @line_magic
    def remote_push(self, line: str):
        """``%remote_push SESSION NAME ...``: copy notebook variables into the session."""
        session, names = self._session_and_names(line, "remote_push")
        missing = [n for n in names if n not in self.shell.user_ns]
        if missing:
            raise UsageError(f"not defined in the notebook: {', '.join(missing)}")
        import juno

        values = {n: self.shell.user_ns[n] for n in names}
        check_picklable(values, "push to the session")
        try:
            handle = self.sessions.get(session)
        except KeyError as exc:
            raise UsageError(exc.args[0]) from None
        juno.get(handle.push.remote(values))

    @line_magic
    def remote_pull(self, line: str):
        """``%remote_pull SESSION NAME ...``: copy session variables into the notebook."""
        session, names = self._session_and_names(line, "remote_pull")
        import juno

        try:
            handle = self.sessions.get(session)
        except KeyError as exc:
            raise UsageError(exc.args[0]) from None
        self.shell.user_ns.update(juno.get(handle.pull.remote(names)))

    # ---------------------------------------------------------------- %juno
    @line_magic
    def juno(self, line: str):
        """``%juno status | init [--address A --num-cpus N --num-gpus N --namespace NS] | stop | dashboard``."""
        words = line.split()
        action = words[0] if words else "status"
        rest = " ".join(words[1:])
        handlers = {"status": self._juno_status, "init": self._juno_init, "stop": self._juno_stop,
                    "dashboard": self._juno_dashboard}
        if action not in handlers:
            raise UsageError(f"unknown %juno command {action!r}; use one of: {', '.join(handlers)}")
        if action != "init" and rest:
            raise UsageError(f"%juno {action} takes no arguments, got {rest!r}")
        return handlers[action](rest)

    def _juno_init(self, rest: str):
        parser = MagicArgumentParser(prog="%juno init", add_help=False)
        parser.add_argument("--address", default=None)
        parser.add_argument("--num-cpus", type=float, default=None)
        parser.add_argument("--num-gpus", type=int, default=None)
        parser.add_argument("--namespace", default=None)
        args = parser.parse_argstring(rest)
        import juno

        try:
            return juno.init(address=args.address, num_cpus=args.num_cpus, num_gpus=args.num_gpus,
                             namespace=args.namespace)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"%juno init: {exc}") from None

    def _juno_stop(self, _rest: str):
        import juno

        self.sessions.stop_all()
        if not juno.is_initialized():
            print("Juno is not running.")
            return None
        juno.shutdown()
        print("Juno stopped.")
        return None

    def _juno_status(self, _rest: str):
        import juno

        if not juno.is_initialized():
            print("Juno is not running; start it with %juno init or juno.init().")
            return None
        from IPython.display import display

        from juno.widgets import cluster_widget

        display(cluster_widget())  # live usage bars in a notebook, text and HTML where widgets don't render
        return None

    def _juno_dashboard(self, _rest: str):
        import juno
        from juno.util.notebook import current_context

        context = current_context() if juno.is_initialized() else None
        url = getattr(context, "dashboard_url", None)
        if url:
            print(f"Juno dashboard: http://{url}/  (the page asks for the cluster's token: `juno token` prints it)")
        else:
            print("This cluster has no dashboard (it was started with include_dashboard=False); "
                  "`juno dashboard` serves one.")
        print("In JupyterLab, the Juno panel in the left side bar shows the cluster too.")
        return None
