"""``@juno.remote`` on a class: ActorClass, ActorHandle, ActorMethod, ``juno.method``."""
from __future__ import annotations

import functools
import inspect
import weakref

from juno import exceptions as exc
from juno import ids
from juno.owner import serialization
from juno.owner import options as opt
from juno.owner import task_spec as ts
from juno.owner.call_signature import CallSignature, parameters_of, signature_of
from juno.owner.export_size import check_export_size
from juno.job_config import default_actor_lifetime
from juno.node.resources import normalize_request
from juno.object_ref import ObjectRef, ObjectRefGenerator
from juno.owner.call_builder import export_code, pickle_retry_exceptions, prepare_args, return_refs
from juno.owner.task_spec import TaskEntry, build_spec


EXITED_BY_CALL = "The actor exited intentionally by calling exit_actor()."
TERMINATE_METHOD = "__ray_terminate__"  # Ray's graceful stop, queued like any call (see _method_meta)
TERMINATED_BY_CALL = "The actor was stopped by __ray_terminate__(), after the calls made before it."


class ActorExit(BaseException):
    """Raised by exit_actor() inside an actor method; ends the actor after the call."""

    def __init__(self, reason: str = EXITED_BY_CALL):
        super().__init__(reason)
        self.reason = reason


def exit_actor() -> None:
    """End the current actor gracefully: it will not be restarted."""
    from juno.owner.core_worker import current_task

    ctx = current_task.get()
    if ctx is None or ctx.actor_id is None:
        raise TypeError("exit_actor() must be called from inside an actor method.")
    raise ActorExit()


def method(*args, **kwargs):
    """Decorate an actor method with options: ``@juno.method(num_returns=2, concurrency_group="io")``."""
    if args and callable(args[0]) and len(args) == 1 and not kwargs:
        raise TypeError("@juno.method needs keyword options, e.g. @juno.method(num_returns=2)")
    if args:
        raise TypeError("@juno.method takes only keyword arguments")
    options = opt.validate_actor_method_options(kwargs)

    def decorate(fn):
        fn.__juno_method_options__ = options
        return fn

    return decorate


def _method_meta(cls) -> dict:
    meta = {}
    for name, member in inspect.getmembers(cls):
        if name.startswith("__") and name not in ("__call__",):
            continue
        fn = member
        # Static and class methods are called through the handle too, as in Ray; their
        # signatures have no instance argument to skip (a class method's is bound already).
        bound = isinstance(inspect.getattr_static(cls, name, None), (staticmethod, classmethod))
        if not (inspect.isfunction(fn) or inspect.ismethoddescriptor(fn) or (bound and inspect.ismethod(fn))):
            continue
        options = dict(getattr(fn, "__juno_method_options__", {}))
        is_gen = inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn)
        num_returns = options.get("num_returns")
        if num_returns is None:
            num_returns = ts.STREAMING if is_gen else 1
        elif num_returns == "streaming":
            num_returns = ts.STREAMING
        meta[name] = {"num_returns": num_returns, "concurrency_group": options.get("concurrency_group"),
                      "max_task_retries": options.get("max_task_retries"),
                      "retry_exceptions": options.get("retry_exceptions"),
                      "signature": parameters_of(fn, skip_first=not bound)}
    meta[TERMINATE_METHOD] = {"num_returns": 1, "concurrency_group": None, "max_task_retries": 0,
                              "retry_exceptions": None, "signature": ()}
    return meta


