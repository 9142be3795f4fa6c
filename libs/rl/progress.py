"""An Algorithm's live view of training, reported through ``juno.util.progress`` (kind "rl").

The Algorithm's only way to show its training: ``RLProgress`` turns RLlib's result dicts into one
progress run, which ``juno.widgets.rl_view`` draws (the episode return's mean/min/max over
iterations, env steps/s, iteration time, the key settings: a widget in a notebook, static HTML in a
saved one) and the dashboard lists. A terminal gets one compact line per iteration, never the nested
result dict (RLlib's known flood).

When a view opens and ends: one view per Algorithm object, opened by its first ``train()``, updated
by every ``train()``, ended finished by ``stop()`` or failed by an exception out of ``train()``. An
interrupted ``train()`` (KeyboardInterrupt) does not end it: the algorithm is still usable, and the
next ``train()`` goes on in the same view. A view idle for a long time stays open (notebook users
call ``train()`` in later cells); in a notebook, ``train()`` in a later cell shows the same live view
in that cell too. Inside a Tune trial the view is off (Tune shows its table); the run is still
published for the dashboard. Showing training must never break it: every method logs what goes
wrong and carries on.

The decisions are a plain class, ``IterationLog`` (what each result becomes: fields, chart points,
steps per second), tested without a cluster.
"""
from __future__ import annotations

import functools
import logging
import math
import sys
import threading
from typing import Any, Callable, Mapping

from juno.train.progress import error_text, is_loss, scalar
from juno.util import progress
from juno.widgets import rl_view as view

logger = logging.getLogger("juno.rl")

KIND = "rl"
LEARNER_VALUES = 3   # loss-like learner values shown as fields (the first is charted)
SETTING_CHARS = 40   # a setting's text
# AlgorithmConfig attribute -> the label shown, in the order shown (the ones a config has).
SETTINGS = (("env", "env"), ("num_env_runners", "env runners"), ("num_envs_per_env_runner", "envs per runner"),
            ("rollout_fragment_length", "fragment"), ("lr", "lr"), ("gamma", "gamma"),
            ("train_batch_size_per_learner", "train batch"), ("train_batch_size", "train batch"),
            ("minibatch_size", "minibatch"), ("num_epochs", "epochs"), ("num_learners", "learners"),
            ("num_gpus_per_learner", "gpus per learner"), ("seed", "seed"))
INTERRUPTED_NOTE = "interrupted during iteration {n}: train() goes on from here; save() and evaluate() work"


