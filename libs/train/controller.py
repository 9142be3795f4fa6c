"""The run loop on the driver: start the workers, collect their reports, keep checkpoints, and restart
the group from the latest checkpoint when an attempt fails.

The driver long-polls each worker for its queued reports, so a worker never waits for the driver
between iterations. An iteration is complete when every rank has reported it; rank 0's metrics are
what the run shows, logs to ``result.json`` and returns; the files of all ranks' checkpoints for that
iteration are merged into one checkpoint folder.
"""
from __future__ import annotations

import json
import logging
import time
from typing import Any, Callable

import juno
import juno.exceptions
from juno.air.checkpoint import Checkpoint, is_local
from juno.air.config import RunConfig, ScalingConfig
from juno.air.failure import first_failure, raised_by_user_code
from juno.air.result import Result, metrics_dataframe, read_reports
from juno.air.validation import check_resources_fit
from juno.air.storage import CheckpointManager, StorageContext, pack_directory
from juno.air.worker import free_port
from juno.exceptions import RayActorError
from juno.train.worker_group import WorkerGroup

logger = logging.getLogger("juno.train")

POLL_S = 1.0           # how long one poll waits at a worker for a report
WAIT_SLACK_S = 60.0    # how much longer the driver waits for a poll's answer before asking again
FALLOUT_WAIT_S = 2.0   # after one rank fails, how long the others get to fail too (to find the cause)


class Backend:
    """What a framework sets up on the workers before the loop and tears down after (Ray's Backend)."""

    def on_start(self, group: WorkerGroup, config: Any) -> None:
        pass

    def on_shutdown(self, group: WorkerGroup, config: Any) -> None:
        pass


class AttemptFailed(Exception):
    """One attempt of the run failed: ``error`` from ``rank`` (None when the group could not start)."""

    def __init__(self, error: BaseException, rank: int | None) -> None:
        super().__init__(str(error))
        self.error, self.rank = error, rank


class IterationCollector:
    """Per-rank queues of reports in, complete iterations (one report per rank) out, in order."""

    def __init__(self, world_size: int) -> None:
        self.pending: list[list[dict]] = [[] for _ in range(world_size)]

    def add(self, rank: int, reports: list[dict]) -> list[list[dict]]:
        self.pending[rank].extend(reports)
        complete = []
        while all(self.pending):
            complete.append([queue.pop(0) for queue in self.pending])
        return complete

    def leftover(self) -> int:
        return max((len(q) for q in self.pending), default=0)


class RunState:
    """What survives an attempt and a restore: the iteration count, rank 0's last metrics and the
    checkpoints kept. Saved to ``run_state.json`` after every checkpoint."""

    def __init__(self, storage: StorageContext, run_config: RunConfig) -> None:
        self.storage = storage
        self.iteration = 0
        self.failures = 0
        self.metrics: dict | None = None
        self.time_total_s = 0.0
        self.checkpoints = CheckpointManager(run_config.checkpoint_config)
        self.config: dict | None = None

    def load(self) -> None:
        state = json.loads((self.storage.read_bytes("run_state.json") or b"{}").decode())
        self.iteration = state.get("iteration", 0)
        self.time_total_s = state.get("time_total_s", 0.0)
        self.checkpoints.load_state(state.get("checkpoints", []))
        reports = read_reports(self.storage)
        self.metrics = reports[-1] if reports else None

    def save(self, finished: bool = False) -> None:
        state = {"iteration": self.iteration, "time_total_s": self.time_total_s, "finished": finished,
                 "checkpoints": self.checkpoints.state(), "config": self.config}
        self.storage.write_bytes("run_state.json", json.dumps(state, default=repr).encode())

    def latest_checkpoint(self) -> Checkpoint | None:
        latest = self.checkpoints.latest
        return self.storage.checkpoint(latest["path"]) if latest else None