class ActorClass:
    """A class whose instances live in their own worker process, created with ``.remote()``.

    It stands for the user's class wherever that class's name is used, in the driver and
    inside the actor's own methods: class attributes, static and class methods (inherited
    ones too) are reached through it, and ``dir()``/``help()`` show them.
    """

    def __init__(self, cls, options: dict):
        self._cls = cls
        self._options = opt.validate_actor_options(options, in_options=False)
        self._name = cls.__name__
        self._export: tuple[bytes, bytes] | None = None
        self._methods = _method_meta(cls)
        self._init_signature = signature_of(cls)  # the constructor's, without self
        self.__name__ = cls.__name__
        self.__qualname__ = cls.__qualname__
        self.__module__ = cls.__module__
        self.__doc__ = _class_doc(cls)  # what help(MyActor) shows

    def __call__(self, *args, **kwargs):
        raise TypeError(
            f"Actors cannot be instantiated directly. Instead of '{self._name}()', use "
            f"'{self._name}.remote()'.")

    def __repr__(self) -> str:
        return f"<juno.actor.ActorClass {self._name}>"

    def __getattr__(self, name: str):
        """Class attributes, static and class methods of the user's class (Ray's actor
        classes inherit them). Only called for what ActorClass itself lacks."""
        cls = self.__dict__.get("_cls")
        if cls is None or (name.startswith("__") and name.endswith("__")) or name.startswith(_NOT_FORWARDED):
            raise AttributeError(name)
        try:
            value = getattr(cls, name)
        except AttributeError:
            raise AttributeError(f"actor class '{self._name}' has no attribute '{name}'") from None
        if inspect.isfunction(value):
            # A stand-in, not the class's own function: were "module.MyActor.method" the very
            # function, cloudpickle would export the class's methods by reference, not by value.
            return _forward_to(value)
        return value

    def __dir__(self) -> list[str]:
        # bind() is left out: Juno has no DAG API yet, so completion shouldn't offer it.
        return sorted((set(super().__dir__()) | set(dir(self._cls))) - {"bind"})

    def __mro_entries__(self, bases):
        raise TypeError(f"Inheriting from actor classes is not currently supported: '{self._name}' is "
                        f"an actor class. Inherit from a plain class, and decorate the subclass with "
                        f"@juno.remote.")

    def remote(self, *args, **kwargs) -> "ActorHandle":
        return self._remote(args, kwargs, self._options)

    def options(self, **actor_options):
        overrides = opt.validate_actor_options(actor_options, in_options=True, defaults=self._options)
        merged = {**self._options, **overrides}
        parent = self

        class _Options:
            def remote(self, *args, **kwargs):
                return parent._remote(args, kwargs, merged)

        return _Options()

    def bind(self, *args, **kwargs):
        raise NotImplementedError("Ray's DAG API (bind) is not part of Juno's core runtime yet.")

    def _remote(self, args: tuple, kwargs: dict, options: dict) -> "ActorHandle":
        from juno.api import _auto_init

        if self._init_signature is not None:
            self._init_signature.check(args, kwargs, self._name, "__init__")
        cw = _auto_init()
        if self._export is None:
            export = export_code(self._cls)
            check_export_size(export[1], self._cls, "actor class", self._name, cw.config)
            self._export = export
        function_id, blob = self._export
        cw.export_function(function_id, blob)
        _, held_cpus = opt.resolve_actor_cpus(options)
        resources = normalize_request(num_cpus=held_cpus, num_gpus=options.get("num_gpus"),
                                      memory=options.get("memory"), resources=options.get("resources"),
                                      default_cpus=0.0)
        strategy = options.get("scheduling_strategy")
        from juno.remote_function import _check_strategy

        strategy = _check_strategy(strategy, options)
        runtime_env = opt.merge_runtime_envs(cw.job_runtime_env, options.get("runtime_env"))
        ctx = cw.context()
        from juno.util.placement_group import apply_placement_group

        resources, strategy, pg = apply_placement_group(strategy, options, ctx, resources, f"actor {self._name}")
        job_namespace = ctx.namespace or cw.namespace  # the job's, inherited by everything it starts
        namespace = options.get("namespace") or job_namespace
        detached = (options.get("lifetime") or default_actor_lifetime(cw, ctx.job_id)) == "detached"
        if detached and not options.get("name"):
            pass  # Ray allows anonymous detached actors
        actor_id = ids.random_id(ids.ACTOR_ID_LEN)
        task_id = cw.ids.task_id()
        args_value, deps, dep_ids = prepare_args(cw, args, kwargs, f"{self._name}.__init__")
        spec = build_spec(task_id=task_id, kind=ts.KIND_ACTOR_CREATE, function=function_id,
                          name=f"{self._name}.__init__", args=args_value, deps=deps, num_returns=0,
                          owner=cw.address, log_to=ctx.log_to, job_id=ctx.job_id, retry_exc=None,
                          runtime_env=runtime_env, actor_id=actor_id,
                          extra={"namespace": job_namespace, "name": options.get("name") or "", "pg": pg})
        is_async = any(inspect.iscoroutinefunction(m) or inspect.isasyncgenfunction(m)
                       for _, m in inspect.getmembers(self._cls, predicate=inspect.isfunction))
        meta = {"class_name": self._name, "methods": self._methods,
                "max_task_retries": options.get("max_task_retries") or 0, "is_async": is_async,
                "max_pending_calls": options.get("max_pending_calls") or -1}
        info = {
            "name": options.get("name"), "namespace": namespace, "detached": detached,
            "max_restarts": options.get("max_restarts") or 0, "resources": resources,
            "runtime_env": runtime_env, "owner": cw.address, "owner_node_id": cw.node_id, "job_id": ctx.job_id,
            "class_name": self._name,
            "get_if_exists": bool(options.get("get_if_exists")), "strategy": strategy, "meta": meta,
            "options": {"max_concurrency": options.get("max_concurrency"),
                        "concurrency_groups": options.get("concurrency_groups")},
            "placement_group": pg[0].hex() if pg else None,  # its group (runtime/gcs/placement_groups.py)
        }
        try:
            status, actor_id, meta = cw.gcs_call("register_actor", actor_id, spec, info)
        except BaseException:
            if dep_ids:
                cw.refs.remove_submitted(dep_ids)
            raise
        if status == "created":
            cw.actors.register_owned(actor_id, detached, dep_ids)
        elif dep_ids:
            cw.refs.remove_submitted(dep_ids)  # get_if_exists found one: this constructor never runs
        return ActorHandle(actor_id, meta, cw.address if cw.refs.owns(actor_id) else None)


