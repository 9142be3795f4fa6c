"""Replay buffers, the sum tree and n-step transitions: pure numpy, no processes."""
import numpy as np
import pytest

from juno.rl.utils.replay_buffers import (NStepTransitions, PrioritizedReplayBuffer, ReplayBuffer, SumTree,
                                          make_replay_buffer, n_step_transitions)


def rows(start, n, obs_dim=3):
    ids = np.arange(start, start + n)
    return {"obs": np.repeat(ids[:, None], obs_dim, axis=1).astype(np.float32), "actions": ids.astype(np.int64)}


def test_sum_tree_prefix_search_and_updates():
    tree = SumTree(5)
    tree.set(np.arange(5), np.array([1.0, 0.0, 2.0, 3.0, 4.0]))
    assert tree.total == pytest.approx(10.0)
    found = tree.find_prefix_sum(np.array([0.0, 0.99, 1.0, 2.99, 3.0, 5.99, 6.0, 9.99]))
    assert found.tolist() == [0, 0, 2, 2, 3, 3, 4, 4]
    tree.set(np.array([4, 4]), np.array([0.5, 1.0]))  # the last write wins
    assert tree.total == pytest.approx(7.0)
    with pytest.raises(ValueError, match="finite"):
        tree.set(np.array([0]), np.array([-1.0]))


def test_uniform_buffer_preallocates_and_evicts_oldest_first():
    buffer = ReplayBuffer(capacity=5)
    buffer.add(rows(0, 3))
    assert len(buffer) == 3 and buffer._storage["obs"].shape == (5, 3)
    buffer.add(rows(3, 4))  # 7 rows into 5 slots: 0 and 1 are gone
    assert len(buffer) == 5 and buffer.num_added == 7
    assert sorted(buffer._storage["actions"].tolist()) == [2, 3, 4, 5, 6]
    sample = buffer.sample(64, np.random.default_rng(0))
    assert set(sample["actions"].tolist()) <= {2, 3, 4, 5, 6}
    assert (sample["obs"][:, 0] == sample["actions"]).all()  # rows stay whole
    assert (sample["weights"] == 1).all()
    buffer.add(rows(100, 12))  # bigger than the buffer: the newest rows only
    assert sorted(buffer._storage["actions"].tolist()) == list(range(107, 112))


def test_uniform_buffer_errors_say_what_to_do():
    buffer = ReplayBuffer(capacity=4)
    with pytest.raises(ValueError, match="empty replay buffer"):
        buffer.sample(2, np.random.default_rng(0))
    buffer.add(rows(0, 2))
    with pytest.raises(ValueError, match="same columns"):
        buffer.add({"obs": np.zeros((1, 3), np.float32)})
    with pytest.raises(ValueError, match="same number of rows"):
        buffer.add({"obs": np.zeros((2, 3), np.float32), "actions": np.zeros(3, np.int64)})
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(capacity=0)


def test_prioritized_buffer_samples_by_priority_and_weights_by_beta():
    buffer = PrioritizedReplayBuffer(capacity=8, alpha=1.0, beta=1.0)
    buffer.add(rows(0, 4))
    buffer.update_priorities(np.arange(4), np.array([1.0, 1.0, 1.0, 7.0]))
    rng = np.random.default_rng(0)
    counts = np.bincount(buffer.sample(10000, rng)["actions"], minlength=4)
    assert counts[3] / counts.sum() == pytest.approx(0.7, abs=0.02)
    sample = buffer.sample(100, rng)
    # beta=1: weights undo the sampling bias exactly, normalised by the largest (the rarest row's).
    expected = np.where(sample["actions"] == 3, 1 / 7, 1.0)
    np.testing.assert_allclose(sample["weights"], expected, rtol=1e-5)
    buffer.add(rows(4, 1))  # a new row gets the largest priority seen
    assert buffer._tree.get(np.array([4]))[0] == pytest.approx(7.0, rel=1e-4)


def test_buffer_state_round_trips():
    buffer = PrioritizedReplayBuffer(capacity=6)
    buffer.add(rows(0, 5))
    buffer.update_priorities(np.array([1, 2]), np.array([3.0, 0.5]))
    copy = PrioritizedReplayBuffer(capacity=6)
    copy.set_state(buffer.get_state())
    a, b = buffer.sample(20, np.random.default_rng(1)), copy.sample(20, np.random.default_rng(1))
    np.testing.assert_array_equal(a["actions"], b["actions"])
    np.testing.assert_array_equal(a["weights"], b["weights"])


