"""``RLlibCallback``: user code run at points of training (RLlib's new API stack names and keywords).

Subclass it and override the hooks you need; every hook takes keyword arguments only, and an
override should take ``**kwargs`` too (RLlib may pass more keywords in later versions)::

    class CountEpisodes(RLlibCallback):
        def on_episode_end(self, *, episode, metrics_logger, **kwargs):
            metrics_logger.log_value("num_long_episodes", int(len(episode) > 100), reduce="sum")

        def on_train_result(self, *, algorithm, result, **kwargs):
            result["my_key"] = 1          # shows up in what train() returns

    config.callbacks(CountEpisodes)     # or config.callbacks(on_episode_end=fn, on_train_result=[f, g])

The algorithm (in the driver) calls the algorithm hooks; every env runner (in the driver or an actor:
the class travels with the config) makes its own instance and calls the env and episode hooks.
``CallbackSet`` is what the algorithm and the runners hold: the instances of the configured classes,
then the keyword form's functions, called in that order.
"""
from __future__ import annotations

from typing import Any, Callable

# Where each hook runs: the algorithm's (driver) hooks, then the env runners'.
ALGORITHM_HOOKS = ("on_algorithm_init", "on_train_result", "on_evaluate_start", "on_evaluate_end",
                   "on_env_runners_recreated", "on_checkpoint_loaded")
ENV_RUNNER_HOOKS = ("on_environment_created", "on_episode_created", "on_episode_start", "on_episode_step",
                    "on_episode_end", "on_sample_end")
HOOKS = ALGORITHM_HOOKS + ENV_RUNNER_HOOKS
EPISODE_HOOKS = ("on_episode_created", "on_episode_start", "on_episode_step", "on_episode_end")


