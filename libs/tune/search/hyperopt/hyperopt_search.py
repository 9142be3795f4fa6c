"""HyperOptSearch: hyperopt's TPE suggests, over a hyperopt ``Trials`` that records every result.

The space is Tune's Domains (converted to ``hp.*`` expressions labelled "a/b") or a hyperopt space
itself (a dict of ``hp.*``). Each suggestion is a trial document TPE writes into the Trials; its
result (the metric as a loss, negated for mode="max") is written back when the trial completes,
so the next suggestion learns from it.
"""
from __future__ import annotations

import copy
import functools
import math

import numpy as np

from juno.tune.search.optional import import_optional
from juno.tune.search.sample import Categorical, Domain, Float, Integer, LogUniform, Normal, Quantized, Uniform
from juno.tune.search.searcher import Searcher, check_mode
from juno.tune.search.variant_generator import domains_by_name, flatten_dict, has_unresolved_values, unflatten_dict

__all__ = ["HyperOptSearch"]


def _hyperopt():
    return import_optional("hyperopt", "tune-hyperopt")


def _objective_unused(config):
    """hyperopt's Domain wants an objective; Tune runs the trials, so it is never called."""
    raise RuntimeError("HyperOptSearch does not evaluate objectives itself")


class HyperOptSearch(Searcher):
    """Tune's searcher over hyperopt's TPE: ``n_initial_points`` random suggestions first, then TPE
    with ``gamma``; ``random_state_seed`` makes the suggestions repeatable."""

    def __init__(self, space: dict | None = None, metric=None, mode=None, points_to_evaluate: list | None = None,
                 n_initial_points: int = 20, random_state_seed: int | None = None, gamma: float = 0.25):
        _hyperopt()
        super().__init__(metric=metric, mode=mode)
        if isinstance(mode, (list, tuple)) or isinstance(metric, (list, tuple)):
            raise ValueError("HyperOptSearch optimises one metric; give metric and mode as single values")
        if space is not None and not isinstance(space, dict):
            raise TypeError(f"space must be a dict (a Tune search space or hyperopt hp.* values), "
                            f"got {type(space).__name__}")
        self._points = [flatten_dict(p) for p in points_to_evaluate or []]
        self._n_initial_points = n_initial_points
        self._gamma = gamma
        self._rng = np.random.default_rng(random_state_seed)
        self._space = None
        self._domains: dict = {}  # label -> Tune Domain, for spaces converted here
        self._trials = None
        self._hp_domain = None
        self._live: dict = {}  # trial_id -> hyperopt tid
        if space is not None:
            self._setup(space)

    def _setup(self, space: dict):
        hpo = _hyperopt()
        if has_unresolved_values(space):
            self._domains = domains_by_name(space, "HyperOptSearch")
            space = {label: self._expression(label, domain) for label, domain in self._domains.items()}
        self._space = space
        self._hp_domain = hpo.base.Domain(_objective_unused, space)
        self._trials = hpo.Trials()
        labels = set(self._hp_domain.params)
        for point in self._points:
            missing = sorted(labels - set(point)) if self._domains else []
            if missing:
                raise ValueError(f"points_to_evaluate: a point must give every searched key; missing {missing}")

    def _expression(self, label: str, domain: Domain):
        hp = _hyperopt().hp
        scope = _hyperopt().pyll.scope
        sampler, q = domain.get_sampler(), None
        if isinstance(sampler, Quantized):
            low, high = sampler.bounds(domain)
            sampler, q = sampler.get_sampler(), sampler.q
        if isinstance(domain, Float):
            if isinstance(sampler, Uniform):
                return hp.quniform(label, low, high, q) if q else hp.uniform(label, domain.lower, domain.upper)
            if isinstance(sampler, LogUniform):
                bounds = math.log(domain.lower), math.log(domain.upper)
                return hp.qloguniform(label, *bounds, q) if q else hp.loguniform(label, *bounds)
            if isinstance(sampler, Normal):
                return (hp.qnormal(label, sampler.mean, sampler.sd, q) if q
                        else hp.normal(label, sampler.mean, sampler.sd))
        if isinstance(domain, Integer):
            if isinstance(sampler, Uniform):
                return (scope.int(hp.quniform(label, low, high, q)) if q
                        else hp.uniformint(label, domain.lower, domain.upper - 1))
            if isinstance(sampler, LogUniform):
                upper = high if q else domain.upper - 1
                return scope.int(hp.qloguniform(label, math.log(domain.lower), math.log(max(upper, domain.lower)),
                                                q or 1))
        if isinstance(domain, Categorical) and isinstance(sampler, Uniform):
            return hp.choice(label, list(range(len(domain.categories))))  # the index; mapped back in _fit
        raise ValueError(f"{label}: hyperopt has no expression for {type(domain).__name__} sampled by {sampler}")

    def _fit(self, config: dict) -> dict:
        """Values as Tune's Domains give them: categories for indices, ints cast, bounds kept."""
        for label, domain in self._domains.items():
            if label not in config:
                continue
            value = config[label]
            if isinstance(domain, Categorical):
                value = domain.categories[int(value)]
            elif isinstance(domain, (Float, Integer)):
                sampler = domain.get_sampler()
                low, high = (sampler.bounds(domain) if isinstance(sampler, Quantized)
                             else (domain.lower, domain.upper - 1 if isinstance(domain, Integer) else domain.upper))
                value = domain.cast(min(max(value, low), high))
            config[label] = value
        return config

    def set_search_properties(self, metric, mode, config: dict, **spec) -> bool:
        if self._space is not None:
            return False
        check_mode(mode)
        self._metric = metric or self._metric
        self._mode = mode or self._mode
        self._setup(config or {})
        return True

    def _check_ready(self):
        if self._space is None:
            raise RuntimeError("HyperOptSearch has no search space: pass space= or a param_space to the Tuner")
        if self._metric is None or self._mode is None:
            raise RuntimeError("HyperOptSearch needs a metric and a mode: pass them to HyperOptSearch or TuneConfig")

    def _new_doc(self, vals: dict, result: dict | None = None) -> dict:
        """A trial document holding ``vals`` ({label: value}, choices by index)."""
        hpo = _hyperopt()
        tid = self._trials.new_trial_ids(1)[0]
        labels = self._hp_domain.params
        misc = {"tid": tid, "cmd": self._hp_domain.cmd, "workdir": self._hp_domain.workdir,
                "idxs": {k: [tid] if k in vals else [] for k in labels},
                "vals": {k: [vals[k]] if k in vals else [] for k in labels}}
        return self._trials.new_trial_docs([tid], [None], [result or {"status": hpo.STATUS_NEW}], [misc])[0]

    def _encode(self, point: dict) -> dict:
        vals = {}
        for label, value in point.items():
            domain = self._domains.get(label)
            if label not in self._hp_domain.params:
                raise ValueError(f"the key {label} is not in the search space {sorted(self._hp_domain.params)}")
            vals[label] = domain.categories.index(value) if isinstance(domain, Categorical) else value
        return vals

    def suggest(self, trial_id: str):
        self._check_ready()
        hpo = _hyperopt()
        if self._points:
            doc = self._new_doc(self._encode(self._points.pop(0)))
        else:
            new_ids = self._trials.new_trial_ids(1)
            self._trials.refresh()
            algo = functools.partial(hpo.tpe.suggest, n_startup_jobs=self._n_initial_points, gamma=self._gamma,
                                     verbose=False)
            doc = algo(new_ids, self._hp_domain, self._trials, int(self._rng.integers(2**31 - 1)))[0]
        self._trials.insert_trial_docs([doc])
        self._trials.refresh()
        self._live[trial_id] = doc["tid"]
        vals = {k: v[0] for k, v in doc["misc"]["vals"].items() if v}
        config = hpo.space_eval(self._space, vals)
        return unflatten_dict(self._fit(flatten_dict(config))) if self._domains else copy.deepcopy(config)

    def _doc(self, tid: int) -> dict:
        return next(doc for doc in self._trials.trials if doc["tid"] == tid)

    def _loss(self, value) -> float:
        return float(value) if self._mode == "min" else -float(value)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        tid = self._live.pop(trial_id, None)
        if tid is None:
            return
        hpo = _hyperopt()
        doc = self._doc(tid)
        doc["refresh_time"] = hpo.utils.coarse_utcnow()
        value = result.get(self._metric) if result else None
        if error or value is None or not math.isfinite(value):
            doc["state"] = hpo.JOB_STATE_ERROR
            doc["misc"]["error"] = ("TuneError", "the trial failed or reported no finite metric")
        else:
            doc["state"] = hpo.JOB_STATE_DONE
            doc["result"] = {"loss": self._loss(value), "status": hpo.STATUS_OK}
        self._trials.refresh()

    def add_evaluated_point(self, parameters: dict, value, error: bool = False, pruned: bool = False,
                            intermediate_values: list | None = None) -> None:
        self._check_ready()
        hpo = _hyperopt()
        failed = error or pruned or value is None or not math.isfinite(value)
        result = {"status": hpo.STATUS_FAIL} if failed else {"loss": self._loss(value), "status": hpo.STATUS_OK}
        doc = self._new_doc(self._encode(flatten_dict(parameters)), result)
        doc["state"] = hpo.JOB_STATE_ERROR if failed else hpo.JOB_STATE_DONE
        self._trials.insert_trial_docs([doc])
        self._trials.refresh()