def test_make_replay_buffer_takes_rllib_names_and_older_keys():
    assert type(make_replay_buffer(None)) is ReplayBuffer
    for name in ("EpisodeReplayBuffer", "MultiAgentReplayBuffer", "ReplayBuffer"):
        assert type(make_replay_buffer({"type": name, "capacity": 10})) is ReplayBuffer
    buffer = make_replay_buffer({"type": "MultiAgentPrioritizedReplayBuffer", "capacity": 100,
                                 "prioritized_replay_alpha": 0.5, "prioritized_replay_beta": 0.3,
                                 "storage_unit": "timesteps"})
    assert isinstance(buffer, PrioritizedReplayBuffer)
    assert (buffer.capacity, buffer.alpha, buffer.beta) == (100, 0.5, 0.3)
    buffer = make_replay_buffer({"type": "PrioritizedEpisodeReplayBuffer", "alpha": 0.7, "beta": 0.5})
    assert (buffer.capacity, buffer.alpha, buffer.beta) == (50000, 0.7, 0.5)
    with pytest.raises(ValueError, match="Unknown replay buffer type 'Reservoir'"):
        make_replay_buffer({"type": "Reservoir"})
    with pytest.raises(ValueError, match="unknown keys \\['capacty'\\]"):
        make_replay_buffer({"capacty": 10})


def time_major(rewards, terminateds, truncateds):
    """A [T, N] batch whose obs/next_obs encode (t, env) so a transition's window can be read off."""
    rewards = np.asarray(rewards, np.float32)
    horizon, num_envs = rewards.shape
    t = np.arange(horizon)[:, None, None].repeat(num_envs, 1).astype(np.float32)
    return {"obs": t, "next_obs": t + 1, "actions": np.zeros((horizon, num_envs), np.int64), "rewards": rewards,
            "terminateds": np.asarray(terminateds, bool), "truncateds": np.asarray(truncateds, bool)}


def test_one_step_transitions_are_the_batch_flattened():
    batch = time_major([[1, 2], [3, 4]], [[0, 1], [0, 0]], [[0, 0], [1, 0]])
    out = n_step_transitions(batch, n_step=1, gamma=0.9)
    np.testing.assert_array_equal(out["rewards"], [1, 2, 3, 4])
    np.testing.assert_array_equal(out["terminateds"], [False, True, False, False])
    np.testing.assert_allclose(out["discounts"], 0.9)
    assert out["obs"].shape == (4, 1) and out["next_obs"][:, 0].tolist() == [1, 1, 2, 2]


def test_n_step_windows_stop_at_terminations_truncations_and_fragment_ends():
    gamma = 0.5
    # One env, 6 steps: terminates at t=1, truncates at t=4, the fragment ends at t=5.
    batch = time_major([[1], [2], [4], [8], [16], [32]], [[0], [1], [0], [0], [0], [0]],
                       [[0], [0], [0], [0], [1], [0]])
    out = n_step_transitions(batch, n_step=3, gamma=gamma)
    expected_returns = [1 + 0.5 * 2, 2, 4 + 0.5 * 8 + 0.25 * 16, 8 + 0.5 * 16, 16, 32]
    np.testing.assert_allclose(out["rewards"], expected_returns)
    np.testing.assert_array_equal(out["next_obs"][:, 0], [2, 2, 5, 5, 5, 6])  # t of the window's last step + 1
    np.testing.assert_array_equal(out["terminateds"], [True, True, False, False, False, False])
    np.testing.assert_allclose(out["discounts"], [0.25, 0.5, 0.125, 0.25, 0.5, 0.5])


def test_n_step_envs_are_independent():
    batch = time_major([[1, 1], [1, 1], [1, 1]], [[0, 1], [0, 0], [0, 0]], np.zeros((3, 2)))
    out = n_step_transitions(batch, n_step=2, gamma=1.0)
    # Flattened time-major: (t0,e0), (t0,e1), (t1,e0), (t1,e1), (t2,e0), (t2,e1)
    np.testing.assert_allclose(out["rewards"], [2, 1, 2, 2, 1, 1])
    np.testing.assert_array_equal(out["terminateds"], [False, True, False, False, False, False])


