"""Small helpers shared by the tests (importable as ``from helpers import ...``:
``pythonpath = ["tests"]`` in pyproject.toml puts this folder on sys.path).

Nothing here imports juno at module level, so unit tests can use it without a cluster.
"""

from __future__ import annotations

import contextlib
import time
import traceback
from typing import Any, Callable


def wait_for_condition(
    predicate: Callable[..., Any],
    timeout: float = 10,
    retry_interval_ms: float = 20,
    **kwargs: Any,
) -> Any:
    """Call ``predicate(**kwargs)`` until it returns something truthy; return that.

    An exception raised by the predicate counts as "not yet" and is retried (the
    last one is shown if time runs out). Raises ``RuntimeError`` when ``timeout``
    seconds pass without the condition being met; the predicate is always tried
    at least once, and once more at the deadline.
    """
    deadline = time.monotonic() + timeout
    interval = max(retry_interval_ms, 0) / 1000.0
    name = getattr(predicate, "__qualname__", None) or repr(predicate)
    last_exc: BaseException | None = None
    attempts = 0
    while True:
        attempts += 1
        try:
            result = predicate(**kwargs)
            if result:
                return result
            last_exc = None
        except Exception as exc:  # noqa: BLE001 - retried, reported on timeout
            last_exc = exc
        now = time.monotonic()
        if now >= deadline:
            break
        time.sleep(min(interval, deadline - now))

    message = (
        f"wait_for_condition: {name} was not met within {timeout}s "
        f"({attempts} attempts)"
    )
    if last_exc is not None:
        detail = "".join(
            traceback.format_exception(type(last_exc), last_exc, last_exc.__traceback__)
        )
        message += f"; its last attempt raised:\n{detail}"
    raise RuntimeError(message)


def wait_for_file(path: str, timeout: float = 60.0) -> None:
    """Runs inside tasks: block until the test creates ``path`` (the test's signal).

    Tasks can't share a threading.Event with the test process, so a file is the
    gate; the poll is short because it only ever waits for the test itself.
    """
    import os

    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.005)


def value_once_file_exists(path: str, value):
    """Runs as a task: ``value``, once the test creates ``path`` (an argument that is not ready)."""
    wait_for_file(path)
    return value


def record_from_another_caller(recorder, value):
    """Runs as a task, a caller other than the driver: records ``value`` on the actor
    (its ``record``/``log`` methods) and returns what the actor recorded so far."""
    import juno

    juno.get(recorder.record.remote(value))
    return juno.get(recorder.log.remote())


def process_alive(proc) -> bool:
    """Whether a psutil.Process is still running (a zombie is not)."""
    import psutil

    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def pid_gone(pid: int) -> bool:
    """Whether process ``pid`` has exited (a zombie counts as gone)."""
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@contextlib.contextmanager
def multi_node_cluster(guard, head: dict, *nodes: dict, system_config: dict | None = None,
                       connect: dict | None = None):
    """A local multi-node cluster (juno.cluster_utils.Cluster) with this process attached as
    its driver; yields it and the nodes added, and shuts it down afterwards.

    ``head`` and each of ``nodes`` are the arguments of a node (``num_cpus``, ``resources``
    ...); ``connect``, those of ``Cluster.connect``. ``guard``, the test's leak guard
    (``_juno_leak_guard`` or ``_juno_module_leak_guard``), notes the cluster's processes once
    it is up and again before it is shut down. A cluster left connected by an earlier test
    is shut down first.
    """
    import juno
    from juno.cluster_utils import Cluster

    if juno.is_initialized():
        juno.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args=head, _system_config=system_config)
    try:
        added = [cluster.add_node(**node) for node in nodes]
        cluster.wait_for_nodes()
        cluster.connect(**(connect or {}))
        guard.note_processes()
        yield cluster, added
    finally:
        guard.note_processes()
        cluster.shutdown()
