"""PPO: ``from juno.rl.algorithms.ppo import PPO, PPOConfig`` (or ``juno.rllib...``, RLlib's path)."""
from juno.rl.algorithms.ppo.ppo import PPO, PPOConfig
from juno.rl.algorithms.ppo.ppo_learner import PPOLearner
from juno.rl.algorithms.ppo.ppo_rl_module import PPOTorchRLModule

__all__ = ["PPO", "PPOConfig", "PPOLearner", "PPOTorchRLModule"]
