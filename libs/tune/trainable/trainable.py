"""Ray's class API: ``Trainable`` with ``setup``/``step``/``save_checkpoint``/``load_checkpoint``.

A trial of a class runs :class:`ClassRunner` in its actor: it builds the object, restores it from
the trial's checkpoint when resuming, then calls ``step()`` and reports each result (with a
checkpoint every ``checkpoint_frequency`` steps, at the end with ``checkpoint_at_end``, and when
the scheduler pauses the trial).
"""
from __future__ import annotations

import tempfile
import time
from typing import Any

from juno.air import session as air_session
from juno.air.checkpoint import Checkpoint, write_dict
from juno.air.session import TrialStopped


class Trainable:
    """Subclass and override ``setup(config)``, ``step() -> dict``, and for checkpoints
    ``save_checkpoint(checkpoint_dir) -> dict | None`` and ``load_checkpoint(checkpoint)``."""

    def __init__(self, config: dict | None = None, **kwargs: Any) -> None:
        self.config = dict(config or {})
        self._iteration = 0
        self._time_total = 0.0
        self._start = time.time()
        self.setup(dict(self.config), **kwargs)

    # ------------------------------------------------------------------ to override
    def setup(self, config: dict, **kwargs: Any) -> None:
        pass

    def step(self) -> dict:
        raise NotImplementedError(f"{type(self).__name__}.step() must be implemented: do one iteration of "
                                  "training and return its metrics as a dict.")

    def save_checkpoint(self, checkpoint_dir: str) -> dict | None:
        return None

    def load_checkpoint(self, checkpoint: dict | str | None) -> None:
        pass

    def reset_config(self, new_config: dict) -> bool:
        return False

    def cleanup(self) -> None:
        pass

    @classmethod
    def default_resource_request(cls, config: dict) -> Any:
        return None

    # ------------------------------------------------------------------ Ray's driving API
    @property
    def iteration(self) -> int:
        return self._iteration

    training_iteration = iteration

    @property
    def trial_id(self) -> str | None:
        session = air_session.get_session()
        return session.context.get_trial_id() if session else None

    @property
    def trial_name(self) -> str | None:
        session = air_session.get_session()
        return session.context.get_trial_name() if session else None

    @property
    def logdir(self) -> str | None:
        session = air_session.get_session()
        return session.context.get_trial_dir() if session else None

    def train(self) -> dict:
        """One step, with Ray's bookkeeping keys added."""
        started = time.time()
        result = self.step()
        if not isinstance(result, dict):
            raise TypeError(f"{type(self).__name__}.step() must return a dict of metrics, got "
                            f"{type(result).__name__}.")
        self._iteration += 1
        self._time_total += time.time() - started
        return result

    def save(self, checkpoint_dir: str | None = None) -> Checkpoint:
        """Save into a (new temporary) directory: ``save_checkpoint``'s returned dict goes to a file there."""
        directory = checkpoint_dir or tempfile.mkdtemp(prefix="juno_trainable_")
        state = self.save_checkpoint(directory)
        if isinstance(state, dict):
            return Checkpoint(write_dict(directory, state))
        if state is not None and not isinstance(state, str):
            raise TypeError(f"{type(self).__name__}.save_checkpoint() returns None (files written into "
                            f"checkpoint_dir) or a dict, got {type(state).__name__}.")
        return Checkpoint(directory)

    def restore(self, checkpoint: Checkpoint) -> None:
        try:
            state = checkpoint.to_dict()
        except ValueError:
            state = None
        if state is not None:
            self.load_checkpoint(state)
            return
        with checkpoint.as_directory() as directory:
            self.load_checkpoint(directory)

    def stop(self) -> None:
        self.cleanup()


class ClassRunner:
    """Runs a Trainable class as a trial's loop (picklable; built on the driver)."""

    def __init__(self, cls: type, checkpoint_frequency: int = 0, checkpoint_at_end: bool = False) -> None:
        self.cls = cls
        self.checkpoint_frequency = checkpoint_frequency
        self.checkpoint_at_end = checkpoint_at_end
        self.__name__ = cls.__name__

    def __call__(self, config: dict) -> None:
        trainable = self.cls(config)
        checkpoint = air_session.get_checkpoint()
        if checkpoint is not None:
            trainable.restore(checkpoint)
        session = air_session.get_session()
        trainable._iteration = session.iteration if session else 0
        try:
            while True:
                result = trainable.train()
                done = bool(result.get("done"))
                save = (self.checkpoint_frequency and trainable.iteration % self.checkpoint_frequency == 0) or \
                    (done and self.checkpoint_at_end)
                try:
                    air_session.report(result, checkpoint=trainable.save() if save else None)
                except TrialStopped:
                    if session is not None and session.stop_wants_checkpoint:
                        session.final_checkpoint(trainable.save())
                    raise
                if done:
                    return
        finally:
            trainable.stop()
