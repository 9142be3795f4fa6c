"""The actor a run's loop lives in: a Train rank or a Tune trial.

The loop runs in a thread of the actor; the driver long-polls the session's report queue through
``poll`` (``max_concurrency=2``: ``poll`` and ``execute`` answer while the loop runs). A finished
loop leaves the actor ready for another (Tune's ``reuse_actors``).
"""
from __future__ import annotations

import os
import socket
import threading
from typing import Any, Callable

import juno
from juno.air import session as air_session
from juno.air.session import Session, TrainContext, TrialStopped
from juno.air.validation import check_loop_signature


def node_ip() -> str:
    """The address of the node this process runs on, as the cluster knows it (where a process group meets)."""
    node_id = juno.get_runtime_context().get_node_id()
    return next((n.get("NodeManagerAddress", "127.0.0.1") for n in juno.nodes() if n.get("NodeID") == node_id),
                "127.0.0.1")



def free_port() -> int:
    """A TCP port free on every interface of this node now (where rank 0 hosts a process group's store)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        return s.getsockname()[1]


class SessionWorker:
    """One loop's process: where it is (``info``), its environment, and its session's queue."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._session: Session | None = None
        self._loop_id: str | None = None
        self._started = threading.Condition()

    def info(self) -> dict:
        return {"node_id": juno.get_runtime_context().get_node_id(), "node_ip": node_ip(), "pid": os.getpid(),
                "gpu_ids": list(juno.get_gpu_ids())}

    def set_env(self, env: dict) -> None:
        os.environ.update({k: str(v) for k, v in env.items()})

    def execute(self, fn: Callable, *args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    def start_loop(self, loop: Callable, config: dict | None, session_args: dict, loop_id: str = "") -> None:
        """Start ``loop(config)`` (or ``loop()``) in a thread with a session made of ``session_args``;
        ``loop_id`` names it for :meth:`poll` (an actor may run several loops, one after another)."""
        # The previous loop counts as ended once its session says so: the driver learns that through
        # poll() and may reuse this actor at once, while the old thread is still on its way out.
        if self._session is not None and not self._session.finished:
            raise RuntimeError("start_loop() while the previous loop still runs")
        session_args = dict(session_args)
        storage = session_args.pop("storage")
        info = {**session_args.pop("context"), "storage": storage}
        checkpoint = air_session.restore_checkpoint(session_args.pop("resume", None), storage)
        session = Session(TrainContext(info), storage, checkpoint=checkpoint, **session_args)
        air_session.set_session(session)
        self._session = session

        def run() -> None:
            try:
                loop(config) if check_loop_signature(loop) else loop()
            except TrialStopped:
                session.finish()
            except BaseException as e:  # noqa: BLE001 - handed to the driver through poll()
                session.finish(e)
            else:
                session.finish()

        self._thread = threading.Thread(target=run, name="juno-run-loop", daemon=True)
        self._thread.start()
        with self._started:
            self._loop_id = loop_id
            self._started.notify_all()

    def poll(self, timeout_s: float, acked: int = 0, stop: bool | str = False,
             loop_id: str = "") -> tuple[list[dict], bool]:
        """The loop's new reports and whether it ended (see :meth:`Session.poll`); ``stop`` asks the loop
        to end at its next report (``"pause"``: with a checkpoint first, when it can make one). Calls
        may overtake each other: a poll that comes before its loop's start waits for it."""
        with self._started:
            if not self._started.wait_for(lambda: self._loop_id == loop_id, timeout_s):
                return [], False
        return air_session.get_session().poll(timeout_s, acked, stop=stop)
