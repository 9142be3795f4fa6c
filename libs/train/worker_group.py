"""A run's workers: one actor per placement-group bundle, ranked by node, each running the loop in a
thread next to a small control surface (environment, backend set-up, polling).

Ranks follow Ray Train: workers sorted by node (the driver's node first) and GPU id; ``local_rank``
counts within a node and ``node_rank`` numbers the nodes. Every worker gets torchrun's environment
variables, and on GPU nodes ``CUDA_VISIBLE_DEVICES`` lists all the node's workers' GPUs, so NCCL
sees its peers and ``get_device()`` picks the worker's own one by index.
"""
from __future__ import annotations

from typing import Any, Callable

import juno
from juno.air.config import ScalingConfig
from juno.air.worker import SessionWorker
from juno.util.placement_group import placement_group, remove_placement_group
from juno.util.scheduling_strategies import PlacementGroupSchedulingStrategy


class TrainWorker(SessionWorker):
    """The actor hosting one rank."""


class WorkerGroup:
    """Starts the workers of one attempt and tears them down; ``workers[i]`` is rank ``i``."""

    def __init__(self, scaling: ScalingConfig, *, ready_timeout_s: float = 60.0, name: str = "") -> None:
        self.scaling = scaling
        bundles = scaling.bundles()
        self.first_worker_bundle = len(bundles) - scaling.num_workers
        self.pg = placement_group(bundles, strategy=scaling.placement_strategy, name="")
        self.actors: list[Any] = []
        self.infos: list[dict] = []
        self.master_addr, self.master_port = "", 0
        try:
            self._start(ready_timeout_s, name)
        except BaseException:
            self.shutdown()
            raise

    def _start(self, ready_timeout_s: float, name: str) -> None:
        if not self.pg.wait(ready_timeout_s):
            raise TimeoutError(
                f"The run's {self.scaling.num_workers} workers ({self.scaling.worker_resources} each) could not be "
                f"placed within {ready_timeout_s:.0f} s: other work holds the resources (juno.available_resources() "
                f"= {juno.available_resources()}). Free them, or ask for fewer workers.")
        resources = self.scaling.worker_resources
        actor_cls = juno.remote(TrainWorker)
        for i in range(self.scaling.num_workers):
            options = {"num_cpus": resources.get("CPU", 0), "num_gpus": resources.get("GPU", 0),
                       "resources": {k: v for k, v in resources.items() if k not in ("CPU", "GPU", "memory")},
                       "max_concurrency": 2,
                       "scheduling_strategy": PlacementGroupSchedulingStrategy(
                           self.pg, placement_group_bundle_index=self.first_worker_bundle + i)}
            if "memory" in resources:
                options["memory"] = resources["memory"]
            self.actors.append(actor_cls.options(**options).remote())
        infos = juno.get([a.info.remote() for a in self.actors], timeout=ready_timeout_s)
        here = juno.get_runtime_context().get_node_id()
        order = sorted(range(len(infos)), key=lambda i: (infos[i]["node_id"] != here, infos[i]["node_id"],
                                                         sorted(infos[i]["gpu_ids"]), i))
        self.actors = [self.actors[i] for i in order]
        self.infos = assign_ranks([infos[i] for i in order])

    def set_env(self, master_addr: str, master_port: int, timeout_s: float = 60.0) -> None:
        """torchrun's variables (and GPU visibility) on every worker, before any backend starts."""
        self.master_addr, self.master_port = master_addr, master_port
        juno.get([a.set_env.remote(worker_env(info, len(self.infos), master_addr, master_port, self.infos))
                  for a, info in zip(self.actors, self.infos)], timeout=timeout_s)

    def execute(self, fn: Callable, *args: Any, timeout_s: float | None = None) -> list:
        """``fn(*args)`` on every worker, in rank order."""
        return juno.get([a.execute.remote(fn, *args) for a in self.actors], timeout=timeout_s)

    def execute_single(self, rank: int, fn: Callable, *args: Any, timeout_s: float | None = None) -> Any:
        return juno.get(self.actors[rank].execute.remote(fn, *args), timeout=timeout_s)

    def shutdown(self) -> None:
        """Kill the workers and release their placement group; safe to call twice."""
        for actor in self.actors:
            try:
                juno.kill(actor)
            except Exception:  # noqa: BLE001 - already dead is fine
                pass
        self.actors = []
        if self.pg is not None:
            try:
                remove_placement_group(self.pg)
            except Exception:  # noqa: BLE001 - the cluster may be gone at shutdown
                pass
            self.pg = None


def assign_ranks(infos: list[dict]) -> list[dict]:
    """Given workers sorted by node, give each its world, local and node rank and the node's worker count."""
    ranked: list[dict] = []
    nodes: dict[str, int] = {}
    per_node: dict[str, int] = {}
    for info in infos:
        per_node[info["node_id"]] = per_node.get(info["node_id"], 0) + 1
    local: dict[str, int] = {}
    for rank, info in enumerate(infos):
        node = info["node_id"]
        nodes.setdefault(node, len(nodes))
        ranked.append({**info, "world_rank": rank, "local_rank": local.get(node, 0), "node_rank": nodes[node],
                       "local_world_size": per_node[node], "world_size": len(infos)})
        local[node] = local.get(node, 0) + 1
    return ranked


def worker_env(info: dict, world_size: int, master_addr: str, master_port: int, everyone: list[dict]) -> dict:
    """torchrun's variables for one worker, and the node's union of GPU ids in CUDA_VISIBLE_DEVICES."""
    env = {"RANK": info["world_rank"], "WORLD_SIZE": world_size, "LOCAL_RANK": info["local_rank"],
           "LOCAL_WORLD_SIZE": info["local_world_size"], "NODE_RANK": info["node_rank"],
           "GROUP_RANK": info["node_rank"], "MASTER_ADDR": master_addr, "MASTER_PORT": master_port}
    node_gpus = sorted({str(g) for other in everyone if other["node_id"] == info["node_id"]
                        for g in other["gpu_ids"]}, key=_gpu_sort_key)
    if node_gpus:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(node_gpus)
    return env


def _gpu_sort_key(gpu_id: str) -> tuple:
    return (0, int(gpu_id), "") if gpu_id.isdigit() else (1, 0, gpu_id)

