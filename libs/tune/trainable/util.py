"""What a trainable asks for: ``with_parameters`` (large objects put once), ``with_resources`` and
``PlacementGroupFactory`` (what each trial holds), and the resources a trial of a trainable needs."""
from __future__ import annotations

import functools
from typing import Any, Callable

import juno

DEFAULT_RESOURCES = {"CPU": 1.0}


class PlacementGroupFactory:
    """A trial's bundles (Ray's): the first for the trial's own actor, the rest for what it starts."""

    def __init__(self, bundles: list[dict], strategy: str = "PACK", *args: Any, **kwargs: Any) -> None:
        if not bundles or not all(isinstance(b, dict) for b in bundles):
            raise ValueError(f"PlacementGroupFactory needs a non-empty list of resource dicts, got {bundles!r}.")
        self.bundles = [{k: float(v) for k, v in b.items() if v} for b in bundles]
        self.strategy = strategy

    @property
    def head_bundle_is_empty(self) -> bool:
        return not self.bundles[0]

    @property
    def required_resources(self) -> dict[str, float]:
        total: dict[str, float] = {}
        for bundle in self.bundles:
            for k, v in bundle.items():
                total[k] = total.get(k, 0.0) + v
        return total

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PlacementGroupFactory) and (other.bundles, other.strategy) == (self.bundles,
                                                                                              self.strategy)

    def __repr__(self) -> str:
        return f"PlacementGroupFactory({self.bundles}, strategy={self.strategy!r})"


def _normalise(resources: Any) -> PlacementGroupFactory:
    """Ray's forms: a dict with lower- or upper-case names (``{"cpu": 2, "gpu": 1}``), a PGF, or None."""
    if resources is None:
        return PlacementGroupFactory([dict(DEFAULT_RESOURCES)])
    if isinstance(resources, PlacementGroupFactory):
        return resources
    if isinstance(resources, dict):
        names = {"cpu": "CPU", "gpu": "GPU", "memory": "memory"}
        bundle = {}
        for key, value in resources.items():
            if key in ("custom_resources", "extra_custom_resources") and isinstance(value, dict):
                bundle.update(value)
            elif isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
                bundle[names.get(key, key)] = float(value)
            else:
                raise ValueError(f"Trial resources {resources!r}: {key!r} must be a non-negative number.")
        return PlacementGroupFactory([bundle])
    raise TypeError(f"Trial resources must be a dict (e.g. {{'cpu': 2, 'gpu': 0}}) or a PlacementGroupFactory, "
                    f"got {type(resources).__name__}.")


def with_resources(trainable: Any, resources: Any) -> Any:
    """The trainable with each trial holding ``resources`` (a dict, a PlacementGroupFactory, or a function
    of the trial's config returning one)."""
    if not callable(resources):
        _normalise(resources)  # fail here on bad input
    if isinstance(trainable, type):
        return type(trainable.__name__, (trainable,), {"_juno_resources": staticmethod(lambda config: resources)
                                                        if not callable(resources) else staticmethod(resources)})

    @functools.wraps(trainable)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        return trainable(*args, **kwargs)

    wrapped._juno_resources = resources if callable(resources) else (lambda config: resources)
    return wrapped


def trial_resources(trainable: Any, config: dict) -> PlacementGroupFactory:
    """What a trial of ``trainable`` with ``config`` holds."""
    chosen = getattr(trainable, "_juno_resources", None)
    if chosen is not None:
        return _normalise(chosen(config))
    request = getattr(trainable, "default_resource_request", None)
    if request is not None:
        requested = request(config)
        if requested is not None:
            return _normalise(requested)
    return _normalise(None)


class _WithParameters:
    """A function trainable whose large arguments were put in the object store once."""

    def __init__(self, trainable: Callable, refs: dict) -> None:
        self.trainable, self.refs = trainable, refs
        self.__name__ = getattr(trainable, "__name__", "trainable")
        resources = getattr(trainable, "_juno_resources", None)
        if resources is not None:
            self._juno_resources = resources

    def __call__(self, config: dict) -> Any:
        return self.trainable(config, **{name: juno.get(ref) for name, ref in self.refs.items()})


def with_parameters(trainable: Any, **kwargs: Any) -> Any:
    """Pass large objects to every trial without pickling them into each: they are put once, and each
    trial gets them as keyword arguments (``fn(config, data=...)``, or ``setup(config, data=...)``)."""
    juno.init(ignore_reinit_error=True) if not juno.is_initialized() else None
    refs = {name: juno.put(value) for name, value in kwargs.items()}
    if isinstance(trainable, type):
        base_setup = trainable.setup

        def setup(self: Any, config: dict, **_: Any) -> Any:
            return base_setup(self, config, **{name: juno.get(ref) for name, ref in refs.items()})

        return type(trainable.__name__, (trainable,), {"setup": setup})
    if not callable(trainable):
        raise TypeError(f"tune.with_parameters takes a function or a Trainable class, got {type(trainable).__name__}.")
    return _WithParameters(trainable, refs)
