"""How a LearnerGroup of several learners splits a train batch and merges their metrics (pure)."""
import numpy as np
import pytest

from juno.rl.core.learner_group import merge_learner_metrics, shard_batch
from juno.rl.utils.resources import plan_env_runners


def _time_major(T, N):
    return {"obs": np.arange(T * N * 4, dtype=np.float32).reshape(T, N, 4),
            "rewards": np.arange(T * N, dtype=np.float32).reshape(T, N), "terminateds": np.zeros((T, N), bool)}


def test_a_time_major_batch_splits_along_its_envs_when_it_has_enough():
    shards = shard_batch(_time_major(8, 3), 2)
    assert [s["obs"].shape for s in shards] == [(8, 2, 4), (8, 1, 4)]
    assert np.array_equal(np.concatenate([s["rewards"] for s in shards], axis=1), _time_major(8, 3)["rewards"])


def test_a_batch_with_fewer_envs_than_learners_splits_along_time():
    batch = _time_major(7, 1)  # complete_episodes' layout: [steps, 1]
    shards = shard_batch(batch, 2)
    assert [s["rewards"].shape for s in shards] == [(4, 1), (3, 1)]
    assert np.array_equal(np.concatenate([s["obs"] for s in shards]), batch["obs"])


def test_a_replay_sample_splits_along_rows_and_other_columns_go_whole():
    batch = {"rewards": np.arange(5.0), "actions": np.arange(5), "weights": np.ones(5), "meta": np.zeros(3)}
    shards = shard_batch(batch, 2)
    assert [len(s["rewards"]) for s in shards] == [3, 2]
    assert np.array_equal(shards[1]["actions"], [3, 4]) and all(s["meta"].shape == (3,) for s in shards)


def test_a_batch_too_small_to_split_is_an_error_saying_what_to_change():
    with pytest.raises(ValueError, match="cannot be split over 4 learners.*train_batch_size_per_learner"):
        shard_batch({"rewards": np.zeros(3)}, 4)
    with pytest.raises(ValueError, match="needs a 'rewards' column"):
        shard_batch({"obs": np.zeros(3)}, 2)


def test_metrics_merge_as_means_and_per_row_arrays_in_shard_order():
    merged = merge_learner_metrics([{"loss": 1.0, "n": 2, "td_error": np.array([1.0, 2.0]), "tag": "a"},
                                    {"loss": 3.0, "n": 2, "td_error": np.array([3.0]), "tag": "b"}])
    assert merged["loss"] == 2.0 and merged["n"] == 2.0 and merged["tag"] == "a"
    assert np.array_equal(merged["td_error"], [1.0, 2.0, 3.0])


class _Config:
    def __init__(self, **fields):
        defaults = dict(num_env_runners=2, num_cpus_per_env_runner=1, num_gpus_per_env_runner=0, learner_gpus=0,
                        num_learners=0, num_cpus_per_learner=1)
        self.__dict__.update({**defaults, **fields})


def test_the_resource_plan_counts_every_learner():
    runners, warning = plan_env_runners(_Config(num_learners=2), {"CPU": 3}, {"CPU": 3}, num_nodes=1)
    assert runners == 1 and "1 CPUs left" in warning
    with pytest.raises(ValueError, match=r"asks for 2 GPUs \(2 for 2 learner\(s\)"):
        plan_env_runners(_Config(num_learners=2, learner_gpus=1), {"CPU": 8}, {"CPU": 8}, num_nodes=1)