def _finite(value: Any) -> float | None:
    value = scalar(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _get(result: Mapping[str, Any], *paths: str) -> Any:
    """The first of these slash paths that the result has (the current key, then Ray's older one)."""
    for path in paths:
        node: Any = result
        for key in path.split("/"):
            if not isinstance(node, Mapping) or key not in node:
                break
            node = node[key]
        else:
            return node
    return None


def _setting(value: Any) -> Any:
    """A setting as shown: numbers and short text as they are, a class or function by its name."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return value if len(value) <= SETTING_CHARS else value[:SETTING_CHARS - 1] + "…"
    name = getattr(value, "__name__", None)
    if isinstance(name, str):
        return name
    return _setting(repr(value))


def summarize_config(config: Any) -> dict[str, Any]:
    """An AlgorithmConfig (or its ``to_dict()``) as the few settings a view shows: env, runners, lr,
    batch sizes, epochs, learners, seed; what the config lacks or leaves unset (None) is left out."""
    def get(name: str) -> Any:
        if isinstance(config, Mapping):
            return config.get(name)
        return getattr(config, name, None)

    out: dict[str, Any] = {}
    for attr, label in SETTINGS:
        value = get(attr)
        if label in out or value is None or type(value).__name__ == "_NotProvided":
            continue
        out[label] = _setting(value)
    return out


class IterationLog:
    """What each result dict becomes: the latest numbers as fields, the chart points, the speed.

    Reads RLlib's current keys (``env_runners/episode_return_mean``, ``num_env_steps_sampled_lifetime``,
    ``learners/default_policy``) and falls back to the older ones (``episode_reward_mean``,
    ``timesteps_total``, ``info/learner/default_policy/learner_stats``). Env steps per second are the
    steps sampled since the previous result over the iteration's time."""

    def __init__(self) -> None:
        self.iteration = 0
        self.env_steps: float | None = None  # sampled, lifetime
        self.loss_charted: str | None = None

    def take(self, result: Mapping[str, Any]) -> tuple[dict[str, Any], list[tuple[str, float]]]:
        """One result: (fields to set, [(series, y)] to chart at x = ``self.iteration``)."""
        if not isinstance(result, Mapping):
            raise TypeError(f"a result must be a dict, got {type(result).__name__}")
        iteration = _finite(_get(result, "training_iteration"))
        self.iteration = int(iteration) if iteration is not None else self.iteration + 1
        fields: dict[str, Any] = {}
        points: list[tuple[str, float]] = []
        for name, paths in ((view.RETURN_MEAN, ("env_runners/episode_return_mean", "episode_reward_mean")),
                            (view.RETURN_MIN, ("env_runners/episode_return_min", "episode_reward_min")),
                            (view.RETURN_MAX, ("env_runners/episode_return_max", "episode_reward_max")),
                            (view.EVAL_RETURN, ("evaluation/env_runners/episode_return_mean",
                                                "evaluation/episode_reward_mean"))):
            value = _finite(_get(result, *paths))
            if value is not None:
                fields[name] = value
                points.append((name, value))
            elif name == view.RETURN_MEAN:
                fields[name] = view.NO_EPISODE  # none ended yet: shown as such, never charted
        for name, paths in ((view.EPISODES, ("env_runners/num_episodes", "episodes_this_iter")),
                            (view.EPISODE_LEN, ("env_runners/episode_len_mean", "episode_len_mean"))):
            value = _finite(_get(result, *paths))
            if value is not None:
                fields[name] = value
        steps = _finite(_get(result, "num_env_steps_sampled_lifetime", "timesteps_total"))
        seconds = _finite(_get(result, "time_this_iter_s"))
        if steps is not None:
            fields[view.ENV_STEPS] = int(steps)
            sampled = steps - (self.env_steps or 0.0)
            self.env_steps = steps
            if seconds and sampled >= 0:
                fields[view.STEPS_PER_S] = round(sampled / seconds, 1)
                points.append((view.STEPS_PER_S, fields[view.STEPS_PER_S]))
        if seconds is not None:
            fields[view.ITERATION_S] = round(seconds, 3)
            points.append((view.ITERATION_S, fields[view.ITERATION_S]))
        learner = _get(result, "learners/default_policy", "info/learner/default_policy/learner_stats")
        if isinstance(learner, Mapping):
            losses = [(k, _finite(v)) for k, v in learner.items() if isinstance(k, str) and is_loss(k)]
            losses = sorted([(k, v) for k, v in losses if v is not None], key=lambda kv: kv[0] != "total_loss")
            for name, value in losses[:LEARNER_VALUES]:
                fields[view.LEARNER + name] = value
            if self.loss_charted is None and losses:
                self.loss_charted = view.LEARNER + losses[0][0]
            if self.loss_charted in fields:
                points.append((self.loss_charted, fields[self.loss_charted]))
        return fields, points


def _never_raises(method: Callable) -> Callable:
    @functools.wraps(method)
    def wrapper(self: "RLProgress", *args: Any, **kwargs: Any) -> None:
        try:
            with self._lock:
                method(self, *args, **kwargs)
        except Exception:  # noqa: BLE001 - showing training never breaks it
            logger.warning("the RL training view could not show %s()", method.__name__, exc_info=True)
    return wrapper


def in_tune_trial() -> bool:
    """True inside a Tune trial (or a Train worker): an AIR session is active, and Tune shows its table."""
    from juno.air import session

    return session.get_session() is not None


