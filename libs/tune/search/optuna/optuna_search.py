"""OptunaSearch: a real optuna study drives the suggestions (ask and tell), as Ray's adapter does.

The search space is Tune's Domains (converted to optuna distributions, keys flattened "a/b"),
optuna distributions themselves, or a define-by-run function ``space(trial)`` that calls
``trial.suggest_*`` and may return a dict of constants. Intermediate results go to
``trial.report(value, training_iteration)``; a trial that ends without the metric is told as
PRUNED (FAIL when it errored), as Ray does.
"""
from __future__ import annotations

import logging
import math

from juno.tune.search.optional import import_optional
from juno.tune.search.sample import Categorical, Domain, Float, Integer, LogUniform, Quantized, Uniform
from juno.tune.search.searcher import Searcher, check_mode
from juno.tune.search.variant_generator import domains_by_name, flatten_dict, has_unresolved_values, unflatten_dict

logger = logging.getLogger(__name__)

__all__ = ["OptunaSearch"]

_PRIMITIVES = (type(None), bool, int, float, str)


def _optuna():
    return import_optional("optuna", "tune-optuna")


class OptunaSearch(Searcher):
    """Tune's searcher over an optuna study (TPE by default, seeded with ``seed``)."""

    def __init__(self, space=None, metric=None, mode=None, points_to_evaluate: list | None = None,
                 sampler=None, seed: int | None = None, evaluated_rewards: list | None = None):
        ot = _optuna()
        super().__init__(metric=metric, mode=mode)
        if space is not None and not isinstance(space, dict) and not callable(space):
            raise TypeError(f"space must be a dict (Tune search space or optuna distributions) or a "
                            f"define-by-run function, got {type(space).__name__}")
        if sampler is not None and not isinstance(sampler, ot.samplers.BaseSampler):
            raise TypeError(f"sampler must be an optuna sampler, got {type(sampler).__name__}")
        if evaluated_rewards is not None:
            if not points_to_evaluate or len(evaluated_rewards) != len(points_to_evaluate):
                raise ValueError("evaluated_rewards needs one reward per point in points_to_evaluate, got "
                                 f"{len(evaluated_rewards)} rewards for {len(points_to_evaluate or [])} points")
            if callable(space) and not isinstance(space, dict):
                raise TypeError("evaluated_rewards cannot be used with a define-by-run space; give a dict space")
        self._points = [flatten_dict(p) for p in points_to_evaluate or []]
        self._rewards = list(evaluated_rewards or [])
        self._sampler = sampler
        self._seed = seed
        self._space = None
        self._categories: dict = {}  # name -> categories, for choices optuna holds by index
        self._study = None
        self._ot_trials: dict = {}
        self._completed: set = set()
        if space is not None:
            self._space = space if callable(space) and not isinstance(space, dict) else self._convert(space)
            if metric and mode:
                self._setup_study()

    def _convert(self, space: dict) -> dict:
        """Tune Domains -> optuna distributions (optuna distributions kept), under flat "a/b" names."""
        ot = _optuna()
        converted = {name: self._distribution(name, domain)
                     for name, domain in domains_by_name(space, "OptunaSearch").items()}
        for name, value in flatten_dict(space).items():
            if isinstance(value, ot.distributions.BaseDistribution):
                converted[name] = value
        return converted

    def _distribution(self, name: str, domain: Domain):
        dist = _optuna().distributions
        sampler, q = domain.get_sampler(), None
        if isinstance(sampler, Quantized):
            low, high = sampler.bounds(domain)
            sampler, q = sampler.get_sampler(), sampler.q
        if isinstance(domain, Float) and isinstance(sampler, LogUniform):
            if q is not None:
                logger.warning("OptunaSearch: %s: optuna cannot quantize a log-uniform float; q=%s is ignored", name, q)
            return dist.FloatDistribution(domain.lower, domain.upper, log=True)
        if isinstance(domain, Float) and isinstance(sampler, Uniform):
            return dist.FloatDistribution(low, high, step=q) if q else dist.FloatDistribution(domain.lower, domain.upper)
        if isinstance(domain, Integer) and isinstance(sampler, (Uniform, LogUniform)):
            log = isinstance(sampler, LogUniform)
            if q is None:  # upper exclusive, as randint
                return dist.IntDistribution(domain.lower, domain.upper - 1, log=log)
            if log and q != 1:
                raise ValueError(f"{name}: optuna cannot quantize a log-uniform integer (q={q}); use lograndint")
            return dist.IntDistribution(int(low), int(high), step=1 if log else q, log=log)
        if isinstance(domain, Categorical) and isinstance(sampler, Uniform):
            if all(isinstance(c, _PRIMITIVES) for c in domain.categories):
                return dist.CategoricalDistribution(domain.categories)
            self._categories[name] = domain.categories  # optuna stores only primitives: hold the index
            return dist.CategoricalDistribution(list(range(len(domain.categories))))
        raise ValueError(f"{name}: optuna has no distribution for {type(domain).__name__} sampled by {sampler}; "
                         f"use uniform, loguniform, randint, lograndint, quniform, qrandint or choice")

    def _setup_study(self):
        ot = _optuna()
        if self._metric is None or self._mode is None:
            raise RuntimeError("OptunaSearch needs a metric and a mode: pass them to OptunaSearch or TuneConfig")
        if ot.logging.get_verbosity() == ot.logging.INFO:  # one log line per trial floods a notebook
            ot.logging.set_verbosity(ot.logging.WARNING)
        modes = self._mode if isinstance(self._mode, (list, tuple)) else [self._mode]
        directions = ["minimize" if m == "min" else "maximize" for m in modes]
        if self._sampler is not None and self._seed is not None:
            logger.warning("OptunaSearch: seed is ignored when a sampler is given; seed the sampler instead")
        sampler = self._sampler or ot.samplers.TPESampler(seed=self._seed)
        self._study = ot.create_study(sampler=sampler, directions=directions)
        for i, point in enumerate(self._points):
            point = self._encode(point)
            if self._rewards:
                self._tell_evaluated(point, self._rewards[i], ot.trial.TrialState.COMPLETE, None)
            else:
                self._study.enqueue_trial(point)

    def set_search_properties(self, metric, mode, config: dict, **spec) -> bool:
        if self._space is not None:
            return False
        check_mode(mode)
        self._space = self._convert(config or {})
        self._metric = metric or self._metric
        self._mode = mode or self._mode
        self._setup_study()
        return True

    def _encode(self, params: dict) -> dict:
        """Flat params as optuna holds them (categories of non-primitive values by index)."""
        encoded = dict(params)
        for name, categories in self._categories.items():
            if name in encoded:
                encoded[name] = categories.index(encoded[name])
        return encoded

    def _decode(self, params: dict) -> dict:
        decoded = dict(params)
        for name, categories in self._categories.items():
            if name in decoded:
                decoded[name] = categories[decoded[name]]
        return decoded

    def suggest(self, trial_id: str):
        if self._space is None:
            raise RuntimeError("OptunaSearch has no search space: pass space= or a param_space to the Tuner")
        if self._study is None:
            self._setup_study()
        if callable(self._space) and not isinstance(self._space, dict):
            ot_trial = self._study.ask()
            constants = self._space(ot_trial)
            if constants is not None and not isinstance(constants, dict):
                raise TypeError(f"the define-by-run function must return None or a dict of constants, "
                                f"got {type(constants).__name__}")
            if constants and has_unresolved_values(constants):
                raise ValueError("the define-by-run function must return constants, not search spaces")
            params = {**ot_trial.params, **flatten_dict(constants or {})}
        else:
            ot_trial = self._study.ask(fixed_distributions=self._space)
            params = self._decode(ot_trial.params)
        self._ot_trials[trial_id] = ot_trial
        return unflatten_dict(params)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if isinstance(self._metric, (list, tuple)) or trial_id in self._completed or trial_id not in self._ot_trials:
            return  # optuna takes intermediate values for single-objective studies only
        value, step = result.get(self._metric), result.get("training_iteration")
        if isinstance(value, (int, float)) and step is not None:
            self._ot_trials[trial_id].report(float(value), int(step))

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id in self._completed or trial_id not in self._ot_trials:
            return
        state = _optuna().trial.TrialState
        value = None
        if result:
            value = ([result.get(m) for m in self._metric] if isinstance(self._metric, (list, tuple))
                     else result.get(self._metric))
        missing = value is None or (isinstance(value, list) and None in value)
        trial_state = (state.FAIL if error else state.PRUNED) if missing else state.COMPLETE
        try:
            self._study.tell(self._ot_trials[trial_id], None if missing else value, state=trial_state)
        except Exception as exc:  # e.g. a NaN metric: optuna refuses it; the search goes on
            logger.warning("OptunaSearch: optuna refused the result of trial %s: %s", trial_id, exc)
        self._completed.add(trial_id)

    def add_evaluated_point(self, parameters: dict, value, error: bool = False, pruned: bool = False,
                            intermediate_values: list | None = None) -> None:
        if self._space is None or (callable(self._space) and not isinstance(self._space, dict)):
            raise RuntimeError("OptunaSearch takes evaluated points only with a dict search space set")
        if self._study is None:
            self._setup_study()
        state = _optuna().trial.TrialState
        trial_state = state.FAIL if error else state.PRUNED if pruned else state.COMPLETE
        self._tell_evaluated(self._encode(flatten_dict(parameters)), value, trial_state, intermediate_values)

    def _tell_evaluated(self, params: dict, value, trial_state, intermediate_values):
        ot = _optuna()
        unknown = sorted(set(params) - set(self._space))
        if unknown:
            raise ValueError(f"evaluated point has keys {unknown} that are not in the search space "
                             f"{sorted(self._space)}")
        values = value if isinstance(value, (list, tuple)) else None
        done = trial_state == ot.trial.TrialState.COMPLETE
        trial = ot.trial.create_trial(
            state=trial_state, params=params, distributions={k: self._space[k] for k in params},
            value=None if values is not None or not done or value is None or math.isnan(value) else value,
            values=values if done else None,
            intermediate_values=dict(enumerate(intermediate_values)) if intermediate_values else None)
        self._study.add_trial(trial)
