"""The experiment loop on the driver: trials from the search algorithm, started as the scheduler
chooses and the cluster has room, each in its own actor; every result goes to the stoppers, the
scheduler and the searcher, whose decision (continue, pause, stop) travels back with the next poll.

A trial's report waits for that answer (the session's synchronous mode), so a scheduler's STOP at a
rung takes effect at that very iteration, as in Ray. What the controller offers schedulers
(``get_trials``, ``pause_trial``, ``stop_trial``, ``exploit_trial``, ``has_resources_for_trial``) is
Ray's TuneController interface.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
import time
import uuid
from typing import Any

import cloudpickle

import juno
from juno.air.checkpoint import Checkpoint
from juno.air.config import RunConfig
from juno.air.failure import describe_failure
from juno.air.result import flatten_dict
from juno.air.storage import CheckpointManager, StorageContext
from juno.air.validation import check_resources_fit
from juno.air.worker import SessionWorker
from juno.tune.experiment.trial import Trial
from juno.tune.trainable.function import FunctionRunner, resources_for, runner_for, trainable_name
from juno.tune.trainable.util import PlacementGroupFactory

logger = logging.getLogger("juno.tune")

POLL_S = 0.5          # how long one poll waits at a trial for its next result
STATE_EVERY_S = 5.0   # how often the experiment's state is saved for Tuner.restore
STOP_GRACE_S = 10.0   # how long stopped trials get to end (and checkpoint) before their actors are killed


class TrialRun:
    """A running trial's actor and where the conversation with it stands."""

    def __init__(self, trial: Trial, actor: Any, resources: dict) -> None:
        self.trial, self.actor, self.resources = trial, actor, resources
        self.acked = 0
        self.stop: bool | str = False      # the decision the next poll carries: True, or "pause"
        self.restart = False               # exploited (PBT): start again with the new config when it ends
        self.poll_ref: Any = None
        self.start_ref: Any = None
        self.loop_id = ""


