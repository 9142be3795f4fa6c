"""``AlgorithmConfig``: RLlib's builder of an algorithm's settings.

Each builder method (``environment``, ``training``, ``env_runners`` ...) sets the fields it was given and
returns the config, so calls chain. Algorithm configs subclass it, set ``algo_class`` and their own
defaults in ``__init__``, and add their ``training(...)`` keywords by overriding ``training`` and passing
the rest to ``super().training(**kwargs)``. ``validate()`` runs when the algorithm is built and names the
field and what is allowed.
"""
from __future__ import annotations

import copy
import inspect
import warnings
from typing import Any

from juno.rl.callbacks.callbacks import HOOKS, RLlibCallback, check_callback_functions, check_callbacks_class
from juno.rl.utils.sentinel import NotProvided

# The model settings RLlib's older ``model={...}`` dict takes; the module catalog reads them.
MODEL_DEFAULTS: dict[str, Any] = {
    "fcnet_hiddens": [256, 256],
    "fcnet_activation": "tanh",
    "vf_share_layers": False,
    "free_log_std": False,
    "post_fcnet_hiddens": [],
    "post_fcnet_activation": "relu",
}

# Older names: (builder, old keyword) -> new field; each maps with a DeprecationWarning.
_RENAMED = {
    "num_rollout_workers": "num_env_runners",
    "num_workers": "num_env_runners",
    "num_envs_per_worker": "num_envs_per_env_runner",
    "sgd_minibatch_size": "minibatch_size",
    "num_sgd_iter": "num_epochs",
    "recreate_failed_workers": "restart_failed_env_runners",
    "recreate_failed_env_runners": "restart_failed_env_runners",
    "ignore_worker_failures": "ignore_env_runner_failures",
    "evaluation_num_workers": "evaluation_num_env_runners",
    "num_cpus_per_worker": "num_cpus_per_env_runner",
    "num_gpus_per_worker": "num_gpus_per_env_runner",
    "num_learner_workers": "num_learners",
    "num_gpus_per_learner_worker": "num_gpus_per_learner",
}
# RLlib keywords accepted for ported code that change nothing in Juno.
_ACCEPTED_DEBUGGING = ("logger_creator", "logger_config", "log_sys_usage", "fake_sampler")
_ACCEPTED_REPORTING = ("metrics_episode_collection_timeout_s", "log_gradients")
# Keys of to_dict() that are Python keywords as attributes (``lambda`` is ``lambda_``).
_DICT_ALIASES = {"lambda": "lambda_", "callbacks": "callbacks_class"}


def _unknown(method: str, unknown: dict, known: list[str]) -> None:
    if unknown:
        names = ", ".join(repr(k) for k in unknown)
        raise TypeError(f"{method}() got unknown keyword argument(s) {names}; it takes: {', '.join(sorted(known))}.")


def _renamed(method: str, kwargs: dict) -> dict:
    """Map older keyword names to the current fields, warning once per use."""
    out = {}
    for key, value in kwargs.items():
        new = _RENAMED.get(key)
        if new is not None:
            warnings.warn(f"{method}({key}=...) is deprecated: use {new}=... (RLlib's current name).",
                          DeprecationWarning, stacklevel=3)
            out[new] = value
        else:
            out[key] = value
    return out


