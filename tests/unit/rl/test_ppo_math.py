"""PPO's math against numbers worked out by hand: GAE over a time-major fragment (bootstrapping at
truncation and the fragment's end, not at termination), the clipped surrogate and value losses, the
adaptive KL coefficient."""
import math

import numpy as np
import pytest
import torch

from juno.rl.algorithms.ppo.ppo_math import (compute_gae, explained_variance, merge_fragments, ppo_surrogate_loss,
                                             standardize, update_kl_coeff)


def test_gae_bootstraps_at_truncation_and_fragment_end_not_at_termination():
    # env 0 runs through the fragment; env 1 terminates at t=1 and is truncated at t=2.
    rewards = np.array([[1, 0], [1, 1], [1, 2]], np.float32)
    values = np.array([[0.5, 0.2], [0.4, 0.1], [0.3, 0.6]], np.float32)
    next_values = np.array([[0.4, 1.0], [0.3, 5.0], [0.2, 0.5]], np.float32)
    terminateds = np.array([[0, 0], [0, 1], [0, 0]], bool)
    truncateds = np.array([[0, 0], [0, 0], [0, 1]], bool)
    adv, targets = compute_gae(rewards, values, next_values, terminateds, truncateds, gamma=0.9, lambda_=0.5)
    # env 0: deltas 0.86, 0.87, 0.88 (each bootstrapped); gamma * lambda = 0.45
    # env 1: deltas 0.7, 0.9 (terminated: the 5.0 is ignored), 1.85 (truncated: bootstrapped from 0.5);
    #        the termination at t=1 stops the accumulation into t=0 from t=2's episode.
    expected = np.array([[0.86 + 0.45 * (0.87 + 0.45 * 0.88), 0.7 + 0.45 * 0.9],
                         [0.87 + 0.45 * 0.88, 0.9],
                         [0.88, 1.85]], np.float32)
    np.testing.assert_allclose(adv, expected, rtol=1e-5)
    np.testing.assert_allclose(targets, expected + values, rtol=1e-5)
    assert adv.dtype == np.float32 and targets.dtype == np.float32


def test_gae_with_lambda_one_is_the_discounted_return_minus_the_value():
    rewards = np.ones((4, 1), np.float32)
    zeros = np.zeros((4, 1), np.float32)
    done = np.zeros((4, 1), bool)
    adv, targets = compute_gae(rewards, zeros, zeros, done, done, gamma=0.5, lambda_=1.0)
    np.testing.assert_allclose(targets[:, 0], [1.875, 1.75, 1.5, 1.0])


def test_gae_rejects_a_flat_batch():
    with pytest.raises(ValueError, match=r"time-major \[T, N\]"):
        compute_gae(np.ones(3), np.ones(3), np.ones(3), np.zeros(3), np.zeros(3), 0.99, 1.0)


def loss_inputs(**overrides):
    kwargs = dict(logp=torch.tensor([math.log(1.5), math.log(0.5)], requires_grad=True),
                  old_logp=torch.zeros(2), advantages=torch.tensor([1.0, -1.0]),
                  values=torch.zeros(2, requires_grad=True), value_targets=torch.tensor([1.0, 4.0]),
                  entropy=torch.tensor([0.6, 0.4]), kl=torch.tensor([0.02, 0.04]), clip_param=0.2,
                  vf_clip_param=10.0, vf_loss_coeff=0.5, entropy_coeff=0.1, kl_coeff=0.2)
    kwargs.update(overrides)
    return kwargs