class RLlibCallback:
    """The hooks, each a no-op here. Keyword arguments, by hook:

    - ``on_algorithm_init(algorithm, metrics_logger)``: the algorithm is built.
    - ``on_train_result(algorithm, metrics_logger, result)``: an iteration's result, before ``train()``
      returns it (keys added to ``result`` are returned).
    - ``on_evaluate_start(algorithm, metrics_logger)`` / ``on_evaluate_end(algorithm, metrics_logger,
      evaluation_metrics)``: around ``evaluate()``.
    - ``on_env_runners_recreated(algorithm, env_runner_group, env_runner_indices, is_evaluation)``: failed
      runners were replaced.
    - ``on_checkpoint_loaded(algorithm)``: ``restore()`` / ``from_checkpoint()`` loaded a checkpoint.
    - ``on_environment_created(env_runner, metrics_logger, env, env_context)``: a runner made an env.
    - ``on_episode_created`` (before the env's reset), ``on_episode_start`` (after it), ``on_episode_step``
      (after each step), ``on_episode_end`` (after the last step): ``episode, env_runner, metrics_logger,
      env, env_index, rl_module``.
    - ``on_sample_end(env_runner, metrics_logger, samples)``: a runner's ``sample()`` is done; ``samples``
      is the time-major batch it returns.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def on_algorithm_init(self, *, algorithm: Any, metrics_logger: Any = None, **kwargs: Any) -> None:
        pass

    def on_train_result(self, *, algorithm: Any, metrics_logger: Any = None, result: dict, **kwargs: Any) -> None:
        pass

    def on_evaluate_start(self, *, algorithm: Any, metrics_logger: Any = None, **kwargs: Any) -> None:
        pass

    def on_evaluate_end(self, *, algorithm: Any, metrics_logger: Any = None, evaluation_metrics: dict,
                        **kwargs: Any) -> None:
        pass

    def on_env_runners_recreated(self, *, algorithm: Any, env_runner_group: Any, env_runner_indices: list,
                                 is_evaluation: bool, **kwargs: Any) -> None:
        pass

    def on_checkpoint_loaded(self, *, algorithm: Any, **kwargs: Any) -> None:
        pass

    def on_environment_created(self, *, env_runner: Any, metrics_logger: Any = None, env: Any, env_context: Any,
                               **kwargs: Any) -> None:
        pass

    def on_episode_created(self, *, episode: Any, env_runner: Any = None, metrics_logger: Any = None,
                           env: Any = None, env_index: int, rl_module: Any = None, **kwargs: Any) -> None:
        pass

    def on_episode_start(self, *, episode: Any, env_runner: Any = None, metrics_logger: Any = None,
                         env: Any = None, env_index: int, rl_module: Any = None, **kwargs: Any) -> None:
        pass

    def on_episode_step(self, *, episode: Any, env_runner: Any = None, metrics_logger: Any = None,
                        env: Any = None, env_index: int, rl_module: Any = None, **kwargs: Any) -> None:
        pass

    def on_episode_end(self, *, episode: Any, env_runner: Any = None, metrics_logger: Any = None,
                       env: Any = None, env_index: int, rl_module: Any = None, **kwargs: Any) -> None:
        pass

    def on_sample_end(self, *, env_runner: Any = None, metrics_logger: Any = None, samples: Any,
                      **kwargs: Any) -> None:
        pass


DefaultCallbacks = RLlibCallback  # the older name, which most tutorials use


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def check_callbacks_class(value: Any) -> list:
    """The configured class(es) as a list; anything else is a ``TypeError`` saying what to pass."""
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    for item in items:
        if isinstance(item, type):
            if not issubclass(item, RLlibCallback):
                raise TypeError(f"config.callbacks({item.__name__}): the class must subclass "
                                "juno.rl.callbacks.RLlibCallback (or its older name DefaultCallbacks).")
        elif isinstance(item, RLlibCallback):
            raise TypeError(f"config.callbacks({_describe(item)}): pass the class, not an instance: each env "
                            f"runner makes its own, e.g. config.callbacks({type(item).__name__}).")
        elif not callable(item):
            raise TypeError(f"config.callbacks({_describe(item)}): give an RLlibCallback subclass (or a list of "
                            "them), or hooks as keywords: config.callbacks(on_episode_end=fn).")
    return items


def check_callback_functions(functions: Any) -> dict[str, list[Callable]]:
    """``{hook: [fn, ...]}``, each hook one of ``HOOKS`` and each entry callable."""
    if not isinstance(functions, dict):
        raise TypeError(f"callbacks_functions must be a dict of hook name to functions, got {_describe(functions)}.")
    out = {}
    for hook, fns in functions.items():
        if hook not in HOOKS:
            raise TypeError(f"config.callbacks({hook}=...): no such hook; the hooks are: {', '.join(HOOKS)}.")
        fns = list(fns) if isinstance(fns, (list, tuple)) else [fns]
        for fn in fns:
            if not callable(fn):
                raise TypeError(f"config.callbacks({hook}={_describe(fn)}): give a function (or a list of "
                                f"functions) taking the hook's keywords, e.g. def {hook}(**kwargs): ...")
        out[hook] = fns
    return out


def _overrides(obj: Any, hook: str) -> bool:
    method = getattr(type(obj), hook, None)
    return method is not None and method is not getattr(RLlibCallback, hook)


class CallbackSet:
    """The instances of the configured classes and the keyword form's functions, called hook by hook."""

    def __init__(self, callbacks_class: Any = RLlibCallback, functions: dict | None = None) -> None:
        self.objects = []
        for item in check_callbacks_class(callbacks_class):
            obj = item()
            if not isinstance(obj, RLlibCallback):
                raise TypeError(f"config.callbacks({_describe(item)}) made a {type(obj).__name__}, not an "
                                "RLlibCallback: a factory must return an instance of an RLlibCallback subclass.")
            self.objects.append(obj)
        self.functions = check_callback_functions(functions or {})

    @classmethod
    def from_config(cls, config: Any) -> "CallbackSet":
        return cls(getattr(config, "callbacks_class", RLlibCallback), getattr(config, "callbacks_functions", {}))

    def has(self, *hooks: str) -> bool:
        """Whether any of these hooks does something (so a runner can skip the work of feeding them)."""
        return any(self.functions.get(h) or any(_overrides(o, h) for o in self.objects) for h in hooks)

    def __call__(self, hook: str, **kwargs: Any) -> None:
        for obj in self.objects:
            if _overrides(obj, hook):
                getattr(obj, hook)(**kwargs)
        for fn in self.functions.get(hook, ()):
            fn(**kwargs)


def make_multi_callbacks(callback_class_list: list) -> type:
    """The older way to combine callbacks classes: one class whose hooks call each class's in turn
    (``config.callbacks([A, B])`` does the same)."""
    classes = check_callbacks_class(list(callback_class_list))

    class MultiCallbacks(RLlibCallback):
        def __init__(self) -> None:
            self._set = CallbackSet(classes)

    for hook in HOOKS:
        setattr(MultiCallbacks, hook, lambda self, _hook=hook, **kwargs: self._set(_hook, **kwargs))
    return MultiCallbacks
