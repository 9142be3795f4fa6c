"""The public core API: init/shutdown, get/put/wait, cancel/kill, cluster information."""
from __future__ import annotations

import atexit
import itertools
import logging
import os
import shutil
import sys
import threading
import uuid
import warnings
from typing import Any, Sequence

from juno import exceptions as exc
from juno import ids
from juno.owner import options as opt
from juno.comm.auth import resolve_token
from juno.cluster import kernel_cluster
from juno.config import Config
from juno.dashboard import launch as dashboard
from juno.job_config import JobConfig, job_runtime_env, public_runtime_env
from juno.owner.core_worker import MODE_DRIVER, CoreWorker, global_worker, set_global_worker
from juno.cluster.local_cluster import (ClusterProcesses, forget_cluster_token, normalize_address, read_current_cluster,
                                start_local_cluster, stop_processes)
from juno.object_ref import ObjectRef, ObjectRefGenerator

logger = logging.getLogger("juno")

_lock = threading.RLock()
_state: dict[str, Any] = {"cluster": None, "context": None}


class JunoContext:
    """What ``juno.init()`` returns: the cluster's addresses; a context manager that shuts down."""

    def __init__(self, address_info: dict):
        self.address_info = address_info
        self.dashboard_url = address_info.get("webui_url")

    @property
    def address(self) -> str:
        return self.address_info["address"]

    def __getitem__(self, key: str) -> Any:
        return self.address_info[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.address_info.get(key, default)

    def __enter__(self) -> "JunoContext":
        return self

    def __exit__(self, *exc_info) -> None:
        shutdown()

    def disconnect(self) -> None:
        shutdown()

    def __repr__(self) -> str:
        info = self.address_info
        return f"JunoContext(address={info['address']!r}, node_id={info['node_id'][:12]!r}, namespace={info['namespace']!r})"

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        from juno.widgets.reprs import context_mimebundle
        return context_mimebundle(self)


RayContext = JunoContext


def is_initialized() -> bool:
    return global_worker() is not None


def current_context() -> JunoContext | None:
    """What ``init()`` returned, until ``shutdown()``; None before. The notebook layer tells one
    connection from the next by it (juno.util.notebook)."""
    return _state.get("context")


def init(address: str | None = None, *, num_cpus: float | None = None, num_gpus: float | None = None,
         resources: dict | None = None, object_store_memory: int | None = None, namespace: str | None = None,
         runtime_env: dict | None = None, ignore_reinit_error: bool = False, log_to_driver: bool = True,
         include_dashboard: bool | None = None, dashboard_host: str | None = None,
         dashboard_port: int | None = None, logging_level: int = logging.INFO, configure_logging: bool = True,
         job_config: JobConfig | None = None, local_mode: bool = False, _system_config: dict | None = None,
         **kwargs: Any) -> JunoContext:
    """Start a local cluster (no address) or connect to one (``"auto"``, ``"host:port"``, $JUNO_ADDRESS).

    ``job_config``: Ray's JobConfig (juno.job_config); ``namespace=`` and ``runtime_env=`` win over its
    own. ``local_mode=True`` (deprecated in Ray) runs a normal local cluster, with a warning.
    """
    if kwargs:
        unknown = ", ".join(sorted(kwargs))
        raise TypeError(f"init() got unexpected keyword argument(s): {unknown}")
    with _lock:
        if is_initialized():
            if ignore_reinit_error or _in_ipython():
                logger.info("juno.init() was called again; reusing the running session.")
                return _state["context"]
            raise RuntimeError(
                "Maybe you called juno.init twice by accident? This error can be suppressed by passing "
                "ignore_reinit_error=True or by calling juno.shutdown() prior to juno.init().")
        object_store_memory = _validate_init(num_cpus, num_gpus, resources, object_store_memory)
        _check_local_mode(local_mode)
        if job_config is not None and not isinstance(job_config, JobConfig):
            raise TypeError(f"init(job_config=...) must be a juno.job_config.JobConfig, got "
                            f"{type(job_config).__name__}.")
        if runtime_env is not None:
            runtime_env = opt.validate_runtime_env(runtime_env)
        runtime_env = job_runtime_env(job_config, runtime_env)
        if namespace is None and job_config is not None:
            namespace = job_config.ray_namespace
        config = Config.from_env(_system_config)
        if address is None:
            address = os.environ.get("JUNO_ADDRESS") or os.environ.get("RAY_ADDRESS") or None
        cluster: ClusterProcesses | None = None
        # In a notebook kernel, the local cluster outlives a kernel restart (runtime/cluster/kernel_cluster.py).
        kernel = kernel_cluster.kernel_key() if address is None and config.kernel_cluster_linger_s > 0 else None
        reattached = _reattach(kernel, config) if kernel else None
        if reattached is not None:
            gcs_address, node, token, kernel_record = reattached
        elif address in (None, "local"):
            dashboard.check_init_args(include_dashboard, dashboard_host, dashboard_port)
            cluster = start_local_cluster(config, num_cpus=num_cpus, num_gpus=num_gpus, resources=resources,
                                          object_store_memory=object_store_memory, owner_pid=os.getpid(),
                                          owner_linger_s=config.kernel_cluster_linger_s if kernel else 0.0)
            gcs_address, node, token = cluster.gcs_address, cluster.nodes[0], cluster.token
        else:
            if any(v is not None for v in (num_cpus, num_gpus, resources, object_store_memory)):
                raise ValueError(
                    "When connecting to an existing cluster, num_cpus, num_gpus, resources and "
                    "object_store_memory must not be provided; they are set when the cluster starts "
                    "(`juno start --head --num-cpus ...`).")
            if address == "auto":
                found = read_current_cluster()
                if not found:
                    raise ConnectionError(
                        "Could not find any running Juno instance. Start one with `juno start --head`, "
                        "or call juno.init() without an address to start a local cluster.")
                address = found
            gcs_address = normalize_address(address)
            # $JUNO_CLUSTER_TOKEN, else the one stored here; none: the probe says so if the cluster answers
            token, token_source = resolve_token(gcs_address, required=False)
            node = _find_local_node(gcs_address, config, token, token_source)
        dash = dashboard.start_for_init(cluster, include_dashboard, dashboard_host, dashboard_port) if cluster else None
        try:
            cw = _connect(gcs_address, node, config, namespace, runtime_env, log_to_driver, token, job_config)
        except BaseException:
            dashboard.stop(dash)
            if cluster is not None:
                stop_processes(cluster.procs, config.shutdown_grace_s)
                shutil.rmtree(cluster.session_dir, ignore_errors=True)
                forget_cluster_token(cluster.gcs_address, cluster.token)
            raise
        _state["cluster"] = cluster
        _state["dashboard"] = dash
        _state["kernel"] = None
        if kernel is not None:
            if reattached is not None:
                cw.gcs_call("claim_cluster", os.getpid())
            else:
                kernel_record = kernel_cluster.write(kernel, cluster, [p.pid for p in dashboard.processes(dash)])
            _state["kernel"] = (kernel, kernel_record)
        context = JunoContext({
            "address": gcs_address.replace("tcp://", ""), "gcs_address": gcs_address,
            "node_id": cw.node_id, "session_dir": node["session_dir"], "namespace": cw.namespace,
            "node_ip_address": node.get("ip", "127.0.0.1"),
            "webui_url": dashboard.context_url(dash.url if dash else dashboard.registered_url(
                lambda *a: cw.gcs_call(*a, timeout=2.0))),
            "job_id": ids.job_hex(cw.job_id),
        })
        _state["context"] = context
        return context


def _in_ipython() -> bool:
    shell = sys.modules.get("IPython")
    try:
        return shell is not None and shell.get_ipython() is not None
    except Exception:  # noqa: BLE001
        return False


def _check_local_mode(local_mode: Any) -> None:
    if not isinstance(local_mode, bool):
        raise TypeError(f"init(local_mode=...) must be True or False, got {local_mode!r}.")
    if local_mode:
        warnings.warn("init(local_mode=True): Juno has no local mode (Ray deprecated it); tasks and actors "
                      "run on a normal local cluster, in worker processes, as without it.",
                      exc.JunoWarning, stacklevel=3)


def _validate_init(num_cpus, num_gpus, resources, object_store_memory) -> int | None:
    """Check init's resource arguments; returns object_store_memory as a whole number of bytes."""
    for name, value in (("num_cpus", num_cpus), ("num_gpus", num_gpus)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
            raise ValueError(f"init({name}=...) must be a non-negative number, got {value!r}")
    if num_gpus is not None and num_gpus != int(num_gpus):
        raise ValueError(f"init(num_gpus=...) must be a whole number of GPUs, got {num_gpus!r}")
    if resources is not None:
        if not isinstance(resources, dict):
            raise TypeError(f"init(resources=...) must be a dict of name -> quantity, got {type(resources).__name__}")
        for key in ("CPU", "GPU"):
            if key in resources:
                raise ValueError(f"Use num_{key.lower()}s=... instead of resources={{'{key}': ...}} in init().")
    if object_store_memory is None:
        return None
    # 7e8 is a common way to write 700 MB: a float that is a whole number of bytes is accepted.
    if isinstance(object_store_memory, float) and object_store_memory.is_integer():
        object_store_memory = int(object_store_memory)
    if isinstance(object_store_memory, bool) or not isinstance(object_store_memory, int) or object_store_memory <= 0:
        raise ValueError("init(object_store_memory=...) must be a positive whole number of bytes (e.g. 7e8 or "
                         f"700_000_000), got {object_store_memory!r}")
    return object_store_memory


def _reattach(kernel: str, config: Config) -> tuple[str, dict, str | None, dict] | None:
    """(GCS address, local node, token, its record) of the cluster this kernel's previous process
    left running, if it is still there; None to start a new one."""
    record = kernel_cluster.read(kernel)
    if not kernel_cluster.cluster_alive(record):
        kernel_cluster.forget(kernel)
        return None
    gcs_address = record["gcs_address"]
    token, token_source = resolve_token(gcs_address, required=False)
    try:
        node = _find_local_node(gcs_address, config, token, token_source)
    except (TimeoutError, ConnectionError) as e:
        logger.warning("the cluster this kernel left running at %s does not answer (%s); starting a new one",
                       gcs_address, e)
        kernel_cluster.forget(kernel)
        return None
    logger.info("attached to the cluster this kernel left running at %s", gcs_address.replace("tcp://", ""))
    return gcs_address, node, token, record


def _find_local_node(gcs_address: str, config: Config, token: str | None, token_source: str) -> dict:
    """Ask the GCS for the nodes and pick one on this machine (the head first); a GCS that
    refuses the token fails this at once (juno.comm.auth.ClusterAuthError)."""
    from juno.cluster.probe import find_local_node

    return find_local_node(gcs_address, timeout=min(10.0, config.rpc_timeout_s), token=token,
                           token_source=token_source)


def _connect(gcs_address: str, node: dict, config: Config, namespace, runtime_env, log_to_driver,
             token: str | None = None, job_config: JobConfig | None = None) -> CoreWorker:
    worker_id = ids.random_id(16)
    cw = CoreWorker(mode=MODE_DRIVER, worker_id=worker_id, session_dir=node["session_dir"], node=node,
                    gcs_address=gcs_address, config=config, namespace=namespace or str(uuid.uuid4()),
                    log_to_driver=log_to_driver, token=token)
    cw.job_runtime_env = runtime_env
    cw.start()
    try:
        entry = " ".join(sys.argv) if sys.argv else "python"
        lifetime = job_config.default_actor_lifetime if job_config is not None else "non_detached"
        job_record = {"metadata": dict(job_config.metadata) if job_config is not None else {},
                      "runtime_env": public_runtime_env(runtime_env), "default_actor_lifetime": lifetime}
        cw.job_id = cw.gcs_call("register_job", cw.address, os.getpid(), cw.namespace, entry, False, job_record,
                                timeout=min(10.0, config.rpc_timeout_s))
        cw.job_actor_lifetimes[cw.job_id] = lifetime
        cw.default_context.job_id = cw.job_id
        cw.node_call("register_driver", cw.address, os.getpid(), cw.job_id, cw.worker_id)
    except BaseException:
        cw.stop()
        raise
    set_global_worker(cw)
    return cw


def shutdown(_exiting_interpreter: bool = False) -> None:
    """Disconnect; stop the cluster if this process started it. Safe to call twice."""
    with _lock:
        cw = global_worker()
        cluster: ClusterProcesses | None = _state.get("cluster")
        if cw is None and cluster is None:
            return
        kernel = _state.get("kernel")
        if kernel is not None and _exiting_interpreter:
            # A kernel exiting (or restarting): its cluster waits for the next kernel to claim it.
            cluster = None
        if cw is not None:
            cw.shutting_down = True
            if cluster is None:
                _detach_from_cluster(cw)
            set_global_worker(None)
            cw.stop()
        if kernel is not None and not _exiting_interpreter:  # juno.shutdown() in a notebook: stop it now
            key, record = kernel
            kernel_cluster.forget(key)
            if cluster is None and record is not None:
                kernel_cluster.stop(record, cw.config.shutdown_grace_s if cw else 3.0)
                forget_cluster_token(record["gcs_address"], None)
        _state["kernel"] = None
        if cluster is not None:
            procs = dashboard.processes(_state.pop("dashboard", None)) + cluster.procs  # all at once
            stop_processes(procs, cw.config.shutdown_grace_s if cw else 3.0)
            shutil.rmtree(cluster.session_dir, ignore_errors=True)
            forget_cluster_token(cluster.gcs_address, cluster.token)
            for node in cluster.nodes:
                shutil.rmtree(node["store_dir"], ignore_errors=True)
        _state["cluster"] = None
        _state["context"] = None


def _detach_from_cluster(cw: CoreWorker) -> None:
    """Leaving a cluster we don't own: end our job, free what we own there."""
    for oid in cw.refs.owned_ids():
        value = cw.owned.get(oid)
        if value is not None and value[0] == "s":
            cw.shm.delete(oid, value[1])
    for method, args, target in (("job_finished", (cw.job_id,), cw.gcs_address),
                                 ("unregister_driver", (cw.address,), cw.node_manager)):
        try:
            cw.call_sync(target, method, *args, timeout=5.0)
        except Exception:  # noqa: BLE001 - the cluster may be gone already
            pass


atexit.register(shutdown, True)


def _auto_init() -> CoreWorker:
    cw = global_worker()
    if cw is None:
        init()
        cw = global_worker()
    return cw  # type: ignore[return-value]


def _require() -> CoreWorker:
    cw = global_worker()
    if cw is None:
        raise exc.RaySystemError("Juno has not been started yet. You can start it with juno.init().")
    return cw


# ---------------------------------------------------------------------------- objects
def put(value: Any, *, _owner: Any = None) -> ObjectRef:
    """Store ``value`` in the object store; returns its ObjectRef."""
    return _auto_init().put_object(value)


def get(object_refs, *, timeout: float | None = None):
    """The value(s) of ObjectRef(s), waiting up to ``timeout`` seconds; raises task errors.

    Unlike Ray, a value that is not a ref (alone or in the list) comes back unchanged, with a
    NotAnObjectRefWarning once per call site: tutorials call get() on what the runtime
    already resolved.
    """
    cw = _auto_init()
    _check_timeout(timeout)
    if isinstance(object_refs, ObjectRef):
        return cw.get_objects([object_refs], timeout)[0]
    if isinstance(object_refs, (list, tuple)):
        for item in object_refs:
            if not isinstance(item, ObjectRef):
                return _get_with_values(cw, object_refs, timeout)
        return cw.get_objects(list(object_refs), timeout)
    _refuse_generator(object_refs)
    _warn_not_a_ref(f"get() was given a value of type {type(object_refs).__name__}, not an ObjectRef; "
                    "it returns the value unchanged")
    return object_refs


def _get_with_values(cw: CoreWorker, items: Sequence, timeout: float | None) -> list:
    """get() of a list with values in it: resolve the refs, keep the values where they are."""
    values = list(items)
    positions = []
    for i, item in enumerate(values):
        if isinstance(item, ObjectRef):
            positions.append(i)
        else:
            _refuse_generator(item)
    first_value = next(i for i, item in enumerate(values) if not isinstance(item, ObjectRef))
    _warn_not_a_ref(f"get() was given a list whose item {first_value} is a value of type "
                    f"{type(values[first_value]).__name__}, not an ObjectRef; it resolves the refs "
                    "and keeps the values", depth=3)
    if positions:
        for i, value in zip(positions, cw.get_objects([values[i] for i in positions], timeout)):
            values[i] = value
    return values


def _refuse_generator(value: Any) -> None:
    if isinstance(value, ObjectRefGenerator):
        raise TypeError("get() of an ObjectRefGenerator is not supported: iterate it and get() each ref.")


_warned_call_sites: set[tuple[str, int]] = set()


def _warn_not_a_ref(what: str, depth: int = 2) -> None:
    """Warn once per call site of get() (``depth`` frames up) that it returned a value unchanged."""
    frame = sys._getframe(depth)
    site = (frame.f_code.co_filename, frame.f_lineno)
    if site in _warned_call_sites:
        return
    _warned_call_sites.add(site)
    warnings.warn(f"{what} (Ray raises TypeError here). This is harmless where the value was "
                  "already resolved, but may be a mistake where you expected a ref.",
                  exc.NotAnObjectRefWarning, stacklevel=depth + 1)


def wait(object_refs: Sequence[ObjectRef], *, num_returns: int = 1, timeout: float | None = None,
         fetch_local: bool = True) -> tuple[list[ObjectRef], list[ObjectRef]]:
    """Split refs into (ready, not ready) once ``num_returns`` are ready or ``timeout`` passes."""
    cw = _auto_init()
    if isinstance(object_refs, ObjectRef) or not isinstance(object_refs, (list, tuple)):
        raise TypeError(f"wait() expected a list of ObjectRefs, got {type(object_refs).__name__}.")
    if not all(map(isinstance, object_refs, itertools.repeat(ObjectRef))):  # C speed: a wait loop checks n^2/2 refs
        i, ref = next((i, r) for i, r in enumerate(object_refs) if not isinstance(r, ObjectRef))
        raise TypeError(f"wait() expected a list of ObjectRefs, but item {i} is a {type(ref).__name__}.")
    _check_timeout(timeout)
    if not object_refs:
        return [], []  # as in Ray, whatever num_returns says
    ids = {r._id for r in object_refs}
    if len(ids) != len(object_refs):
        raise ValueError("Wait requires a list of unique object refs.")
    if not isinstance(num_returns, int) or num_returns <= 0:
        raise ValueError(f"Invalid number of objects to return {num_returns!r}: it must be a positive integer.")
    if num_returns > len(object_refs):
        raise ValueError("num_returns cannot be greater than the number of objects provided to juno.wait.")
    return cw.wait(list(object_refs), ids, num_returns, timeout, fetch_local)


def _check_timeout(timeout: Any) -> None:
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0):
        raise ValueError(f"timeout must be None or a non-negative number of seconds, got {timeout!r}")


def cancel(object_ref: ObjectRef, *, force: bool = False, recursive: bool = True) -> None:
    """Cancel the task that makes ``object_ref``; its get() then raises TaskCancelledError."""
    cw = _require()
    if isinstance(object_ref, ObjectRefGenerator):
        object_ref = ObjectRef(ids.object_id(object_ref._task_id, 0), cw.address, _count=False)
    if not isinstance(object_ref, ObjectRef):
        raise TypeError(f"cancel() expected an ObjectRef, got {type(object_ref).__name__}.")
    entry = cw.tasks.entries.get(object_ref.task_id())
    if entry is not None and entry.actor_id is not None and force:
        raise ValueError("force=True is not supported for actor tasks; use juno.kill(actor) to stop an actor.")
    cw.loop.call_soon(cw.tasks.cancel, object_ref.task_id(), force, recursive)


# ---------------------------------------------------------------------------- actors
def kill(actor, *, no_restart: bool = True) -> None:
    """Forcefully stop an actor (pending calls fail); restarts only if ``no_restart=False``."""
    from juno.actor import ActorHandle

    if not isinstance(actor, ActorHandle):
        raise ValueError(f"juno.kill() only supports actors; got {type(actor).__name__}. Use juno.cancel() for tasks.")
    cw = _require()
    cw.gcs_call("kill_actor", actor._actor_id, no_restart, True, "juno.kill() was called")


def get_actor(name: str, namespace: str | None = None):
    """A handle to the named actor (in the current namespace unless given)."""
    from juno.actor import ActorHandle

    if not isinstance(name, str) or not name:
        raise ValueError("get_actor() needs a non-empty actor name.")
    cw = _auto_init()
    ns = namespace if namespace is not None else cw.context().namespace or cw.namespace
    found = cw.gcs_call("get_named_actor", name, ns)
    if found is None:
        raise ValueError(f"Failed to look up actor with name '{name}' in namespace '{ns}'. It may not exist, "
                         "may have died, or may live in another namespace (pass namespace=...).")
    actor_id, meta = found
    # Counted only where it is owned (the creating process), as in Ray: a handle found by name
    # elsewhere does not keep a non-detached actor alive.
    return ActorHandle(actor_id, meta, cw.address if cw.refs.owns(actor_id) else None)


# ---------------------------------------------------------------------------- cluster information
def nodes() -> list[dict]:
    """Every node the cluster has seen, in Ray's shape (dead ones: Alive False, DeathReasonMessage)."""
    from juno.observability.cluster_status import ray_node_entry

    return [ray_node_entry(n) for n in _require().gcs_call("get_nodes")]


def cluster_resources() -> dict[str, float]:
    cw = _require()
    total: dict[str, float] = {}
    for n in cw.gcs_call("get_nodes"):
        if n["alive"]:
            for k, v in n["resources"].items():
                total[k] = total.get(k, 0) + v
    return total


def available_resources() -> dict[str, float]:
    cw = _require()
    total: dict[str, float] = {}
    for n in cw.gcs_call("get_nodes"):
        if not n["alive"]:
            continue
        avail = cw.node_call("get_resources", address=n["address"])["available"] \
            if n["address"] == cw.node_manager else n["available"]
        for k, v in avail.items():
            if v > 0:
                total[k] = total.get(k, 0) + v
    return total


def get_gpu_ids() -> list[int]:
    """The GPU ids assigned to the calling task or actor (empty in the driver)."""
    cw = _require()
    return list(cw.context().gpu_ids)


def get_runtime_context():
    from juno.runtime_context import RuntimeContext

    return RuntimeContext(_require())