def test_ppo_loss_matches_hand_computed_parts():
    inputs = loss_inputs()
    total, stats = ppo_surrogate_loss(**inputs)
    # ratios 1.5 and 0.5, both outside [0.8, 1.2] on the side the clip binds: surrogates 1.2 and -0.8
    assert float(stats["policy_loss"]) == pytest.approx(-0.2)
    # squared errors 1 and 16; 16 clipped at vf_clip_param=10
    assert float(stats["vf_loss"]) == pytest.approx(5.5)
    assert float(stats["vf_loss_unclipped"]) == pytest.approx(8.5)
    assert float(stats["entropy"]) == pytest.approx(0.5)
    assert float(stats["mean_kl_loss"]) == pytest.approx(0.03)
    assert float(total.detach()) == pytest.approx(-0.2 + 0.5 * 5.5 - 0.1 * 0.5 + 0.2 * 0.03)
    total.backward()
    # both ratios are clipped: no policy gradient flows; the clipped value error has no gradient either
    assert inputs["logp"].grad.tolist() == [0.0, 0.0]
    assert inputs["values"].grad.tolist() == pytest.approx([0.5 * 2 * (0 - 1.0) / 2, 0.0])


def test_ppo_loss_inside_the_clip_range_pushes_logp_along_the_advantage():
    inputs = loss_inputs(logp=torch.zeros(2, requires_grad=True), values=None, value_targets=None, kl=None)
    total, stats = ppo_surrogate_loss(**inputs)
    total.backward()
    assert inputs["logp"].grad.tolist() == pytest.approx([-0.5, 0.5])
    assert float(stats["vf_loss"]) == 0.0 and float(stats["mean_kl_loss"]) == 0.0


def test_adaptive_kl_coeff():
    assert update_kl_coeff(0.2, 0.05, 0.01) == pytest.approx(0.3)
    assert update_kl_coeff(0.2, 0.001, 0.01) == pytest.approx(0.1)
    assert update_kl_coeff(0.2, 0.01, 0.01) == 0.2


def test_standardize_and_explained_variance():
    x = standardize(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert float(x.mean()) == pytest.approx(0.0, abs=1e-6) and float(x.std(unbiased=False)) == pytest.approx(1.0)
    targets = torch.tensor([1.0, 2.0, 3.0])
    assert explained_variance(targets, targets) == 1.0
    assert explained_variance(targets, torch.full((3,), 2.0)) == pytest.approx(0.0)
    assert explained_variance(targets, -10 * targets) == -1.0


def fragment(T, N, start):
    rewards = np.arange(start, start + T * N, dtype=np.float32).reshape(T, N)
    return {"rewards": rewards, "truncateds": np.zeros((T, N), bool), "obs": rewards[..., None].repeat(2, -1)}


def test_merge_fragments_of_one_length_side_by_side():
    merged = merge_fragments([fragment(3, 2, 0), fragment(3, 1, 100)])
    assert merged["rewards"].shape == (3, 3) and merged["obs"].shape == (3, 3, 2)
    assert merged["rewards"][:, 2].tolist() == [100, 101, 102]
    assert not merged["truncateds"].any()


def test_merge_fragments_of_different_lengths_end_to_end_with_each_fragment_end_truncated():
    merged = merge_fragments([fragment(2, 2, 0), fragment(3, 1, 100)])
    # env columns in time order: (0, 2), (1, 3), (100, 101, 102)
    assert merged["rewards"][:, 0].tolist() == [0, 2, 1, 3, 100, 101, 102]
    assert merged["obs"].shape == (7, 1, 2)
    assert merged["truncateds"][:, 0].tolist() == [False, True, False, True, False, False, True]
    # GAE over the merged column equals GAE over each fragment alone
    values = np.zeros((7, 1), np.float32)
    adv, _ = compute_gae(merged["rewards"], values, values + 1.0, np.zeros((7, 1), bool), merged["truncateds"],
                         0.9, 0.8)
    alone, _ = compute_gae(np.array([[100], [101], [102]], np.float32), np.zeros((3, 1), np.float32),
                           np.ones((3, 1), np.float32), np.zeros((3, 1), bool), np.zeros((3, 1), bool), 0.9, 0.8)
    np.testing.assert_allclose(adv[4:], alone, rtol=1e-6)