class TuneController:
    """Runs an experiment's trials to the end (or the time budget, or an interrupt)."""

    def __init__(self, *, trainable: Any, search_alg: Any, scheduler: Any, tune_config: Any, run_config: RunConfig,
                 storage: StorageContext, view: Any, stopper: Any, trials: list[Trial] | None = None,
                 state: dict | None = None) -> None:
        self.trainable = trainable
        self.search_alg, self.scheduler = search_alg, scheduler
        self.tune_config, self.run_config = tune_config, run_config
        self.storage, self.view, self.stopper = storage, view, stopper
        self.trials: list[Trial] = list(trials or [])
        state = state or {}
        self.exp_id = state.get("exp_id") or uuid.uuid4().hex[:5]
        self.search_done = state.get("search_done", False)
        self.runs: dict[str, TrialRun] = {}
        self.idle_actors: list[tuple[tuple, Any]] = []
        self._pausing: set[str] = set()  # trials told to pause whose loops are still ending
        self.managers: dict[str, CheckpointManager] = {}
        for trial in self.trials:
            self._manager(trial).load_state(state.get("checkpoints", {}).get(trial.trial_id, []))
        self.capacity = juno.cluster_resources()
        runner = runner_for(trainable, **_class_checkpointing(run_config))
        self.runner_ref = juno.put(runner)
        # By default a function trial's actor serves the next trial: no process start, no imports again.
        self.reuse_actors = tune_config.reuse_actors if tune_config.reuse_actors is not None \
            else isinstance(runner, FunctionRunner)
        self.started = time.monotonic()
        self.last_save = 0.0
        self.interrupted = False

    # ================================================================== the scheduler's interface
    def get_trials(self) -> list[Trial]:
        return list(self.trials)

    def get_live_trials(self) -> list[Trial]:
        return [t for t in self.trials if not t.is_finished()]

    def pause_trial(self, trial: Trial, should_checkpoint: bool = True) -> None:
        run = self.runs.get(trial.trial_id)
        if run is not None:
            run.stop = "pause" if should_checkpoint else True
            run.restart = False
            trial.set_status(Trial.PAUSED)
            self._pausing.add(trial.trial_id)
        elif trial.status == Trial.PENDING:
            trial.set_status(Trial.PAUSED)

    def stop_trial(self, trial: Trial) -> None:
        """A running trial ends at its next report (on_trial_complete then); a waiting one is removed."""
        run = self.runs.get(trial.trial_id)
        if run is not None:
            run.stop = True
            self._pausing.discard(trial.trial_id)  # a pause still ending becomes the trial's end
        elif not trial.is_finished():
            trial.set_status(Trial.TERMINATED)
            self.scheduler.on_trial_remove(self, trial)
            self.search_alg.on_trial_complete(trial.trial_id, trial.last_result)
            self.view.trial_updated(trial)

    def exploit_trial(self, trial: Trial, new_config: dict, checkpoint: Checkpoint | None, new_tag: str) -> None:
        """PBT: ``trial`` goes on from ``checkpoint`` (another trial's) with ``new_config``."""
        trial.config = new_config
        trial.experiment_tag = new_tag
        if checkpoint is not None:
            trial.iterations = self._iteration_of(checkpoint, default=trial.iterations)
            trial.checkpoint = self._copy_checkpoint(checkpoint, trial)
        run = self.runs.get(trial.trial_id)
        if run is not None:
            run.stop, run.restart = True, True
        elif trial.status == Trial.PAUSED:
            trial.set_status(Trial.PENDING)

    def has_resources_for_trial(self, trial: Trial) -> bool:
        """Room to start ``trial`` now. A paused trial whose loop is still ending has none yet: a
        scheduler that chose it now would forget it (HyperBand drops it from its resume queue)."""
        if trial.trial_id in self.runs:
            return False
        if self.tune_config.max_concurrent_trials and len(self.runs) >= self.tune_config.max_concurrent_trials:
            return False
        used: dict[str, float] = {}
        for run in self.runs.values():
            for k, v in run.resources.items():
                used[k] = used.get(k, 0.0) + v
        needed = self._resources(trial).required_resources
        return all(used.get(k, 0.0) + v <= self.capacity.get(k, 0.0) + 1e-9 for k, v in needed.items())

    # ================================================================== the loop
    def run(self) -> list[Trial]:
        try:
            while True:
                if self._out_of_time() or (self.stopper is not None and self.stopper.stop_all()):
                    self._stop_everything(reason="stopped")
                    break
                self._add_trials()
                self._start_trials()
                if not self.runs and ((self.search_done and not self._startable()) or self._nothing_will_start()):
                    break
                self._step()
                self._save_state_now_and_then()
        except KeyboardInterrupt:
            self.interrupted = True
            self._stop_everything(reason="interrupted")
        finally:
            for _, actor in self.idle_actors:
                _kill(actor)
            self.idle_actors = []
            self.save_state()
        return self.trials

    def _out_of_time(self) -> bool:
        budget = self.tune_config.time_budget_s
        seconds = budget.total_seconds() if hasattr(budget, "total_seconds") else budget
        return bool(seconds) and time.monotonic() - self.started >= seconds

    def _startable(self) -> list[Trial]:
        return [t for t in self.trials if t.status in (Trial.PENDING, Trial.PAUSED) and t.trial_id not in self.runs]

    def _nothing_will_start(self) -> bool:
        """Nothing runs: give the searcher a poll's time, then ask again. Still nothing means nothing ever
        will, since only results change a searcher's or scheduler's mind: the experiment ends, and trials
        the scheduler left waiting end with it (a warning says which) instead of a loop spinning forever."""
        time.sleep(POLL_S)
        self._add_trials()
        self._start_trials()
        if self.runs:
            return False
        waiting = self._startable()
        if waiting:
            logger.warning("%s starts none of the %d trial(s) still waiting (%s) while no trial runs; ending them.",
                           type(self.scheduler).__name__, len(waiting), ", ".join(str(t) for t in waiting[:5]))
            for trial in waiting:
                if not trial.is_finished():  # ending one may have ended others (HyperBand's bracket)
                    self._complete(trial)
                    self.view.trial_updated(trial)
        elif not self.search_done:
            logger.warning("The search algorithm suggests nothing while no trial runs; ending the experiment.")
        self.search_done = True
        return True

    # ------------------------------------------------------------------ trials in
    def _add_trials(self) -> None:
        """Ask the searcher for trials while they could start now (one more than could, so the table
        shows what comes next)."""
        room = 1 + self._free_slots()
        while not self.search_done and sum(t.status == Trial.PENDING for t in self.trials) < room:
            trial_id = f"{self.exp_id}_{len(self.trials):05d}"
            config = self.search_alg.suggest(trial_id)
            if config is None:
                return
            if isinstance(config, str) and config == "FINISHED":
                self.search_done = True
                return
            self._new_trial(trial_id, config)

    def _free_slots(self) -> int:
        limit = self.tune_config.max_concurrent_trials or 10**6
        per_trial = max((self._resources(t).required_resources.get("CPU", 0.0) for t in self.trials[-1:]),
                        default=1.0) or 1.0
        free_cpus = self.capacity.get("CPU", 0.0) - sum(r.resources.get("CPU", 0.0) for r in self.runs.values())
        return max(0, min(limit - len(self.runs), int(free_cpus // per_trial)))

    def _new_trial(self, trial_id: str, config: dict) -> Trial:
        tag, params = _trial_tag(len(self.trials), self.search_alg, trial_id, config)
        name = self.tune_config.trial_name_creator(_Named(trial_id, config, tag)) \
            if self.tune_config.trial_name_creator else f"{trainable_name(self.trainable)}_{trial_id}"
        dirname = self.tune_config.trial_dirname_creator(_Named(trial_id, config, tag)) \
            if self.tune_config.trial_dirname_creator else name
        trial = Trial(trial_id, config, experiment_tag=tag, evaluated_params=params,
                      path=f"{self.storage.run_path}/{dirname}", trial_name=name)
        pgf = self._resources(trial)
        trial.resources = pgf.required_resources
        check_resources_fit(pgf.bundles, pgf.strategy, juno.nodes(), unit="trial bundle")
        self.trials.append(trial)
        self.scheduler.on_trial_add(self, trial)
        self.view.trial_added(trial)
        return trial

    def _resources(self, trial: Trial) -> PlacementGroupFactory:
        cached = getattr(trial, "_pgf", None)
        if cached is None:
            cached = resources_for(self.trainable, trial.config)
            trial._pgf = cached
        return cached

    # ------------------------------------------------------------------ starting
    def _start_trials(self) -> None:
        while True:
            trial = self.scheduler.choose_trial_to_run(self)
            if trial is None or not self.has_resources_for_trial(trial):
                return
            self._start(trial)

    def _start(self, trial: Trial) -> None:
        pgf = self._resources(trial)
        head = pgf.bundles[0]
        key = tuple(sorted(head.items()))
        actor = next((a for k, a in self.idle_actors if k == key), None)
        if actor is not None:
            self.idle_actors = [(k, a) for k, a in self.idle_actors if a is not actor]
        else:
            options = {"num_cpus": head.get("CPU", 0), "num_gpus": head.get("GPU", 0), "max_concurrency": 2,
                       "resources": {k: v for k, v in head.items() if k not in ("CPU", "GPU", "memory")}}
            if "memory" in head:
                options["memory"] = head["memory"]
            actor = juno.remote(SessionWorker).options(**options).remote()
        storage = self._trial_storage(trial)
        context = {"trial_id": trial.trial_id, "trial_name": trial.trial_name, "experiment_name": self.storage.name,
                   "world_rank": 0, "world_size": 1, "local_rank": 0, "local_world_size": 1, "node_rank": 0,
                   "run_path": trial.path, "resources": trial.resources}
        session_args = {"storage": storage, "context": context, "start_iteration": trial.iterations,
                        "resume": ("checkpoint", trial.checkpoint) if trial.checkpoint else None,
                        "sync_reports": True}
        run = TrialRun(trial, actor, dict(trial.resources))
        run.loop_id = f"{trial.trial_id}:{uuid.uuid4().hex[:6]}"
        run.start_ref = actor.start_loop.remote(self.runner_ref, trial.config, session_args, run.loop_id)
        run.poll_ref = actor.poll.remote(POLL_S, 0, False, run.loop_id)
        self.runs[trial.trial_id] = run
        self._pausing.discard(trial.trial_id)
        trial.set_status(Trial.RUNNING)
        self.view.trial_updated(trial)

    def _trial_storage(self, trial: Trial) -> StorageContext:
        return StorageContext(self.storage.run_path, trial.path.rsplit("/", 1)[-1],
                              None if self.storage.local else self.storage.filesystem)

    # ------------------------------------------------------------------ results in, decisions out
    def _step(self) -> None:
        polls = {run.poll_ref: run for run in self.runs.values()}
        if not polls:
            return
        # A start that failed (the trainable could not be unpickled, the session could not be made) is
        # the trial's failure: its polls would only ever come back empty.
        starts = {run.start_ref: run for run in self.runs.values() if run.start_ref is not None}
        ready, _ = juno.wait([*polls, *starts], num_returns=1, timeout=POLL_S + 30)
        for ref in ready:
            if ref in starts:
                run = starts[ref]
                run.start_ref = None
                try:
                    juno.get(ref)
                except Exception as e:  # noqa: BLE001 - start_loop raised, or its actor died
                    if self.runs.get(run.trial.trial_id) is run:
                        self._trial_failed(run, e)
                continue
            run = polls[ref]
            if self.runs.get(run.trial.trial_id) is not run:
                continue
            try:
                reports, done = juno.get(ref)
            except Exception as e:  # noqa: BLE001 - the trial's loop raised, or its actor died
                self._trial_failed(run, e)
                continue
            for entry in reports:
                self._on_report(run, entry)
            if done:
                self._trial_ended(run)
            else:
                run.poll_ref = run.actor.poll.remote(POLL_S, run.acked, run.stop, run.loop_id)

    def _on_report(self, run: TrialRun, entry: dict) -> None:
        trial = run.trial
        run.acked = entry["seq"]
        if "checkpoint" in entry:
            self._keep_checkpoint(trial, entry)
        if entry.get("final_checkpoint"):
            return
        if run.stop:  # a decision was already made: this result is the last one in flight
            return
        elapsed = trial.last_result.get("time_total_s", 0.0) + entry["time_this_iter_s"]
        result = {**entry["metrics"], "training_iteration": entry["iteration"],
                  "time_this_iter_s": entry["time_this_iter_s"], "time_total_s": elapsed,
                  "timestamp": int(entry["time"]), "trial_id": trial.trial_id, "done": False,
                  "experiment_tag": trial.experiment_tag}
        trial.update_last_result(result)
        self._trial_storage(trial).append_line("result.json", {**result, "config": trial.config})
        stop = bool(result.get("done")) or (self.stopper is not None and self.stopper(trial.trial_id, result))
        self.search_alg.on_trial_result(trial.trial_id, result)
        decision = self.scheduler.on_trial_result(self, trial, result)
        if stop or decision == "STOP":
            run.stop = True
        elif decision == "PAUSE" and not run.stop:
            self.pause_trial(trial)
        self.view.trial_updated(trial)

    def _keep_checkpoint(self, trial: Trial, entry: dict) -> None:
        kind, value = entry["checkpoint"]
        storage = self._trial_storage(trial)
        path = value if kind == "persisted" else storage.checkpoint_path(entry["iteration"])
        if kind == "archive":
            storage.persist_archive(value, path)
        metrics = {**entry.get("metrics", {}), "training_iteration": entry["iteration"]}
        manager = self._manager(trial)
        if manager.latest and manager.latest["path"] == path:
            manager.entries[-1]["metrics"] = metrics or manager.entries[-1]["metrics"]
        else:
            for dropped in manager.register(entry["iteration"], path, metrics):
                storage.delete_dir(dropped)
        trial.checkpoint = storage.checkpoint(manager.latest["path"])

    def _manager(self, trial: Trial) -> CheckpointManager:
        if trial.trial_id not in self.managers:
            self.managers[trial.trial_id] = CheckpointManager(self.run_config.checkpoint_config)
        return self.managers[trial.trial_id]

    def _trial_ended(self, run: TrialRun) -> None:
        """The loop ended: by itself, or because we asked (stop, pause, exploit)."""
        trial = run.trial
        self._release(run, reusable=True)
        if run.restart:
            trial.set_status(Trial.PENDING)
        elif trial.trial_id in self._pausing:
            self._pausing.discard(trial.trial_id)
            trial.set_status(Trial.PAUSED)
        else:
            self._complete(trial)
        self.view.trial_updated(trial)

    def _complete(self, trial: Trial) -> None:
        trial.last_result = {**trial.last_result, "done": True}
        trial.set_status(Trial.TERMINATED)
        self.scheduler.on_trial_complete(self, trial, trial.last_result)
        self.search_alg.on_trial_complete(trial.trial_id, trial.last_result)

    def _trial_failed(self, run: TrialRun, error: BaseException) -> None:
        trial = run.trial
        self._release(run, reusable=False)
        trial.num_failures += 1
        max_failures = self.run_config.failure_config.max_failures
        if max_failures == -1 or trial.num_failures <= max_failures:
            logger.warning("Trial %s failed (%d of %s allowed): %s; restarting from %s.", trial, trial.num_failures,
                           "unlimited" if max_failures == -1 else max_failures, _first_line(error),
                           trial.checkpoint or "the start")
            trial.set_status(Trial.PENDING)
        else:
            trial.error = describe_failure(error)
            trial.error_object = error
            trial.set_status(Trial.ERROR)
            self.scheduler.on_trial_error(self, trial)
            self.search_alg.on_trial_complete(trial.trial_id, error=True)
            self._storage_error(trial)
            if self.run_config.failure_config.fail_fast:
                self.view.trial_updated(trial)
                raise _FailFast(trial)
        self.view.trial_updated(trial)

    def _storage_error(self, trial: Trial) -> None:
        self._trial_storage(trial).write_bytes("error.txt", (trial.error or "").encode())

    def _release(self, run: TrialRun, *, reusable: bool) -> None:
        self.runs.pop(run.trial.trial_id, None)
        if reusable and self.reuse_actors and not getattr(self, "_ending", False):
            head = self._resources(run.trial).bundles[0]
            self.idle_actors.append((tuple(sorted(head.items())), run.actor))
            # Only as many idle actors as could ever run: extra ones give their room back.
            while len(self.idle_actors) > max(1, len(self.trials)):
                _kill(self.idle_actors.pop(0)[1])
        else:
            _kill(run.actor)

    # ------------------------------------------------------------------ the end
    def _stop_everything(self, *, reason: str) -> None:
        """Ask every running trial to stop (paused with a checkpoint when interrupted), give them a
        moment, then kill what is left."""
        self._ending = True
        for run in self.runs.values():
            run.stop = "pause" if reason == "interrupted" else True
            run.poll_ref = run.actor.poll.remote(0.1, run.acked, run.stop, run.loop_id)
        deadline = time.monotonic() + STOP_GRACE_S
        while self.runs and time.monotonic() < deadline:
            polls = {run.poll_ref: run for run in self.runs.values()}
            ready, _ = juno.wait(list(polls), num_returns=len(polls), timeout=max(0.1, deadline - time.monotonic()))
            for ref in ready:
                run = polls[ref]
                try:
                    reports, done = juno.get(ref)
                except Exception:  # noqa: BLE001 - ending anyway
                    reports, done = [], True
                for entry in reports:
                    if "checkpoint" in entry:
                        run.acked = entry["seq"]
                        self._keep_checkpoint(run.trial, entry)
                if done:
                    self._finish_at_end(run, reason)
                else:
                    run.poll_ref = run.actor.poll.remote(0.1, run.acked, run.stop, run.loop_id)
        for run in list(self.runs.values()):
            self._finish_at_end(run, reason)

    def _finish_at_end(self, run: TrialRun, reason: str) -> None:
        self._release(run, reusable=False)
        trial = run.trial
        if reason == "interrupted":
            trial.set_status(Trial.PAUSED)  # Tuner.restore resumes it from its checkpoint
        else:
            self._complete(trial)
        self.view.trial_updated(trial)

    def _save_state_now_and_then(self) -> None:
        if time.monotonic() - self.last_save >= STATE_EVERY_S:
            self.save_state()

    def save_state(self) -> None:
        """What Tuner.restore needs: the trials, their checkpoints, the searcher's and scheduler's state."""
        self.last_save = time.monotonic()
        state = {"exp_id": self.exp_id, "search_done": self.search_done,
                 "trials": [t.to_state() for t in self.trials],
                 "checkpoints": {tid: m.state() for tid, m in self.managers.items()}}
        try:
            self.storage.write_bytes("experiment_state.json", json.dumps(state, default=repr).encode())
            self.storage.write_bytes("search_state.pkl", cloudpickle.dumps(
                {"search": self.search_alg.get_state(), "scheduler": scheduler_state(self.scheduler)}))
        except Exception as e:  # noqa: BLE001 - a state that cannot be saved must not end the experiment
            logger.warning("Could not save the experiment's state for Tuner.restore: %s", _first_line(e))

    def _iteration_of(self, checkpoint: Checkpoint, default: int) -> int:
        """The training_iteration a trial's checkpoint was reported at: an exploiting trial counts on from it."""
        for manager in self.managers.values():
            for entry in manager.entries:
                if entry["path"] == checkpoint.path:
                    return entry["index"]
        return default

    def _copy_checkpoint(self, checkpoint: Checkpoint, trial: Trial) -> Checkpoint:
        """A private copy for an exploiting trial: the source trial may delete its own later."""
        storage = self._trial_storage(trial)
        dest = f"{trial.path}/exploited_{uuid.uuid4().hex[:8]}"
        with checkpoint.as_directory() as directory:
            storage.persist_directory(directory, dest)
        return storage.checkpoint(dest)


def scheduler_state(scheduler: Any) -> bytes:
    """The scheduler's own save(), as bytes (the experiment's folder may not be on local disk)."""
    with tempfile.TemporaryDirectory(prefix="juno_tune_") as directory:
        path = os.path.join(directory, "scheduler.pkl")
        scheduler.save(path)
        with open(path, "rb") as f:
            return f.read()


def restore_scheduler(scheduler: Any, state: bytes) -> None:
    with tempfile.TemporaryDirectory(prefix="juno_tune_") as directory:
        path = os.path.join(directory, "scheduler.pkl")
        with open(path, "wb") as f:
            f.write(state)
        scheduler.restore(path)


class _FailFast(Exception):
    """FailureConfig(fail_fast=True) and a trial errored: the experiment ends."""

    def __init__(self, trial: Trial) -> None:
        super().__init__(trial.error)
        self.trial = trial


class _Named:
    """What trial_name_creator and trial_dirname_creator receive (Ray passes the Trial)."""

    def __init__(self, trial_id: str, config: dict, tag: str) -> None:
        self.trial_id, self.config, self.experiment_tag = trial_id, config, tag

    def __str__(self) -> str:
        return self.trial_id


def _trial_tag(index: int, search_alg: Any, trial_id: str, config: dict) -> tuple[str, dict]:
    """The search algorithm's tag and sampled values for the trial; else every value of its config."""
    try:
        suggestion = search_alg.suggestion(trial_id)
        return suggestion.experiment_tag, dict(suggestion.evaluated_params)
    except (AttributeError, KeyError):
        pass
    params = {k: v for k, v in flatten_dict(config).items() if isinstance(v, (int, float, str, bool, type(None)))}
    shown = ",".join(f"{k}={_short(v)}" for k, v in params.items())
    return (f"{index}_{shown}" if shown else str(index)), params


def _short(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)[:20]


def _class_checkpointing(run_config: RunConfig) -> dict:
    cc = run_config.checkpoint_config
    return {"checkpoint_frequency": cc.checkpoint_frequency or 0, "checkpoint_at_end": bool(cc.checkpoint_at_end)}


def _kill(actor: Any) -> None:
    try:
        juno.kill(actor)
    except Exception:  # noqa: BLE001 - already gone
        pass


def _first_line(error: BaseException) -> str:
    return describe_failure(error).splitlines()[0]