# Protocols asked of the ActorClass object itself (IPython's display), not of the user's class.
_NOT_FORWARDED = ("_repr_", "_ipython_")


def _forward_to(fn):
    @functools.wraps(fn)
    def forward(*args, **kwargs):
        return fn(*args, **kwargs)

    return forward


_POSITIONAL_KINDS = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _class_doc(user_cls) -> str:
    """The user's class docstring, with how to use the actor and its methods listed."""
    lines = [inspect.getdoc(user_cls) or f"Actor class {user_cls.__name__}.", "",
             f"Create an actor with {user_cls.__name__}.remote(...); call a method with "
             f"handle.<method>.remote(...).", "", "Methods:"]
    for name, member in inspect.getmembers(user_cls, callable):
        if name.startswith("__") and name not in ("__init__", "__call__"):
            continue
        try:
            signature = inspect.signature(member)
        except (TypeError, ValueError):
            signature = "(...)"
        else:
            params = list(signature.parameters.values())
            if (inspect.isfunction(member) and params and params[0].kind in _POSITIONAL_KINDS
                    and not isinstance(inspect.getattr_static(user_cls, name), staticmethod)):
                signature = signature.replace(parameters=params[1:])  # without self
        summary = (inspect.getdoc(member) or "").split("\n", 1)[0]
        lines.append(f"    {name}{signature}" + (f"  -- {summary}" if summary else ""))
    return "\n".join(lines)


class ActorHandle:
    """A reference to an actor; call its methods with ``handle.method.remote(...)``.

    The process that created a non-detached actor owns it and counts its handles as references
    to the actor's id (runtime/owner/reference_counter.py), borrowers included: handles passed to
    tasks and actors, stored in objects, and held by calls not finished. When none is left,
    the actor stops (runtime/owner/actor_submitter.py). ``owner`` is None for handles that are not
    counted: a detached actor's, or one found by name in a process that doesn't own it.
    """

    def __init__(self, actor_id: bytes, meta: dict, owner: str | None = None, *, _count: bool = True):
        self._actor_id = actor_id
        self._meta = meta
        self._owner = owner
        self._counted = False
        if _count:
            from juno.owner.core_worker import global_worker

            cw = global_worker()
            if cw is not None:
                cw.refs.add_local(actor_id, owner)
                self._counted = True

    def __getattr__(self, name: str) -> "ActorMethod":
        meta = self.__dict__.get("_meta")
        if meta is None or (name.startswith("__") and name not in ("__call__", TERMINATE_METHOD)):
            raise AttributeError(name)
        methods = meta["methods"]
        if name not in methods:
            raise AttributeError(f"'{meta['class_name']}' actor has no method '{name}'")
        # The cached method refers to the handle weakly (no cycle keeps the handle alive after
        # its last use); the one returned now holds it, for `Counter.remote().incr.remote()`.
        self.__dict__[name] = ActorMethod(self, name, methods[name])
        return ActorMethod(self, name, methods[name], hold=True)

    def __dir__(self) -> list[str]:
        return sorted(self._meta["methods"])  # the methods, for completion (as Ray's handles)

    @property
    def _class_name(self) -> str:
        return self._meta["class_name"]

    def _actor_id_hex(self) -> str:
        return self._actor_id.hex()

    def __repr__(self) -> str:
        return f"Actor({self._meta['class_name']}, {self._actor_id.hex()})"

    def _repr_html_(self) -> str:
        from juno.widgets.reprs import actor_html
        return actor_html(self)

    def __eq__(self, other) -> bool:
        return isinstance(other, ActorHandle) and other._actor_id == self._actor_id

    def __hash__(self) -> int:
        return hash(self._actor_id)

    def __reduce__(self):
        owner = self._owner
        if owner is None:
            return _rebuild_handle, (self._actor_id, self._meta)
        # Counted like an ObjectRef inside the value: by a task that takes it until the task is
        # done, by a stored object while it lives, by the object a task result makes while it lives.
        refs = serialization.recording_refs()
        if refs is not None:
            refs.append(ObjectRef(self._actor_id, owner, _count=False))
        return _rebuild_handle, (self._actor_id, self._meta, owner)

    def __del__(self):
        if self._counted:
            try:
                from juno.owner.core_worker import global_worker

                cw = global_worker()
                if cw is not None:
                    cw.refs.remove_local(self._actor_id)
            except Exception:  # noqa: BLE001 - interpreter shutdown
                pass


