"""The controller's and worker group's pure parts: iterations from per-rank reports, ranks, env."""
from juno.train.controller import IterationCollector
from juno.train.worker_group import assign_ranks, worker_env


def test_an_iteration_completes_when_every_rank_reported_it():
    c = IterationCollector(2)
    assert c.add(0, [{"i": 1}, {"i": 2}]) == []
    assert c.add(1, [{"i": 1}]) == [[{"i": 1}, {"i": 1}]]
    assert c.add(1, [{"i": 2}, {"i": 3}]) == [[{"i": 2}, {"i": 2}]]
    assert c.leftover() == 1


def test_ranks_count_within_and_across_nodes():
    infos = [{"node_id": "a", "gpu_ids": []}, {"node_id": "a", "gpu_ids": []}, {"node_id": "b", "gpu_ids": []}]
    ranked = assign_ranks(infos)
    assert [(r["world_rank"], r["local_rank"], r["node_rank"], r["local_world_size"]) for r in ranked] == \
        [(0, 0, 0, 2), (1, 1, 0, 2), (2, 0, 1, 1)]
    assert {r["world_size"] for r in ranked} == {3}


def test_workers_see_their_nodes_gpus_and_torchrun_variables():
    ranked = assign_ranks([{"node_id": "a", "gpu_ids": [3]}, {"node_id": "a", "gpu_ids": [1]},
                           {"node_id": "b", "gpu_ids": [0]}])
    env = worker_env(ranked[0], 3, "10.0.0.1", 1234, ranked)
    assert env["CUDA_VISIBLE_DEVICES"] == "1,3"
    assert (env["RANK"], env["LOCAL_RANK"], env["WORLD_SIZE"], env["MASTER_PORT"]) == (0, 0, 3, 1234)
    assert worker_env(ranked[2], 3, "10.0.0.1", 1234, ranked)["CUDA_VISIBLE_DEVICES"] == "0"
    assert "CUDA_VISIBLE_DEVICES" not in worker_env(assign_ranks([{"node_id": "a", "gpu_ids": []}])[0], 1, "h", 1,
                                                    [{"node_id": "a", "gpu_ids": []}])
