"""Data-parallel learners (``num_learners=2``) on a real cluster: the two learner actors form one gloo
process group, update on their shards with averaged gradients and so hold identical weights; a
checkpoint restores onto a new pair; a learner that dies is an error naming its rank."""
import os

import numpy as np
import pytest

pytest.importorskip("gymnasium")
pytest.importorskip("torch")

from juno.rl.algorithms.dqn import DQNConfig  # noqa: E402
from juno.rl.algorithms.ppo import PPO, PPOConfig  # noqa: E402

JUNO_SHARED_INIT = {"num_cpus": 2}
TWO_LEARNERS = dict(num_learners=2, num_cpus_per_learner=0.5)


def _same_on_every_learner(algo):
    ranks = algo.learner_group.foreach_learner(lambda learner: (learner.rank, learner.get_weights()))
    assert [rank for rank, _ in ranks] == [0, 1]
    first, second = ranks[0][1], ranks[1][1]
    assert first.keys() == second.keys()
    assert all(np.array_equal(first[k], second[k]) for k in first)
    return first


def test_ppo_with_two_learners_keeps_their_weights_identical_and_restores(cluster, tmp_path):
    config = (PPOConfig().environment("CartPole-v1").debugging(seed=0)
              .env_runners(num_env_runners=0, num_envs_per_env_runner=3, rollout_fragment_length=16)
              .training(train_batch_size_per_learner=24, minibatch_size=10, num_epochs=2, lr=1e-3)
              .rl_module(model_config={"fcnet_hiddens": [16]}).learners(**TWO_LEARNERS))
    algo = config.build_algo()
    try:
        before = _same_on_every_learner(algo)  # rank 1 starts from rank 0's initial weights
        for _ in range(2):
            result = algo.train()
        # 3 envs over 2 learners: shards of 2 and 1 env columns (32 and 16 rows); both ran 4 minibatches an epoch.
        assert result["num_env_steps_trained_lifetime"] == 96
        learner = result["learners"]["default_policy"]
        assert learner["num_minibatch_updates"] == 8.0
        assert all(np.isfinite(learner[k]) for k in ("policy_loss", "vf_loss", "entropy", "mean_kl_loss"))
        after = _same_on_every_learner(algo)
        assert any(not np.array_equal(before[k], after[k]) for k in before)
        assert len(set(algo.learner_group.foreach_learner(lambda learner: learner.curr_kl_coeff))) == 1
        obs = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32)
        expected = algo.compute_actions(obs)
        path = algo.save(str(tmp_path / "ckpt")).path
    finally:
        algo.stop()
    restored = PPO.from_checkpoint(path)
    try:
        assert restored.learner_group.num_learners == 2
        assert np.array_equal(restored.compute_actions(obs), expected)
        weights = _same_on_every_learner(restored)
        assert all(np.array_equal(weights[k], after[k]) for k in after)
        restored.train()
        _same_on_every_learner(restored)
    finally:
        restored.stop()


def test_dqn_with_two_learners_splits_the_replay_sample(cluster):
    config = (DQNConfig().environment("CartPole-v1").debugging(seed=0)
              .env_runners(num_env_runners=0, num_envs_per_env_runner=2, rollout_fragment_length=8)
              .training(lr=1e-3, train_batch_size_per_learner=16, n_step=1, target_network_update_freq=32,
                        model={"fcnet_hiddens": [16]}, num_steps_sampled_before_learning_starts=32,
                        training_intensity=None,
                        replay_buffer_config={"type": "PrioritizedEpisodeReplayBuffer", "capacity": 1000})
              .reporting(min_sample_timesteps_per_iteration=64).learners(**TWO_LEARNERS))
    algo = config.build_algo()
    try:
        for _ in range(2):
            result = algo.train()
        learner = result["learners"]["default_policy"]
        assert learner["num_updates"] >= 1 and np.isfinite(learner["qf_loss"])
        _same_on_every_learner(algo)
        targets = algo.learner_group.foreach_learner(lambda learner: learner.target_module.get_state())
        assert all(np.array_equal(targets[0][k], targets[1][k]) for k in targets[0])
    finally:
        algo.stop()


def test_a_learner_that_dies_is_an_error_naming_its_rank(cluster):
    config = (PPOConfig().environment("CartPole-v1").debugging(seed=0)
              .env_runners(num_env_runners=0, num_envs_per_env_runner=2, rollout_fragment_length=8)
              .training(train_batch_size_per_learner=8, minibatch_size=8, num_epochs=1)
              .rl_module(model_config={"fcnet_hiddens": [8]}).learners(**TWO_LEARNERS))
    algo = config.build_algo()
    try:
        with pytest.raises(RuntimeError, match="learner rank 1 of 2 died"):
            algo.learner_group.foreach_learner(lambda learner: os._exit(1) if learner.rank == 1 else None)
        with pytest.raises(RuntimeError, match="learner group is broken .*learner rank 1"):
            algo.train()
    finally:
        algo.stop()


def test_learners_that_can_never_be_placed_are_an_error_before_any_actor_starts(cluster):
    config = PPOConfig().environment("CartPole-v1").env_runners(num_env_runners=0).learners(
        num_learners=3, num_cpus_per_learner=1)
    with pytest.raises(ValueError, match=r"num_learners=3, num_cpus_per_learner=1, .*never be placed.*CPU=3.*"
                                         "Lower num_learners"):
        config.build_algo()