class RLProgress:
    """One Algorithm's view of training; the Algorithm calls it as it trains::

        view = RLProgress("PPO", summarize_config(config))   # opens nothing yet
        view.begin()                 # train() starts: opens the view (first time), shows it in this cell
        view.on_result(result)       # train() returned RLlib's result dict
        view.fail(error)             # train() raised (a KeyboardInterrupt only notes it: see interrupted())
        view.interrupted()           # train() was interrupted: the view stays open for the next train()
        view.finish()                # stop(): the view ends finished

    ``display`` False keeps it off the screen (None: off inside a Tune trial, else the process-wide
    switch ``juno.util.progress.set_display_enabled``); in a kernel the widget is shown, in a terminal
    one line per iteration is printed on ``stream`` (stderr) and one summary line at the end.
    """

    def __init__(self, algo_name: str, config_summary: Mapping[str, Any] | None = None, *,
                 display: bool | None = None, stream: Any = None):
        if not isinstance(algo_name, str) or not algo_name:
            raise ValueError(f"RLProgress needs the algorithm's name (a non-empty str), got {algo_name!r}")
        if config_summary is not None and not isinstance(config_summary, Mapping):
            raise TypeError(f"config_summary must be a dict of setting -> value, got {type(config_summary).__name__}")
        if display is not None and not isinstance(display, bool):
            raise TypeError(f"display must be True, False or None, got {display!r}")
        self.algo_name = algo_name
        self.settings = {str(k): _setting(v) for k, v in (config_summary or {}).items() if v is not None}
        self._display = display
        self._stream = stream
        self._lock = threading.RLock()
        self.log = IterationLog()
        self.run: progress.ProgressRun | None = None
        self._terminal = False

    @property
    def title(self) -> str:
        env = self.settings.get("env")
        return f"{self.algo_name} on {env}" if env else self.algo_name

    @property
    def ended(self) -> bool:
        return self.run is not None and self.run.snapshot().ended

    # ------------------------------------------------------------------ the Algorithm's calls
    @_never_raises
    def begin(self) -> None:
        """A ``train()`` starts: the first opens the view; one in a later notebook cell shows it there too."""
        if self.run is None:
            self._open()
            return
        if not self.run.snapshot().ended:
            if self.run.snapshot().fields.get(view.NOTE):
                self.run.set_fields(**{view.NOTE: None})
            from juno.widgets.run_view import show_in_this_cell

            show_in_this_cell(self.run.run_id)

    @_never_raises
    def on_result(self, result: Mapping[str, Any]) -> None:
        """``train()`` returned ``result`` (RLlib's dict): chart it, set the fields, print the line."""
        if self.run is None:
            self._open()
        fields, points = self.log.take(result)
        for name, y in points:
            self.run.add_point(name, self.log.iteration, y)
        self.run.set_fields(**fields)
        self.run.update(done=self.log.iteration)
        self._print(view.iteration_line(self.run.snapshot()))

    @_never_raises
    def interrupted(self) -> None:
        """``train()`` was interrupted (the cell's stop button, Ctrl-C): say so, keep the view open."""
        if self.run is None or self.run.snapshot().ended:
            return
        self.run.set_fields(**{view.NOTE: INTERRUPTED_NOTE.format(n=self.log.iteration + 1)})
        self._print(view.iteration_line(self.run.snapshot()))

    @_never_raises
    def fail(self, error: Any) -> None:
        """``train()`` raised ``error``: the view ends failed with its first lines. A KeyboardInterrupt
        is not a failure: see ``interrupted``."""
        if isinstance(error, KeyboardInterrupt):
            self.interrupted()
            return
        if self.run is None:
            self._open()
        if self.run.snapshot().ended:
            return
        self.run.fail(error_text(error))
        self._print(view.summary_line(self.run.snapshot()))

    @_never_raises
    def finish(self) -> None:
        """``stop()``: the view ends finished (a view never opened stays unopened)."""
        if self.run is None or self.run.snapshot().ended:
            return
        self.run.set_fields(**{view.NOTE: None})
        self.run.finish()
        self._print(view.summary_line(self.run.snapshot()))

    # ------------------------------------------------------------------ inside
    def _open(self) -> None:
        from juno.widgets.live import kernel_shell

        if self._display is not None:
            shown = self._display
        else:
            shown = progress.display_enabled() and not in_tune_trial()
        in_kernel = kernel_shell() is not None
        self._terminal = shown and not in_kernel  # a terminal's lines are printed here, one per iteration
        self.run = progress.open(KIND, self.title, display=shown and in_kernel, unit="iterations")
        self.run.set_fields(**self.settings)

    def _print(self, line: str) -> None:
        if self._terminal:
            print(line, file=self._stream or sys.stderr, flush=True)

    def snapshot(self) -> progress.RunSnapshot | None:
        return self.run.snapshot() if self.run is not None else None

    def __repr__(self) -> str:
        return f"RLProgress({self.run!r})" if self.run is not None else f"RLProgress({self.title!r}, not opened)"


__all__ = ["RLProgress", "IterationLog", "summarize_config", "in_tune_trial", "KIND"]
