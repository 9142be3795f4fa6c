"""Population Based Training (Jaderberg et al. 2017): poor trials copy good ones, then explore.

Every ``perturbation_interval`` of a trial's ``time_attr``, the population is ranked by its last
scores. A trial in the bottom ``quantile_fraction`` exploits one of the top quantile: it restarts
from that trial's checkpoint with that trial's config, explored (``pbt_explore.explore``); a trial in
the top quantile offers its latest checkpoint for that. The controller does the restart
(``tune_controller.exploit_trial``). Each exploit is logged as Ray does, one JSON list per line
``[trial tag, cloned tag, trial iteration, cloned iteration, cloned config, new config]`` in
``pbt_global.txt`` and ``pbt_policy_<trial_id>.txt`` of the experiment directory.
"""
from __future__ import annotations

import json
import logging
import math
import os
import shutil
from typing import Any, Callable

import numpy as np

from . import pbt_explore
from .trial_scheduler import PAUSED, PENDING, FIFOScheduler, TrialScheduler, check_mode, has_user_metrics

logger = logging.getLogger(__name__)


class _PBTTrialState:
    """What PBT remembers of one trial between its perturbation points."""

    def __init__(self, orig_tag: str) -> None:
        self.orig_tag = orig_tag
        self.last_score: float | None = None  # metric_op * metric at the last perturbation point
        self.last_checkpoint: Any = None  # offered to bottom trials while this one is in the top quantile
        self.last_perturbation_time: float = 0
        self.last_train_time: float = 0
        self.last_result: dict | None = None


