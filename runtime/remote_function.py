"""``@juno.remote`` on a function: the RemoteFunction and its ``.remote()`` call path."""
from __future__ import annotations

import functools
import inspect
from typing import Any

from juno.owner import options as opt
from juno.owner import task_spec as ts
from juno.owner.call_signature import signature_of
from juno.owner.export_size import check_export_size
from juno.node.resources import normalize_request
from juno.object_ref import ObjectRefGenerator
from juno.owner.call_builder import export_code, pickle_retry_exceptions, prepare_args, return_refs
from juno.owner.task_spec import TaskEntry, build_spec
from juno.util.placement_group import apply_placement_group, strategy_from_options


class RemoteFunction:
    """A function that runs as a task on the cluster when called with ``.remote()``."""

    def __init__(self, function, options: dict):
        if not callable(function) or inspect.isclass(function):
            raise TypeError(f"@remote on a function needs a function, got {function!r}")
        self._function = function
        self._options = opt.validate_task_options(options, in_options=False)
        self._is_generator = inspect.isgeneratorfunction(function) or inspect.isasyncgenfunction(function)
        self._name = getattr(function, "__qualname__", getattr(function, "__name__", "task"))
        self._signature = signature_of(function)  # wrong arguments fail at .remote(), as a local call would
        self._export: tuple[bytes, bytes] | None = None
        self._prepared_for: tuple | None = None
        functools.update_wrapper(self, function, updated=())

    def __call__(self, *args, **kwargs):
        raise TypeError(
            f"Remote functions cannot be called directly. Instead of running '{self._name}()', "
            f"try '{self._name}.remote()'.")

    def __repr__(self) -> str:
        return f"<juno.remote_function.RemoteFunction {self._name}>"

    def __getstate__(self) -> dict:
        # Captured by other tasks' code: travel without this process's caches.
        state = dict(self.__dict__)
        state["_prepared_for"] = None
        return state

    def remote(self, *args, **kwargs):
        """Submit the function as a task; returns ObjectRef(s) (or a generator of them)."""
        return self._remote(args, kwargs, self._options)

    def options(self, **task_options):
        """A copy of this function with some options overridden for the calls made through it."""
        overrides = opt.validate_task_options(task_options, in_options=True, defaults=self._options)
        merged = {**self._options, **overrides}
        parent = self

        class _Options:
            def remote(self, *args, **kwargs):
                return parent._remote(args, kwargs, merged)

            def __repr__(self) -> str:
                return f"<{parent._name}.options({task_options})>"

        return _Options()

    def bind(self, *args, **kwargs):
        raise NotImplementedError("Ray's DAG API (bind) is not part of Juno's core runtime yet.")

    def _prepare(self, cw, options: dict, parent_env: dict | None) -> tuple:
        """Per (worker, options) constants of the call path, computed once."""
        if self._export is None:
            export = export_code(self._function)
            check_export_size(export[1], self._function, "remote function", self._name, cw.config)
            self._export = export
        function_id, blob = self._export
        cw.export_function(function_id, blob)
        num_returns = options.get("num_returns")
        if num_returns is None:
            num_returns = ts.STREAMING if self._is_generator else 1
        elif num_returns == "streaming":
            num_returns = ts.STREAMING
        elif num_returns == "dynamic":
            raise ValueError("num_returns='dynamic' is deprecated in Ray and not supported by Juno; use "
                             "num_returns='streaming' (the default for generator functions).")
        resources = normalize_request(num_cpus=options.get("num_cpus"), num_gpus=options.get("num_gpus"),
                                      memory=options.get("memory"), resources=options.get("resources"),
                                      default_cpus=1.0)
        strategy = _check_strategy(options.get("scheduling_strategy"), options)
        max_retries = options.get("max_retries")
        max_retries = opt.TASK_DEFAULTS["max_retries"] if max_retries is None else max_retries
        retry_exc = pickle_retry_exceptions(options.get("retry_exceptions"))
        runtime_env = opt.merge_runtime_envs(parent_env, options.get("runtime_env"))
        name = options.get("name") or self._name
        max_calls = options.get("max_calls") or 0
        return function_id, num_returns, resources, strategy, max_retries, retry_exc, runtime_env, name, max_calls

    def _remote(self, args: tuple, kwargs: dict, options: dict):
        from juno.api import _auto_init

        if self._signature is not None:
            self._signature.check(args, kwargs, self._name)
        cw = _auto_init()
        ctx = cw.context()
        # A task inherits the runtime_env of the task (or else the job) submitting it, as in Ray.
        parent_env = ctx.runtime_env if ctx.runtime_env is not None else cw.job_runtime_env
        cache = self._prepared_for
        if cache is not None and cache[0] is cw and cache[1] is options and cache[3] is parent_env:
            prepared = cache[2]
        else:
            prepared = self._prepare(cw, options, parent_env)
            self._prepared_for = (cw, options, prepared, parent_env)
        function_id, num_returns, resources, strategy, max_retries, retry_exc, runtime_env, name, max_calls = prepared
        task_id = cw.ids.task_id()
        args_value, deps, dep_ids = prepare_args(cw, args, kwargs, name)
        extra = None
        if ctx.namespace or max_calls:
            extra = {"namespace": ctx.namespace, "max_calls": max_calls}
        if strategy is not None or ctx.placement_group is not None:  # placement groups (juno.util.placement_group)
            resources, strategy, pg = apply_placement_group(strategy, options, ctx, resources, f"task {name}")
            if pg is not None:
                extra = dict(extra or {"namespace": ctx.namespace}, pg=pg)
        if ctx.task_id is not None and ctx.log_to:  # nested: its output belongs with its root's
            extra = dict(extra or {"namespace": ctx.namespace}, root=ctx.root or ctx.task_id)
        spec = build_spec(task_id=task_id, kind=ts.KIND_TASK, function=function_id, name=name, args=args_value,
                          deps=deps, num_returns=num_returns, owner=cw.address, log_to=ctx.log_to,
                          job_id=ctx.job_id, retry_exc=retry_exc, runtime_env=runtime_env, actor_id=None,
                          extra=extra)
        streaming = num_returns == ts.STREAMING
        refs = return_refs(cw, task_id, 0 if streaming else num_returns)
        entry = TaskEntry(task_id, spec, [r._id for r in refs], dep_ids, max_retries, streaming=streaming)
        if ctx.task_id is not None:
            ctx.children.append(task_id)
            entry.parent = ctx.task_id
        cw.tasks.submit(entry, resources, runtime_env, strategy, max_calls)
        if streaming:
            return ObjectRefGenerator(task_id, cw.address, cw)
        if num_returns == 1:
            return refs[0]
        if num_returns == 0:
            return None
        return refs


def _check_strategy(strategy: Any, options: dict | None = None) -> Any:
    """None for the default strategy; Ray's older ``placement_group=`` options become a strategy."""
    if strategy in (None, "DEFAULT"):
        strategy = None
    return strategy_from_options(strategy, options or {})
