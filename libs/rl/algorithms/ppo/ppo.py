"""PPO (Schulman et al. 2017) under RLlib's names: ``PPOConfig`` with RLlib's defaults for its new API
stack, and the ``PPO`` algorithm whose training step samples one train batch from the env runners,
hands it to the learner (GAE, then minibatch epochs of the clipped surrogate) and broadcasts the new
weights once."""
from __future__ import annotations

from typing import Any

from juno.rl.algorithms.algorithm import Algorithm
from juno.rl.algorithms.algorithm_config import AlgorithmConfig
from juno.rl.utils.sentinel import NotProvided

from .ppo_learner import PPOLearner
from .ppo_math import merge_fragments
from .ppo_rl_module import PPOTorchRLModule

_NUMBERS = {"lambda_": (0.0, 1.0), "clip_param": (0.0, None), "vf_clip_param": (0.0, None),
            "vf_loss_coeff": (0.0, None), "entropy_coeff": (0.0, None), "kl_coeff": (0.0, None),
            "kl_target": (0.0, None)}


class PPOConfig(AlgorithmConfig):
    """``PPOConfig().environment("CartPole-v1").training(lr=3e-4, lambda_=0.95, clip_param=0.2).build()``.

    The defaults are RLlib's (new API stack): they are safe for most envs, not fast on CartPole; see
    docs/rl.md and benchmarks/rl for settings that learn CartPole in seconds."""

    def __init__(self, algo_class: type | None = None) -> None:
        super().__init__(algo_class or PPO)
        self.lr = 5e-5
        self.gamma = 0.99
        self.train_batch_size = 4000
        self.minibatch_size = 128
        self.num_epochs = 30
        self.rollout_fragment_length = "auto"
        self.lambda_ = 1.0
        self.use_critic = True
        self.use_gae = True
        self.use_kl_loss = True
        self.kl_coeff = 0.2
        self.kl_target = 0.01
        self.clip_param = 0.3
        self.vf_clip_param = 10.0
        self.vf_loss_coeff = 1.0
        self.entropy_coeff = 0.0

    def training(self, *, lambda_: float = NotProvided, use_critic: bool = NotProvided, use_gae: bool = NotProvided,
                 use_kl_loss: bool = NotProvided, kl_coeff: float = NotProvided, kl_target: float = NotProvided,
                 clip_param: float = NotProvided, vf_clip_param: float = NotProvided,
                 vf_loss_coeff: float = NotProvided, entropy_coeff: float = NotProvided,
                 entropy_coeff_schedule: Any = NotProvided, lr_schedule: Any = NotProvided,
                 **kwargs: Any) -> "PPOConfig":
        """PPO's settings beside the shared ones (``lr``, ``gamma``, ``train_batch_size``,
        ``minibatch_size``/older ``sgd_minibatch_size``, ``num_epochs``/older ``num_sgd_iter`` ...)."""
        for name, value in (("entropy_coeff_schedule", entropy_coeff_schedule), ("lr_schedule", lr_schedule)):
            if value is not NotProvided and value is not None:
                raise ValueError(f"PPOConfig.training({name}=...): schedules are not supported by Juno RL yet; "
                                 f"give a constant ({name.replace('_schedule', '')}=<number>).")
        super().training(**kwargs)
        return self._apply("training", dict(
            lambda_=lambda_, use_critic=use_critic, use_gae=use_gae, use_kl_loss=use_kl_loss, kl_coeff=kl_coeff,
            kl_target=kl_target, clip_param=clip_param, vf_clip_param=vf_clip_param, vf_loss_coeff=vf_loss_coeff,
            entropy_coeff=entropy_coeff))

    def validate(self) -> None:
        super().validate()
        for field, (low, high) in _NUMBERS.items():
            value = getattr(self, field)
            if isinstance(value, (list, tuple)):
                raise ValueError(f"PPOConfig.{field}={value!r}: schedules are not supported by Juno RL yet; give a "
                                 "number.")
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value >= low and \
                (high is None or value <= high)
            if not ok:
                allowed = f"a number in [{low:g}, {high:g}]" if high is not None else f"a number >= {low:g}"
                raise ValueError(f"PPOConfig.{field}={value!r}: {allowed}.")
        for field in ("use_critic", "use_gae", "use_kl_loss"):
            if not isinstance(getattr(self, field), bool):
                raise ValueError(f"PPOConfig.{field}={getattr(self, field)!r}: True or False.")
        if self.use_gae and not self.use_critic:
            raise ValueError("PPOConfig: use_gae=True needs a critic (use_critic=True); set use_gae=False to learn "
                             "from plain discounted returns without a value function.")


class PPO(Algorithm):
    """Proximal Policy Optimization, on Discrete and Box action spaces."""

    module_class = PPOTorchRLModule
    learner_class = PPOLearner

    @classmethod
    def get_default_config(cls) -> PPOConfig:
        return PPOConfig(cls)

    def training_step(self) -> dict:
        """Sample at least one train batch, update the learner on it, send the new weights out."""
        target = self.config.total_train_batch_size
        batches, sampled = [], 0
        while sampled < target:
            fragments, metrics = self.env_runner_group.sample()
            batches.extend(fragments)
            sampled += sum(m["num_env_steps"] for m in metrics)
        metrics = self.learner_group.update(merge_fragments(batches), self.global_env_steps)
        self.env_runner_group.sync_weights(self.learner_group.get_weights(), self.global_env_steps)
        return metrics
