"""Juno RL: RLlib's API on Juno (also importable as ``juno.rllib``).

    from juno.rl.algorithms.ppo import PPOConfig
    algo = PPOConfig().environment("CartPole-v1").env_runners(num_env_runners=2).build_algo()
    for _ in range(10):
        result = algo.train()
    print(result["env_runners"]["episode_return_mean"])

Env runner actors sample with a copy of the module; the learner (in the driver or a learner actor)
updates it; weights go out through the object store once per iteration. Built on Juno's public API,
``juno.air`` and ``juno.tune``.
"""
from juno.rl.algorithms.algorithm import Algorithm
from juno.rl.algorithms.algorithm_config import AlgorithmConfig
from juno.rl.rollout import watch_policy

__all__ = ["Algorithm", "AlgorithmConfig", "watch_policy"]