class PopulationBasedTraining(FIFOScheduler):
    """Ray's PopulationBasedTraining: exploit top trials' checkpoints, explore their hyperparameters.

    ``seed`` (not in Ray, which uses the ``random`` module) makes the choices of trial to clone,
    resampling and perturbation reproducible; left None it is drawn from numpy's global state.
    """

    _supports_buffered_results = False

    def __init__(self, time_attr: str = "time_total_s", metric: str | None = None, mode: str | None = None,
                 perturbation_interval: float = 60.0, burn_in_period: float = 0.0,
                 hyperparam_mutations: dict | None = None, quantile_fraction: float = 0.25,
                 resample_probability: float = 0.25, perturbation_factors: tuple = (1.2, 0.8),
                 custom_explore_fn: Callable[[dict], dict] | None = None, log_config: bool = True,
                 require_attrs: bool = True, synch: bool = False, *, seed: int | None = None) -> None:
        super().__init__()
        name = type(self).__name__
        hyperparam_mutations = hyperparam_mutations or {}
        pbt_explore.check_mutations(hyperparam_mutations)
        if not hyperparam_mutations and custom_explore_fn is None:
            raise ValueError(f"{name}: give hyperparam_mutations or custom_explore_fn (or both): PBT needs to know "
                             "how to explore a config.")
        if custom_explore_fn is not None and not callable(custom_explore_fn):
            raise TypeError(f"{name}: custom_explore_fn must be a function of the config, got "
                            f"{type(custom_explore_fn).__name__}.")
        if not 0 <= quantile_fraction <= 0.5:
            raise ValueError(f"{name}: quantile_fraction must be between 0 and 0.5, got {quantile_fraction!r}.")
        if not perturbation_interval > 0:
            raise ValueError(f"{name}: perturbation_interval must be > 0, got {perturbation_interval!r}.")
        if not 0 <= resample_probability <= 1:
            raise ValueError(f"{name}: resample_probability must be between 0 and 1, got {resample_probability!r}.")
        if not perturbation_factors:
            raise ValueError(f"{name}: perturbation_factors must hold at least one factor, e.g. (1.2, 0.8).")
        check_mode(name, mode)
        self._metric, self._mode = metric, mode
        self._time_attr = time_attr
        self._perturbation_interval = perturbation_interval
        self._burn_in_period = burn_in_period
        self._hyperparam_mutations = hyperparam_mutations
        self._quantile_fraction = quantile_fraction
        self._resample_probability = resample_probability
        self._perturbation_factors = tuple(perturbation_factors)
        self._custom_explore_fn = custom_explore_fn
        self._log_config = log_config
        self._require_attrs = require_attrs
        self._synch = synch
        self._next_perturbation_sync = max(perturbation_interval, burn_in_period)
        self._trial_state: dict[str, _PBTTrialState] = {}
        self._warned_missing: set[str] = set()
        self._num_checkpoints = 0
        self._num_perturbations = 0
        self._rng = np.random.default_rng(seed if seed is not None else np.random.randint(2**31))

    # ------------------------------------------------------------------ events
    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        """Track the trial; a mutated key its config lacks gets a first value drawn from its mutation."""
        self._trial_state[trial.trial_id] = _PBTTrialState(trial.experiment_tag)
        for key, space in self._hyperparam_mutations.items():
            if key not in trial.config:
                pbt_explore.fill_config(trial.config, key, space, self._rng)
                trial.evaluated_params[key] = trial.config[key]

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        if not self._has_attrs(trial, result):
            return TrialScheduler.CONTINUE
        state = self._state_of(trial)
        time = result[self._time_attr]
        if time < self._burn_in_period or time - state.last_perturbation_time < self._perturbation_interval:
            return TrialScheduler.CONTINUE
        state.last_score = self._metric_op * result[self._metric]
        state.last_train_time = time
        state.last_result = result
        if not self._synch:
            state.last_perturbation_time = time
            lower, upper = self._quantiles(tune_controller)
            waiting = any(t.status in (PENDING, PAUSED) for t in tune_controller.get_trials())
            exploited = self._checkpoint_or_exploit(trial, tune_controller, upper, lower)
            if exploited:
                return TrialScheduler.NOOP
            return TrialScheduler.PAUSE if waiting else TrialScheduler.CONTINUE
        return self._synch_step(tune_controller, trial, time)

    def _synch_step(self, tune_controller: Any, trial: Any, time: float) -> str:
        """Synchronous mode: pause at the sync point; the last trial to reach it perturbs the whole population."""
        live = [t for t in tune_controller.get_trials() if t.trial_id in self._trial_state and not t.is_finished()]
        behind = [t for t in live if t.trial_id != trial.trial_id
                  and self._trial_state[t.trial_id].last_train_time < self._next_perturbation_sync]
        exploited_current = False
        if not behind:
            lower, upper = self._quantiles(tune_controller)
            ranked_ids = {t.trial_id for t in lower + upper}
            middle = [t for t in live if t.trial_id not in ranked_ids]
            # The top trials first, so they offer checkpoints before the bottom ones look for them.
            for t in upper + middle + lower:
                self._trial_state[t.trial_id].last_perturbation_time = time
                if self._checkpoint_or_exploit(t, tune_controller, upper, lower) and t.trial_id == trial.trial_id:
                    exploited_current = True
            latest = max(self._trial_state[t.trial_id].last_train_time for t in live)
            self._next_perturbation_sync = max(self._next_perturbation_sync + self._perturbation_interval, latest)
        return TrialScheduler.NOOP if exploited_current else TrialScheduler.PAUSE

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        pass

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        pass

    def choose_trial_to_run(self, tune_controller: Any) -> Any:
        """The waiting trial that has trained least, so all get a fair share of time (in synch mode: up to
        the next sync point)."""
        candidates = []
        for trial in tune_controller.get_trials():
            if trial.status not in (PENDING, PAUSED) or not tune_controller.has_resources_for_trial(trial):
                continue
            trained = self._state_of(trial).last_train_time
            if not self._synch or trained < self._next_perturbation_sync:
                candidates.append((trained, trial))
        return min(candidates, key=lambda c: c[0])[1] if candidates else None

    def debug_string(self) -> str:
        return f"PopulationBasedTraining: {self._num_checkpoints} checkpoints, {self._num_perturbations} perturbs"

    # ------------------------------------------------------------------ the algorithm
    def _has_attrs(self, trial: Any, result: dict) -> bool:
        """The result has metric and time_attr; without them: an error, or with require_attrs=False a warning."""
        if not has_user_metrics(result):
            return False
        if self._require_attrs:
            return self._usable_result(trial, result, self._time_attr)
        self._require_metric_and_mode()
        missing = [key for key in (self._metric, self._time_attr) if key not in result]
        for key in missing:
            if key not in self._warned_missing:
                self._warned_missing.add(key)
                logger.warning("PopulationBasedTraining: a result of trial %s has no %r (it has %s); such results "
                               "are skipped (require_attrs=False).", trial.trial_id, key, sorted(result))
        return not missing

    def _state_of(self, trial: Any) -> _PBTTrialState:
        if trial.trial_id not in self._trial_state:  # a trial restored without on_trial_add
            self._trial_state[trial.trial_id] = _PBTTrialState(trial.experiment_tag)
        return self._trial_state[trial.trial_id]

    def _quantiles(self, tune_controller: Any) -> tuple[list, list]:
        """(bottom, top) trials by last score among live scored ones; both empty with fewer than two."""
        scored = [t for t in tune_controller.get_trials() if t.trial_id in self._trial_state
                  and self._trial_state[t.trial_id].last_score is not None and not t.is_finished()]
        scored.sort(key=lambda t: self._trial_state[t.trial_id].last_score)
        if len(scored) <= 1:
            return [], []
        size = int(math.ceil(len(scored) * self._quantile_fraction))
        if size > len(scored) / 2:
            size = int(math.floor(len(scored) / 2))
        if size == 0:
            return [], []
        return scored[:size], scored[-size:]

    def _checkpoint_or_exploit(self, trial: Any, tune_controller: Any, upper: list, lower: list) -> bool:
        """A top trial offers its checkpoint; a bottom trial clones a random top one. True if it was exploited."""
        state = self._trial_state[trial.trial_id]
        if any(t.trial_id == trial.trial_id for t in upper):
            state.last_checkpoint = trial.checkpoint
            self._num_checkpoints += 1
        else:
            state.last_checkpoint = None
        if not any(t.trial_id == trial.trial_id for t in lower):
            return False
        trial_to_clone = upper[int(self._rng.integers(len(upper)))]
        if self._trial_state[trial_to_clone.trial_id].last_checkpoint is None:
            logger.info("[pbt]: no checkpoint for trial %s, so trial %s does not exploit it (report checkpoints "
                        "with tune.report(..., checkpoint=...) for PBT to clone trials).",
                        trial_to_clone.trial_id, trial.trial_id)
            return False
        self._exploit(tune_controller, trial, trial_to_clone)
        return True

    def _exploit(self, tune_controller: Any, trial: Any, trial_to_clone: Any) -> None:
        """Restart ``trial`` from ``trial_to_clone``'s checkpoint with its config, explored."""
        state, clone_state = self._trial_state[trial.trial_id], self._trial_state[trial_to_clone.trial_id]
        new_config, operations = pbt_explore.explore(
            trial_to_clone.config, self._hyperparam_mutations, self._resample_probability,
            self._perturbation_factors, self._custom_explore_fn, self._rng)
        logger.info("[PopulationBasedTraining] [Exploit] Cloning trial %s (score = %.4f) into trial %s "
                    "(score = %.4f)\n%s", trial_to_clone.trial_id, clone_state.last_score, trial.trial_id,
                    state.last_score, pbt_explore.summarize_changes(
                        pbt_explore.mutated_params(trial_to_clone.config, self._hyperparam_mutations),
                        pbt_explore.mutated_params(new_config, self._hyperparam_mutations), operations))
        if self._log_config:
            self._log_exploit(state, clone_state, trial, trial_to_clone, new_config)
        new_tag = pbt_explore.perturbed_tag(state.orig_tag, new_config, self._hyperparam_mutations)
        tune_controller.exploit_trial(trial, new_config, clone_state.last_checkpoint, new_tag)
        state.last_perturbation_time = clone_state.last_perturbation_time
        state.last_train_time = clone_state.last_train_time
        self._num_perturbations += 1

    def _log_exploit(self, state: _PBTTrialState, clone_state: _PBTTrialState, trial: Any, trial_to_clone: Any,
                     new_config: dict) -> None:
        """Append the exploit to pbt_global.txt; the trial's policy file becomes the clone's history plus it."""
        trial_dir = getattr(trial, "path", None)
        if not trial_dir or "://" in str(trial_dir):
            return  # no local experiment directory to write into
        experiment_dir = os.path.dirname(os.path.normpath(trial_dir))
        policy = [state.orig_tag, clone_state.orig_tag,
                  (trial.last_result or {}).get("training_iteration", 0),
                  (trial_to_clone.last_result or {}).get("training_iteration", 0),
                  trial_to_clone.config, new_config]
        line = json.dumps(policy, default=repr)
        try:
            os.makedirs(experiment_dir, exist_ok=True)
            with open(os.path.join(experiment_dir, "pbt_global.txt"), "a") as f:
                f.write(line + "\n")
            trial_path = os.path.join(experiment_dir, f"pbt_policy_{trial.trial_id}.txt")
            clone_path = os.path.join(experiment_dir, f"pbt_policy_{trial_to_clone.trial_id}.txt")
            if os.path.exists(clone_path):
                shutil.copyfile(clone_path, trial_path)
            elif os.path.exists(trial_path):
                os.remove(trial_path)
            with open(trial_path, "a") as f:
                f.write(line + "\n")
        except OSError as e:
            logger.warning("PopulationBasedTraining could not write its policy log in %s: %s", experiment_dir, e)
