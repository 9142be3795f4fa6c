"""The Searcher interface (Ray Tune's): something that suggests configs and learns from results.

A Searcher is pure: the controller calls ``suggest(trial_id)`` when it may start a trial and
feeds back ``on_trial_result`` / ``on_trial_complete``; nothing here starts processes. Subclass it
for a custom search algorithm, as in Ray.
"""
from __future__ import annotations

import os
import pickle

__all__ = ["Searcher", "check_mode"]

_MODES = ("min", "max")


def check_mode(mode, what: str = "mode"):
    """ValueError naming a mode that is neither "min" nor "max" (None passes: not set yet)."""
    modes = mode if isinstance(mode, (list, tuple)) else [mode]
    for m in modes:
        if m is not None and m not in _MODES:
            raise ValueError(f"{what} must be 'min' or 'max', got {m!r}")
    return mode


class StateFiles:
    """Saving and loading ``get_state()`` as a file (Ray's ``save``/``restore``/``save_to_dir``), shared by
    searchers and search algorithms."""

    CKPT_FILE_TMPL = "state-{}.pkl"

    def get_state(self) -> dict:
        raise NotImplementedError

    def set_state(self, state: dict) -> None:
        raise NotImplementedError

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.get_state(), f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.set_state(pickle.load(f))

    def save_to_dir(self, checkpoint_dir: str, session_str: str = "default") -> None:
        self.save(os.path.join(checkpoint_dir, self.CKPT_FILE_TMPL.format(session_str)))

    def restore_from_dir(self, checkpoint_dir: str) -> None:
        path = _state_file(checkpoint_dir, self.CKPT_FILE_TMPL)
        if path is None:
            raise FileNotFoundError(f"no saved search state ({self.CKPT_FILE_TMPL.format('*')}) in {checkpoint_dir}")
        self.restore(path)

    def has_checkpoint(self, checkpoint_dir: str) -> bool:
        return _state_file(checkpoint_dir, self.CKPT_FILE_TMPL) is not None


class Searcher(StateFiles):
    """Suggests trial configs; subclasses implement ``suggest`` and ``on_trial_complete``.

    ``suggest`` returns a config dict, None (nothing now: ask again later) or ``Searcher.FINISHED``
    (the search is over).
    """

    FINISHED = "FINISHED"
    CKPT_FILE_TMPL = "searcher-state-{}.pkl"

    def __init__(self, metric: str | None = None, mode: str | None = None):
        check_mode(mode)
        if isinstance(metric, (list, tuple)) != isinstance(mode, (list, tuple)) and metric and mode:
            raise ValueError(f"metric and mode must both be single values or both lists, got metric={metric!r}, "
                             f"mode={mode!r}")
        self._metric = metric
        self._mode = mode

    @property
    def metric(self):
        return self._metric

    @property
    def mode(self):
        return self._mode

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec) -> bool:
        """Take the Tuner's metric, mode and param_space; False when this searcher keeps its own
        (it was built with a search space), as in Ray."""
        return False

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        """True when the searcher limits concurrency itself; else the Tuner wraps it in a
        ConcurrencyLimiter."""
        return False

    def suggest(self, trial_id: str) -> dict | None | str:
        raise NotImplementedError(f"{type(self).__name__} must implement suggest(trial_id)")

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """An intermediate result; most searchers ignore it."""

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement on_trial_complete(trial_id, result, error)")

    def add_evaluated_point(self, parameters: dict, value: float, error: bool = False, pruned: bool = False,
                            intermediate_values: list | None = None) -> None:
        """Tell the searcher about a config evaluated elsewhere (warm start)."""
        raise NotImplementedError(f"{type(self).__name__} does not take evaluated points")

    def get_state(self) -> dict:
        """What ``save`` writes: by default every attribute (it must pickle)."""
        return dict(self.__dict__)

    def set_state(self, state: dict) -> None:
        self.__dict__.update(state)


def _state_file(checkpoint_dir: str, template: str) -> str | None:
    """The newest state file in ``checkpoint_dir`` named by ``template``."""
    prefix, suffix = template.split("{}")
    try:
        names = [n for n in os.listdir(checkpoint_dir) if n.startswith(prefix) and n.endswith(suffix)]
    except FileNotFoundError:
        return None
    if not names:
        return None
    return max((os.path.join(checkpoint_dir, n) for n in names), key=os.path.getmtime)