class AlgorithmConfig:
    """The settings of an algorithm. ``PPOConfig().environment("CartPole-v1").training(lr=1e-3).build()``."""

    algo_class: type | None = None

    def __init__(self, algo_class: type | None = None) -> None:
        if algo_class is not None:
            self.algo_class = algo_class
        # environment
        self.env: Any = None
        self.env_config: dict = {}
        self.observation_space = None
        self.action_space = None
        self.clip_actions = False
        self.normalize_actions = True
        self.disable_env_checking = False
        # framework
        self.framework_str = "torch"
        # training
        self.gamma = 0.99
        self.lr = 0.001
        self.train_batch_size = 4000
        self.train_batch_size_per_learner: int | None = None
        self.minibatch_size: int | None = None
        self.num_epochs = 1
        self.grad_clip: float | None = None
        self.grad_clip_by = "global_norm"
        self.model: dict = dict(MODEL_DEFAULTS)
        self.optimizer: dict = {}
        self._model_config: dict = {}
        # env runners
        self.num_env_runners = 0
        self.num_envs_per_env_runner = 1
        self.num_cpus_per_env_runner: float = 1
        self.num_gpus_per_env_runner: float = 0
        self.rollout_fragment_length: int | str = 200
        self.batch_mode = "truncate_episodes"
        self.explore = True
        self.sample_timeout_s = 60.0
        # resources and learners
        self.num_gpus: float = 0
        self.num_learners = 0
        self.num_gpus_per_learner: float = 0
        self.num_cpus_per_learner: float = 1
        # evaluation
        self.evaluation_interval: int | None = None
        self.evaluation_duration: int | str = 10
        self.evaluation_duration_unit = "episodes"
        self.evaluation_num_env_runners = 0
        self.evaluation_config: dict | None = None
        self.evaluation_parallel_to_training = False
        # debugging, reporting, fault tolerance
        self.seed: int | None = None
        self.log_level = "WARN"
        self.metrics_num_episodes_for_smoothing = 100
        self.min_sample_timesteps_per_iteration = 0
        self.min_train_timesteps_per_iteration = 0
        self.min_time_s_per_iteration: float | None = None
        self.keep_per_episode_custom_metrics = False
        self.restart_failed_env_runners = True
        self.max_num_env_runner_restarts = 1000
        self.ignore_env_runner_failures = False
        self.env_runner_restore_timeout_s = 60.0
        # callbacks: a class (or a list of them) and the keyword form's functions by hook
        self.callbacks_class: Any = RLlibCallback
        self.callbacks_functions: dict = {}
        # api stack (accepted; Juno has one stack)
        self.enable_rl_module_and_learner = True
        self.enable_env_runner_and_connector_v2 = True

    # ------------------------------------------------------------------ builder methods
    def _apply(self, method: str, given: dict) -> "AlgorithmConfig":
        for key, value in given.items():
            if value is not NotProvided:
                setattr(self, key, value)
        return self

    def environment(self, env: Any = NotProvided, *, env_config: dict = NotProvided, observation_space: Any = NotProvided,
                    action_space: Any = NotProvided, clip_actions: bool = NotProvided,
                    normalize_actions: bool = NotProvided, disable_env_checking: bool = NotProvided,
                    **unknown: Any) -> "AlgorithmConfig":
        """The env: a gymnasium id, a name given to ``tune.register_env``, a ``gymnasium.Env`` class
        (called with ``env_config``) or a creator function ``creator(env_config) -> env``."""
        _unknown("environment", unknown, list(inspect.signature(AlgorithmConfig.environment).parameters)[1:-1])
        if env_config is not NotProvided and env_config is not None and not isinstance(env_config, dict):
            raise TypeError(f"environment(env_config=...) must be a dict, got {type(env_config).__name__}.")
        return self._apply("environment", dict(env=env, env_config=dict(env_config or {}) if env_config is not
                                               NotProvided else NotProvided, observation_space=observation_space,
                                               action_space=action_space, clip_actions=clip_actions,
                                               normalize_actions=normalize_actions,
                                               disable_env_checking=disable_env_checking))

    def framework(self, framework: str = NotProvided, **_ignored: Any) -> "AlgorithmConfig":
        """Only ``"torch"``: Juno's modules and learners are torch modules."""
        if framework is not NotProvided:
            if framework != "torch":
                raise ValueError(f"framework({framework!r}): Juno RL supports only 'torch'.")
            self.framework_str = framework
        return self

    def api_stack(self, enable_rl_module_and_learner: bool = NotProvided,
                  enable_env_runner_and_connector_v2: bool = NotProvided) -> "AlgorithmConfig":
        """Accepted for RLlib code; Juno has one stack (RLModules, Learners, EnvRunners) either way."""
        return self._apply("api_stack", dict(enable_rl_module_and_learner=enable_rl_module_and_learner,
                                             enable_env_runner_and_connector_v2=enable_env_runner_and_connector_v2))

    def _training_keywords(self) -> list[str]:
        """Every keyword the ``training`` methods of this config's classes take."""
        names: set[str] = set()
        for klass in type(self).__mro__:
            method = klass.__dict__.get("training")
            if method is not None:
                names.update(p.name for p in inspect.signature(method).parameters.values()
                             if p.kind is p.KEYWORD_ONLY)
        return sorted(names | {"sgd_minibatch_size", "num_sgd_iter"})

    def training(self, *, gamma: float = NotProvided, lr: float = NotProvided, train_batch_size: int = NotProvided,
                 train_batch_size_per_learner: int = NotProvided, minibatch_size: int = NotProvided,
                 num_epochs: int = NotProvided, grad_clip: float = NotProvided, grad_clip_by: str = NotProvided,
                 model: dict = NotProvided, optimizer: dict = NotProvided, **kwargs: Any) -> "AlgorithmConfig":
        """The learning settings every algorithm shares; algorithm configs add their own keywords."""
        kwargs = _renamed("training", kwargs)
        for key in ("minibatch_size", "num_epochs"):
            if key in kwargs:
                value = kwargs.pop(key)
                minibatch_size = value if key == "minibatch_size" else minibatch_size
                num_epochs = value if key == "num_epochs" else num_epochs
        _unknown("training", kwargs, self._training_keywords())
        if model is not NotProvided:
            if not isinstance(model, dict):
                raise TypeError(f"training(model=...) must be a dict such as {{'fcnet_hiddens': [64, 64]}}, "
                                f"got {type(model).__name__}.")
            model = {**self.model, **model}
        return self._apply("training", dict(
            gamma=gamma, lr=lr, train_batch_size=train_batch_size,
            train_batch_size_per_learner=train_batch_size_per_learner, minibatch_size=minibatch_size,
            num_epochs=num_epochs, grad_clip=grad_clip, grad_clip_by=grad_clip_by, model=model, optimizer=optimizer))

    def rl_module(self, *, model_config: Any = NotProvided, rl_module_spec: Any = NotProvided,
                  model_config_dict: dict = NotProvided) -> "AlgorithmConfig":
        """The new stack's model settings (``fcnet_hiddens``, ``fcnet_activation``, ...), merged over
        ``training(model=...)``. A dataclass such as RLlib's DefaultModelConfig is read field by field."""
        given = model_config if model_config is not NotProvided else model_config_dict
        if given is not NotProvided and given is not None:
            if not isinstance(given, dict):
                if hasattr(given, "__dataclass_fields__"):
                    given = {k: getattr(given, k) for k in given.__dataclass_fields__}
                else:
                    raise TypeError(f"rl_module(model_config=...) must be a dict, got {type(given).__name__}.")
            self._model_config = {**self._model_config, **given}
        return self

    @property
    def model_config(self) -> dict:
        """The module's settings: the defaults, ``training(model=...)``, then ``rl_module(model_config=...)``."""
        return {**MODEL_DEFAULTS, **self.model, **self._model_config}

    def env_runners(self, *, num_env_runners: int = NotProvided, num_envs_per_env_runner: int = NotProvided,
                    num_cpus_per_env_runner: float = NotProvided, num_gpus_per_env_runner: float = NotProvided,
                    rollout_fragment_length: int | str = NotProvided, batch_mode: str = NotProvided,
                    explore: bool = NotProvided, sample_timeout_s: float = NotProvided,
                    **kwargs: Any) -> "AlgorithmConfig":
        """How many env runner actors (0: sample in the driver), envs per runner, steps per fragment."""
        kwargs = _renamed("env_runners", kwargs)
        known = list(inspect.signature(AlgorithmConfig.env_runners).parameters)[1:-1]
        given = {k: kwargs.pop(k) for k in list(kwargs) if k in known}
        _unknown("env_runners", kwargs, known)
        self._apply("env_runners", given)
        return self._apply("env_runners", dict(
            num_env_runners=num_env_runners, num_envs_per_env_runner=num_envs_per_env_runner,
            num_cpus_per_env_runner=num_cpus_per_env_runner, num_gpus_per_env_runner=num_gpus_per_env_runner,
            rollout_fragment_length=rollout_fragment_length, batch_mode=batch_mode, explore=explore,
            sample_timeout_s=sample_timeout_s))

    def rollouts(self, **kwargs: Any) -> "AlgorithmConfig":
        """The older name of ``env_runners`` (``num_rollout_workers``, ``num_envs_per_worker``)."""
        warnings.warn("rollouts() is deprecated: use env_runners() (RLlib's current name).", DeprecationWarning,
                      stacklevel=2)
        return self.env_runners(**kwargs)

    def resources(self, *, num_gpus: float = NotProvided, num_cpus_per_worker: float = NotProvided,
                  num_gpus_per_worker: float = NotProvided, num_cpus_for_main_process: float = NotProvided,
                  **unknown: Any) -> "AlgorithmConfig":
        """``num_gpus``: GPUs for the learner in the driver (the older form of ``num_gpus_per_learner``)."""
        _unknown("resources", unknown, ["num_gpus", "num_cpus_per_worker", "num_gpus_per_worker",
                                        "num_cpus_for_main_process"])
        return self._apply("resources", dict(num_gpus=num_gpus, num_cpus_per_env_runner=num_cpus_per_worker,
                                             num_gpus_per_env_runner=num_gpus_per_worker))

    def learners(self, *, num_learners: int = NotProvided, num_gpus_per_learner: float = NotProvided,
                 num_cpus_per_learner: float = NotProvided, **unknown: Any) -> "AlgorithmConfig":
        """0 learners: the learner runs in the driver; 1 or more: in a learner actor."""
        _unknown("learners", unknown, ["num_learners", "num_gpus_per_learner", "num_cpus_per_learner"])
        return self._apply("learners", dict(num_learners=num_learners, num_gpus_per_learner=num_gpus_per_learner,
                                            num_cpus_per_learner=num_cpus_per_learner))

    def evaluation(self, *, evaluation_interval: int | None = NotProvided, evaluation_duration: int | str = NotProvided,
                   evaluation_duration_unit: str = NotProvided, evaluation_num_env_runners: int = NotProvided,
                   evaluation_config: dict | None = NotProvided, evaluation_parallel_to_training: bool = NotProvided,
                   **kwargs: Any) -> "AlgorithmConfig":
        """Greedy evaluation every ``evaluation_interval`` iterations (None: only when ``evaluate()`` is called)."""
        kwargs = _renamed("evaluation", kwargs)
        if "evaluation_num_env_runners" in kwargs:
            evaluation_num_env_runners = kwargs.pop("evaluation_num_env_runners")
        _unknown("evaluation", kwargs, list(inspect.signature(AlgorithmConfig.evaluation).parameters)[1:-1])
        return self._apply("evaluation", dict(
            evaluation_interval=evaluation_interval, evaluation_duration=evaluation_duration,
            evaluation_duration_unit=evaluation_duration_unit, evaluation_num_env_runners=evaluation_num_env_runners,
            evaluation_config=evaluation_config, evaluation_parallel_to_training=evaluation_parallel_to_training))

    def debugging(self, *, seed: int | None = NotProvided, log_level: str = NotProvided,
                  **others: Any) -> "AlgorithmConfig":
        """``seed`` seeds the module, each env (per runner and env index) and exploration. RLlib's
        logger settings are accepted and have no effect."""
        _unknown("debugging", {k: v for k, v in others.items() if k not in _ACCEPTED_DEBUGGING},
                 ["seed", "log_level", *_ACCEPTED_DEBUGGING])
        return self._apply("debugging", dict(seed=seed, log_level=log_level))

    def reporting(self, *, metrics_num_episodes_for_smoothing: int = NotProvided,
                  min_sample_timesteps_per_iteration: int = NotProvided,
                  min_train_timesteps_per_iteration: int = NotProvided, min_time_s_per_iteration: float = NotProvided,
                  keep_per_episode_custom_metrics: bool = NotProvided, **others: Any) -> "AlgorithmConfig":
        """Episode stats are over the last ``metrics_num_episodes_for_smoothing`` episodes; an iteration
        samples at least ``min_sample_timesteps_per_iteration`` steps and lasts ``min_time_s_per_iteration``."""
        _unknown("reporting", {k: v for k, v in others.items() if k not in _ACCEPTED_REPORTING},
                 ["metrics_num_episodes_for_smoothing", "min_sample_timesteps_per_iteration",
                  "min_train_timesteps_per_iteration", "min_time_s_per_iteration", "keep_per_episode_custom_metrics",
                  *_ACCEPTED_REPORTING])
        return self._apply("reporting", dict(
            metrics_num_episodes_for_smoothing=metrics_num_episodes_for_smoothing,
            min_sample_timesteps_per_iteration=min_sample_timesteps_per_iteration,
            min_train_timesteps_per_iteration=min_train_timesteps_per_iteration,
            min_time_s_per_iteration=min_time_s_per_iteration,
            keep_per_episode_custom_metrics=keep_per_episode_custom_metrics))

    def fault_tolerance(self, *, restart_failed_env_runners: bool = NotProvided,
                        max_num_env_runner_restarts: int = NotProvided, ignore_env_runner_failures: bool = NotProvided,
                        env_runner_restore_timeout_s: float = NotProvided, **kwargs: Any) -> "AlgorithmConfig":
        """A runner whose process dies is replaced and the iteration goes on with the others."""
        kwargs = _renamed("fault_tolerance", kwargs)
        known = ["restart_failed_env_runners", "max_num_env_runner_restarts", "ignore_env_runner_failures",
                 "env_runner_restore_timeout_s"]
        given = {k: kwargs.pop(k) for k in list(kwargs) if k in known}
        _unknown("fault_tolerance", kwargs, known)
        self._apply("fault_tolerance", given)
        return self._apply("fault_tolerance", dict(
            restart_failed_env_runners=restart_failed_env_runners,
            max_num_env_runner_restarts=max_num_env_runner_restarts,
            ignore_env_runner_failures=ignore_env_runner_failures,
            env_runner_restore_timeout_s=env_runner_restore_timeout_s))

    def callbacks(self, callbacks_class: Any = NotProvided, **functions: Any) -> "AlgorithmConfig":
        """``callbacks(MyCallbacks)`` (an ``RLlibCallback`` subclass, or a list of them; None: none) and/or
        RLlib's keyword form ``callbacks(on_episode_end=fn, on_train_result=[f, g])``. Functions given
        for a hook replace the ones given for it before; classes run before functions."""
        if callbacks_class is not NotProvided:
            self.callbacks_class = RLlibCallback if callbacks_class is None else callbacks_class
            check_callbacks_class(self.callbacks_class)
        unknown = {k: v for k, v in functions.items() if k not in HOOKS}
        _unknown("callbacks", unknown, ["callbacks_class", *HOOKS])
        given = {k: v for k, v in functions.items() if v is not NotProvided and v is not None}
        self.callbacks_functions = {**self.callbacks_functions, **check_callback_functions(given)}
        return self

    def multi_agent(self, **kwargs: Any) -> "AlgorithmConfig":
        """Single-agent only: a policy mapping is an error rather than silently ignored."""
        if kwargs.get("policies"):
            raise NotImplementedError("Juno RL is single-agent: config.multi_agent(policies=...) is not supported.")
        return self

    # ------------------------------------------------------------------ derived values
    @property
    def total_train_batch_size(self) -> int:
        per_learner = self.train_batch_size_per_learner
        return int(per_learner * max(1, self.num_learners) if per_learner else self.train_batch_size)

    def get_rollout_fragment_length(self) -> int:
        """``"auto"``: the train batch spread over every env of every runner (at least 1 step)."""
        if self.rollout_fragment_length == "auto":
            envs = max(1, self.num_env_runners) * self.num_envs_per_env_runner
            return max(1, -(-self.total_train_batch_size // envs))
        return int(self.rollout_fragment_length)

    @property
    def learner_gpus(self) -> float:
        """GPUs each learner holds: ``num_gpus_per_learner``, else the older ``resources(num_gpus=...)``."""
        return self.num_gpus_per_learner or self.num_gpus

    @property
    def algo_name(self) -> str:
        return self.algo_class.__name__ if self.algo_class is not None else type(self).__name__.replace("Config", "")

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Fail early, naming the field and what is allowed."""
        def need(ok: bool, field: str, allowed: str) -> None:
            if not ok:
                raise ValueError(f"{type(self).__name__}.{field}={getattr(self, field)!r}: {allowed}.")

        def is_int(value: Any) -> bool:
            return isinstance(value, int) and not isinstance(value, bool)

        need(self.env is not None, "env", "set the env with config.environment('CartPole-v1') (a gymnasium id, "
             "a name given to juno.tune.register_env, an Env class or a creator function)")
        need(self.framework_str == "torch", "framework_str", "only 'torch' is supported")
        need(isinstance(self.gamma, (int, float)) and 0 <= self.gamma <= 1, "gamma", "a number in [0, 1]")
        need(isinstance(self.lr, (int, float)) and self.lr > 0, "lr", "a positive number")
        need(is_int(self.train_batch_size) and self.train_batch_size > 0, "train_batch_size", "a positive int")
        need(self.train_batch_size_per_learner is None or (is_int(self.train_batch_size_per_learner)
                                                           and self.train_batch_size_per_learner > 0),
             "train_batch_size_per_learner", "None or a positive int")
        need(self.minibatch_size is None or (is_int(self.minibatch_size) and self.minibatch_size > 0),
             "minibatch_size", "None or a positive int")
        need(is_int(self.num_epochs) and self.num_epochs > 0, "num_epochs", "a positive int")
        need(self.grad_clip is None or (isinstance(self.grad_clip, (int, float)) and self.grad_clip > 0), "grad_clip",
             "None or a positive number")
        need(self.grad_clip_by in ("global_norm", "norm", "value"), "grad_clip_by", "'global_norm', 'norm' or 'value'")
        need(is_int(self.num_env_runners) and self.num_env_runners >= 0, "num_env_runners",
             "an int >= 0 (0 samples in the driver)")
        need(is_int(self.num_envs_per_env_runner) and self.num_envs_per_env_runner > 0, "num_envs_per_env_runner",
             "a positive int")
        need(self.rollout_fragment_length == "auto" or (is_int(self.rollout_fragment_length)
                                                        and self.rollout_fragment_length > 0),
             "rollout_fragment_length", "'auto' or a positive int")
        need(self.batch_mode in ("truncate_episodes", "complete_episodes"), "batch_mode",
             "'truncate_episodes' or 'complete_episodes'")
        need(is_int(self.num_learners) and self.num_learners >= 0, "num_learners",
             "an int >= 0 (0: the learner runs in the driver)")
        for field in ("num_gpus", "num_gpus_per_learner", "num_gpus_per_env_runner", "num_cpus_per_env_runner",
                      "num_cpus_per_learner"):
            need(isinstance(getattr(self, field), (int, float)) and getattr(self, field) >= 0, field,
                 "a number >= 0")
        need(self.evaluation_interval is None or (is_int(self.evaluation_interval) and self.evaluation_interval >= 0),
             "evaluation_interval", "None or an int >= 0 (evaluate every that many iterations)")
        need(self.evaluation_duration == "auto" or (is_int(self.evaluation_duration) and self.evaluation_duration > 0),
             "evaluation_duration", "a positive int or 'auto'")
        need(self.evaluation_duration_unit in ("episodes", "timesteps"), "evaluation_duration_unit",
             "'episodes' or 'timesteps'")
        need(is_int(self.evaluation_num_env_runners) and self.evaluation_num_env_runners >= 0,
             "evaluation_num_env_runners", "an int >= 0")
        need(self.seed is None or is_int(self.seed), "seed", "None or an int")
        need(is_int(self.metrics_num_episodes_for_smoothing) and self.metrics_num_episodes_for_smoothing > 0,
             "metrics_num_episodes_for_smoothing", "a positive int")
        check_callbacks_class(self.callbacks_class)
        check_callback_functions(self.callbacks_functions)
        need(isinstance(self.model, dict), "model", "a dict such as {'fcnet_hiddens': [64, 64]}")
        hiddens = self.model_config.get("fcnet_hiddens")
        if not (isinstance(hiddens, (list, tuple)) and all(is_int(h) and h > 0 for h in hiddens)):
            raise ValueError(f"model_config['fcnet_hiddens']={hiddens!r}: a list of positive layer sizes, "
                             "e.g. [64, 64].")
        if self.minibatch_size is not None and self.minibatch_size > self.total_train_batch_size:
            raise ValueError(f"{type(self).__name__}.minibatch_size={self.minibatch_size} is larger than the train "
                             f"batch ({self.total_train_batch_size}): make it at most the train batch size.")

    # ------------------------------------------------------------------ build, copy, dicts
    def build_algo(self, env: Any = None, **kwargs: Any) -> Any:
        """The algorithm, set up: its env runners and learner exist when this returns."""
        if self.algo_class is None:
            raise ValueError(f"{type(self).__name__} has no algo_class: build from an algorithm's config "
                             "(PPOConfig(), DQNConfig(), SACConfig()).")
        config = self.copy()
        if env is not None:
            config.env = env
        return self.algo_class(config=config, **kwargs)

    build = build_algo

    def copy(self, copy_frozen: bool | None = None) -> "AlgorithmConfig":
        return copy.deepcopy(self)

    def to_dict(self) -> dict:
        """Every field as a plain dict (``lambda_`` as ``"lambda"``, as RLlib writes it); a name given to
        ``tune.register_env`` travels with its creator so that a Tune trial's process finds it."""
        out = {}
        for key, value in vars(self).items():
            if key.startswith("_"):
                continue
            out["lambda" if key == "lambda_" else key] = copy.deepcopy(value) if isinstance(value, (dict, list)) \
                else value
        out["model_config"] = self._model_config and dict(self._model_config)
        if self.algo_class is not None:
            out["algo_class"] = self.algo_class
        from juno.tune.registry import registered_env_creator

        if isinstance(self.env, str) and registered_env_creator(self.env) is not None:
            out["env_creator"] = registered_env_creator(self.env)
        return out

    @classmethod
    def from_dict(cls, config_dict: dict) -> "AlgorithmConfig":
        return cls().update_from_dict(config_dict)

    def update_from_dict(self, config_dict: dict) -> "AlgorithmConfig":
        """Set fields from a dict (``to_dict()``'s keys, older names too); an unknown key is an error."""
        from juno.tune.registry import register_env

        for key, value in config_dict.items():
            key = _DICT_ALIASES.get(key, key)
            if key in _RENAMED:
                key = _RENAMED[key]
            if key == "env_creator":
                if isinstance(config_dict.get("env"), str) and value is not None:
                    register_env(config_dict["env"], value)
            elif key == "algo_class":
                if value is not None:
                    self.algo_class = value
            elif key == "model_config":
                self.rl_module(model_config=value or {})
            elif key == "model":
                self.model = {**MODEL_DEFAULTS, **(value or {})}
            elif key == "framework":
                self.framework(value)
            elif key in vars(self) and not key.startswith("_"):
                setattr(self, key, value)
            else:
                known = sorted(k for k in vars(self) if not k.startswith("_"))
                raise ValueError(f"{type(self).__name__} has no setting {key!r}; known settings: {', '.join(known)}.")
        return self

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and vars(self) == vars(other)

    def __repr__(self) -> str:
        env = self.env if isinstance(self.env, str) else getattr(self.env, "__name__", self.env)
        return (f"{type(self).__name__}(env={env!r}, lr={self.lr}, gamma={self.gamma}, "
                f"train_batch_size={self.total_train_batch_size}, num_env_runners={self.num_env_runners})")