def _rebuild_handle(actor_id: bytes, meta: dict, owner: str | None = None) -> ActorHandle:
    """Unpickling a counted handle makes this process a borrower of the actor, as for a ref."""
    handle = ActorHandle(actor_id, meta, owner)
    if owner is not None:
        from juno.owner.core_worker import global_worker

        cw = global_worker()
        if cw is not None:
            cw.refs.note_borrowed(actor_id, owner)
    return handle


class ActorMethod:
    def __init__(self, handle: ActorHandle, name: str, meta: dict, options: dict | None = None, *,
                 hold: bool = False):
        self._handle_ref = weakref.ref(handle)
        self._held = handle if hold else None
        self._name = name
        self._meta = meta
        self._options = options or {}
        params = meta.get("signature")
        self._signature = None if params is None else CallSignature.from_parameters(params)

    def _handle(self) -> ActorHandle:
        handle = self._held if self._held is not None else self._handle_ref()
        if handle is None:
            raise RuntimeError(
                f"Lost reference to the actor: the handle this '{self._name}' method came from is gone. "
                f"Keep the actor handle and call 'handle.{self._name}.remote()' on it.")
        return handle

    def __reduce__(self):  # a method passed to a task brings its handle along
        return _rebuild_method, (self._handle(), self._name, self._meta, self._options)

    def __call__(self, *args, **kwargs):
        raise TypeError(
            f"Actor methods cannot be called directly. Instead of running 'object.{self._name}()', "
            f"try 'object.{self._name}.remote()'.")

    def options(self, **method_options) -> "ActorMethod":
        validated = opt.validate_actor_method_options(method_options)
        return ActorMethod(self._handle(), self._name, self._meta, {**self._options, **validated}, hold=True)

    def remote(self, *args, **kwargs):
        from juno.api import _auto_init

        handle = self._handle()
        if self._signature is not None:
            self._signature.check(args, kwargs, handle._meta["class_name"], self._name)
        cw = _auto_init()
        meta = self._meta
        options = self._options
        num_returns = options.get("num_returns", meta["num_returns"])
        if num_returns == "streaming":
            num_returns = ts.STREAMING
        name = f"{handle._meta['class_name']}.{self._name}"
        task_id = cw.ids.task_id()
        limit = handle._meta.get("max_pending_calls", -1)
        if limit > 0 and not cw.actors.reserve_call(handle._actor_id, task_id, limit):
            raise exc.PendingCallsLimitExceeded(
                f"Calling {name}: the actor already has {limit} unfinished calls from this process "
                f"(max_pending_calls={limit}); wait for some of them before submitting more.")
        try:
            args_value, deps, dep_ids = prepare_args(cw, args, kwargs, name)
        except BaseException:
            if limit > 0:
                cw.actors.release_call(handle._actor_id, task_id)
            raise
        ctx = cw.context()
        retries = options.get("max_task_retries", meta.get("max_task_retries"))
        if retries is None:
            retries = handle._meta.get("max_task_retries", 0)
        retry_exc = pickle_retry_exceptions(options.get("retry_exceptions", meta.get("retry_exceptions")))
        group = options.get("concurrency_group") or meta.get("concurrency_group")
        spec = build_spec(task_id=task_id, kind=ts.KIND_ACTOR_CALL, function=self._name, name=name, args=args_value,
                          deps=deps, num_returns=num_returns, owner=cw.address, log_to=ctx.log_to,
                          job_id=ctx.job_id, retry_exc=retry_exc, runtime_env=None, actor_id=handle._actor_id,
                          extra={"concurrency_group": group} if group else None)
        streaming = num_returns == ts.STREAMING
        refs = return_refs(cw, task_id, 0 if streaming else num_returns)
        entry = TaskEntry(task_id, spec, [r._id for r in refs], dep_ids, retries, actor_id=handle._actor_id,
                          streaming=streaming)
        entry.parent = ctx.task_id
        entry.actor_handle = handle  # the call keeps the actor alive until it is done
        cw.actors.submit(entry)
        if streaming:
            return ObjectRefGenerator(task_id, cw.address, cw)
        if num_returns == 1:
            return refs[0]
        if num_returns == 0:
            return None
        return refs

    def bind(self, *args, **kwargs):
        raise NotImplementedError("Ray's DAG API (bind) is not part of Juno's core runtime yet.")


def _rebuild_method(handle: ActorHandle, name: str, meta: dict, options: dict) -> ActorMethod:
    return ActorMethod(handle, name, meta, options, hold=True)