class TrainController:
    """Runs one trainer's ``fit()`` to a Result, or raises after ``max_failures`` restarts."""

    def __init__(self, *, loop: Callable, loop_config: dict | None, scaling: ScalingConfig, run_config: RunConfig,
                 storage: StorageContext, state: RunState, backend: Backend, backend_config: Any,
                 datasets: dict, resume_checkpoint: Checkpoint | None, view: Any, context: dict,
                 on_failed: Callable[[AttemptFailed, RunState], BaseException],
                 on_iteration: Callable[[dict, str | None], None] | None = None) -> None:
        self.loop, self.loop_config = loop, loop_config
        self.scaling, self.run_config = scaling, run_config
        self.storage, self.state = storage, state
        self.backend, self.backend_config = backend, backend_config
        self.datasets = datasets
        self.resume_checkpoint = resume_checkpoint
        self.view = view
        self.context = context
        self.on_failed = on_failed
        self.on_iteration = on_iteration  # Tune: each complete iteration is a trial's result
        self.here = juno.get_runtime_context().get_node_id()

    def run(self) -> Result:
        max_failures = self.run_config.failure_config.max_failures
        attempt = 0
        while True:
            try:
                self._attempt(attempt)
                break
            except AttemptFailed as failure:
                self.state.failures += 1
                self.state.save()
                if max_failures != -1 and self.state.failures > max_failures:
                    error = self.on_failed(failure, self.state)
                    self.view.fail(str(error))
                    raise error from failure.error
                attempt += 1
                logger.warning("Training attempt %d failed (rank %s): %s. Restarting from %s (%d of %s).", attempt,
                               failure.rank, _first_line(failure.error), self.state.latest_checkpoint() or "the start",
                               self.state.failures, "unlimited" if max_failures == -1 else max_failures)
                self.view.restart(attempt, _first_line(failure.error))
        self.state.save(finished=True)
        result = self.result()
        self.view.finish(result.metrics or {})
        return result

    def result(self, error: BaseException | None = None) -> Result:
        kept = [(self.storage.checkpoint(e["path"]), e["metrics"]) for e in self.state.checkpoints.entries]
        return Result(metrics=self.state.metrics, checkpoint=self.state.latest_checkpoint(), error=error,
                      path=self.storage.run_path, metrics_dataframe=metrics_dataframe(read_reports(self.storage)),
                      best_checkpoints=kept, config=self.state.config, filesystem=self.storage.filesystem)

    # ------------------------------------------------------------------ one attempt
    def _attempt(self, attempt: int) -> None:
        if attempt:  # a node may have gone with the last attempt: never wait for room that cannot come
            check_resources_fit(self.scaling.bundles(), self.scaling.placement_strategy, juno.nodes())
        try:
            group = WorkerGroup(self.scaling)
        except (RayActorError, juno.exceptions.GetTimeoutError, TimeoutError) as e:
            raise AttemptFailed(e, None) from e
        try:
            self.view.start(attempt, [_worker_row(info) for info in group.infos])
            try:
                self._set_up(group)
                self._start_loops(group)
            except (RayActorError, juno.exceptions.RayTaskError, juno.exceptions.GetTimeoutError) as e:
                raise AttemptFailed(e, None) from e
            self._drain(group)
            try:
                self.backend.on_shutdown(group, self.backend_config)
            except Exception as e:  # noqa: BLE001 - the run's work is done and saved; say so and go on
                logger.warning("Tearing down the training backend failed: %s", _first_line(e))
        finally:
            group.shutdown()

    def _set_up(self, group: WorkerGroup) -> None:
        port = group.execute_single(0, free_port, timeout_s=60)
        group.set_env(group.infos[0]["node_ip"], port)
        self.backend.on_start(group, self.backend_config)

    def _start_loops(self, group: WorkerGroup) -> None:
        n = len(group.actors)
        shards: dict[str, list] = {name: ds.streaming_split(n, equal=True) for name, ds in self.datasets.items()}
        loop_ref = juno.put(self.loop)
        resume = self.state.latest_checkpoint() or self.resume_checkpoint
        calls = []
        for rank, (actor, info) in enumerate(zip(group.actors, group.infos)):
            remote_node = info["node_id"] != self.here
            context = {**self.context, **{k: info[k] for k in ("world_rank", "world_size", "local_rank",
                                                                 "local_world_size", "node_rank")},
                       "run_path": self.storage.run_path, "resources": self.scaling.worker_resources}
            session_args = {"storage": self.storage, "context": context,
                            "resume": self._resume_source(resume, remote_node),
                            "start_iteration": self.state.iteration,
                            "dataset_shards": {name: split[rank] for name, split in shards.items()},
                            "ship_checkpoints": remote_node and self.storage.local}
            calls.append(actor.start_loop.remote(loop_ref, self.loop_config, session_args))
        juno.get(calls, timeout=120)

    def _resume_source(self, checkpoint: Checkpoint | None, remote_node: bool) -> tuple | None:
        if checkpoint is None:
            return None
        if remote_node and is_local(checkpoint.filesystem):
            return ("archive", pack_directory(checkpoint.path))
        return ("checkpoint", checkpoint)

    def _drain(self, group: WorkerGroup) -> None:
        """Poll every rank until all loops end; hand complete iterations on as they form."""
        self._collector = IterationCollector(len(group.actors))
        self._started = time.monotonic() - self.state.time_total_s
        polls = {actor.poll.remote(POLL_S): (rank, time.monotonic()) for rank, actor in enumerate(group.actors)}
        acked = [0] * len(group.actors)
        while polls:
            ready, _ = juno.wait(list(polls), num_returns=1, timeout=POLL_S)
            silent = [(rank, since) for rank, since in polls.values() if time.monotonic() - since > POLL_S + WAIT_SLACK_S]
            if silent and not ready:
                rank, since = silent[0]
                self._fail_attempt([(rank, TimeoutError(
                    f"rank {rank} did not answer a poll for {time.monotonic() - since:.0f} s: its process or node is "
                    "stuck or overloaded"))], polls)
            for ref in ready:
                rank, _ = polls.pop(ref)
                try:
                    reports, done = juno.get(ref)
                except Exception as e:  # noqa: BLE001 - any failure of a rank fails the attempt
                    self._fail_attempt([(rank, e)], polls)
                if reports:
                    acked[rank] = reports[-1]["seq"]
                self._collect(rank, reports)
                if done:
                    self.view.worker_state(rank, "finished")
                else:
                    polls[group.actors[rank].poll.remote(POLL_S, acked[rank])] = (rank, time.monotonic())
        if self._collector.leftover():
            logger.warning("The workers reported different numbers of times; the last %d report(s) of some ranks "
                           "had no match on the others and were dropped. Call report() the same number of times "
                           "on every worker.", self._collector.leftover())

    def _collect(self, rank: int, reports: list[dict]) -> None:
        for iteration in self._collector.add(rank, reports):
            self._complete(iteration, time.monotonic() - self._started)

    def _fail_attempt(self, failures: list[tuple[int, BaseException]], polls: dict) -> None:
        """One rank failed: give the others a moment to answer, keeping what they still reported (an
        iteration the failed rank had finished completes), then blame the cause, not the fallout (a
        peer's collective erroring because this rank died)."""
        ready, _ = juno.wait(list(polls), num_returns=len(polls), timeout=FALLOUT_WAIT_S) if polls else ([], [])
        for ref in ready:
            rank, _ = polls[ref]
            try:
                reports, _ = juno.get(ref)
            except Exception as e:  # noqa: BLE001 - collected to choose the cause
                failures.append((rank, e))
            else:
                self._collect(rank, reports)
        for rank, error in failures:
            self.view.worker_state(rank, "failed" if raised_by_user_code(error) else "dead")
        rank, error = first_failure(failures)
        raise AttemptFailed(error, rank) from error

    def _complete(self, reports: list[dict], elapsed: float) -> None:
        """Every rank reported this iteration: log rank 0's metrics and keep the merged checkpoint."""
        head = reports[0]
        self.state.iteration = head["iteration"]
        self.state.time_total_s = elapsed
        metrics = {**head["metrics"], "training_iteration": head["iteration"],
                   "time_this_iter_s": head["time_this_iter_s"], "time_total_s": elapsed,
                   "timestamp": int(head["time"])}
        if "trial_id" in self.context:
            metrics["trial_id"] = self.context["trial_id"]
        self.state.metrics = metrics
        if self.on_iteration is None:  # in a Tune trial, Tune logs the trial's results
            self.storage.append_line("result.json", metrics)
        parts = [r["checkpoint"] for r in reports if "checkpoint" in r]
        path = None
        if parts:
            path = self.storage.checkpoint_path(head["iteration"])
            for kind, value in parts:
                if kind == "archive":
                    self.storage.persist_archive(value, path)
            for dropped in self.state.checkpoints.register(head["iteration"], path, metrics):
                self.storage.delete_dir(dropped)
            self.state.save()
            self.view.checkpoints([(e["path"], e["metrics"]) for e in self.state.checkpoints.entries])
        self.view.report(head["iteration"], metrics, path)
        if self.on_iteration is not None:
            self.on_iteration(metrics, path)


def _worker_row(info: dict) -> dict:
    gpus = info.get("gpu_ids") or []
    return {"rank": info["world_rank"], "local_rank": info["local_rank"], "node_rank": info["node_rank"],
            "node_id": info["node_id"], "pid": info["pid"], "device": f"GPU {','.join(map(str, gpus))}" if gpus
            else "CPU"}


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"