def test_n_step_rejects_bad_input():
    batch = time_major([[1]], [[0]], [[0]])
    with pytest.raises(ValueError, match="n_step must be an int >= 1"):
        n_step_transitions(batch, n_step=0)
    del batch["next_obs"]
    with pytest.raises(ValueError, match="missing \\['next_obs'\\]"):
        n_step_transitions(batch)


def _fragments(batch, length):
    return [{key: value[t:t + length] for key, value in batch.items()} for t in range(0, len(batch["rewards"]), length)]


@pytest.mark.parametrize("length", [1, 2, 4])
def test_n_step_windows_run_across_a_runners_fragments(length):
    """SAC samples one step per fragment: the windows must not stop at each fragment's end."""
    rewards = [[1, 1], [2, 2], [4, 4], [8, 8], [16, 16], [32, 32], [64, 64], [128, 128]]
    whole = time_major(rewards, [[0, 0], [0, 1], [0, 0], [0, 0], [0, 0], [0, 0], [0, 0], [0, 0]],
                       [[0, 0], [0, 0], [0, 0], [0, 0], [1, 0], [0, 0], [0, 0], [0, 0]])
    whole["obs"] = whole["obs"] + np.arange(2)[None, :, None] * 100  # envs apart
    whole["next_obs"] = whole["obs"] + 1
    builder = NStepTransitions(n_step=3, gamma=0.5)
    parts = [builder(0, fragment) for fragment in _fragments(whole, length)]
    got = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    expected = n_step_transitions(whole, n_step=3, gamma=0.5)
    ready = (8 - 2) * 2  # the last n-1 steps of each env wait for a next fragment
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key][:ready], err_msg=key)
    assert ready < len(expected["rewards"])


def test_n_step_a_fragment_that_does_not_continue_ends_the_held_windows():
    builder = NStepTransitions(n_step=3, gamma=0.5)
    first = time_major([[1], [2], [4]], [[0], [0], [0]], [[0], [0], [0]])
    assert len(builder(0, first)["rewards"]) == 1  # t=0's window is complete; t=1, t=2 wait
    other = time_major([[8], [16], [32]], [[0], [0], [0]], [[0], [0], [0]])
    other["obs"] = other["obs"] + 50  # a replaced runner: not where the held steps left off
    other["next_obs"] = other["obs"] + 1
    out = builder(0, other)
    # The held t=1, t=2 end where the first fragment ended, as if it had been truncated there.
    np.testing.assert_allclose(out["rewards"][:2], [2 + 0.5 * 4, 4])
    np.testing.assert_array_equal(out["next_obs"][:2, 0], [3, 3])
    np.testing.assert_allclose(out["rewards"][2:], [8 + 0.5 * 16 + 0.25 * 32])
    # Another runner's fragments are held apart; one-step transitions hold nothing.
    assert len(builder(1, first)["rewards"]) == 1
    assert len(NStepTransitions(1)(0, first)["rewards"]) == 3
    with pytest.raises(ValueError, match="n_step must be an int >= 1"):
        NStepTransitions(0)


def test_n_step_a_fragment_of_other_envs_flushes_the_held_steps():
    builder = NStepTransitions(n_step=2, gamma=1.0)
    builder(0, time_major([[1], [1]], [[0], [0]], [[0], [0]]))
    out = builder(0, time_major([[1, 1], [1, 1]], np.zeros((2, 2)), np.zeros((2, 2))))
    # the held step of the one-env fragment (a 1-step window), then the first step of both new envs
    np.testing.assert_allclose(out["rewards"], [1, 2, 2])


def test_n_step_holds_nothing_back_when_every_env_ended_its_episode():
    # complete_episodes: each fragment ends with every env's episode; its windows are all complete
    batch = time_major([[1, 1], [1, 1], [1, 1]], [[0, 0], [0, 0], [1, 0]], [[0, 0], [0, 0], [0, 1]])
    out = NStepTransitions(n_step=3, gamma=1.0)(0, batch)
    assert len(out["rewards"]) == 6
    assert out["rewards"].reshape(3, 2)[:, 0].tolist() == [3.0, 2.0, 1.0]
