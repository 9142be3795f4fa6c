"""What a config asks of the cluster, checked before any actor is created (Ray would wait forever).

Pure: the cluster's figures come in, the number of env runners (and a warning) comes out.
"""
from __future__ import annotations

from typing import Any


def plan_env_runners(config: Any, cluster: dict, available: dict, num_nodes: int,
                     requested: int | None = None) -> tuple[int, str | None]:
    """How many env runners to start. GPUs the cluster does not have: ``ValueError`` with the
    numbers. More runners than CPUs left: on one node, fewer runners and a warning naming both
    numbers; on several nodes, an error when even the whole cluster's CPUs would not do."""
    runners = config.num_env_runners if requested is None else requested
    learner_gpus = float(config.learner_gpus) * max(1, config.num_learners)  # the driver's learner, or each actor
    runner_gpus = runners * config.num_gpus_per_env_runner
    total_gpus = float(cluster.get("GPU", 0))
    if learner_gpus + runner_gpus > total_gpus + 1e-9:
        parts = []
        if learner_gpus:
            parts.append(f"{learner_gpus:g} for {max(1, config.num_learners)} learner(s) (num_gpus_per_learner / "
                         "resources(num_gpus=))")
        if runner_gpus:
            parts.append(f"{runner_gpus:g} for {runners} env runners (num_gpus_per_env_runner)")
        raise ValueError(f"The config asks for {learner_gpus + runner_gpus:g} GPUs ({', '.join(parts)}) but the cluster "
                         f"has {total_gpus:g}. Lower the GPU settings, or start Juno with GPUs "
                         f"(juno.init(num_gpus=...)).")
    per_runner = float(config.num_cpus_per_env_runner)
    if runners == 0 or per_runner == 0:
        return runners, None
    learner_cpus = float(config.num_cpus_per_learner) * config.num_learners
    cpus_left = float(available.get("CPU", 0)) - learner_cpus
    if runners * per_runner <= cpus_left + 1e-9:
        return runners, None
    if num_nodes > 1:
        total = float(cluster.get("CPU", 0)) - learner_cpus
        if runners * per_runner > total + 1e-9:
            raise ValueError(f"num_env_runners={runners} needs {runners * per_runner:g} CPUs but the cluster has "
                             f"{total:g} for env runners: lower num_env_runners or add nodes.")
        return runners, None
    fit = max(0, int((cpus_left + 1e-9) // per_runner))
    where = f"{fit} env runner{'s' if fit != 1 else ''}" if fit else "no env runner actors (sampling in the driver)"
    return fit, (f"num_env_runners={runners} asks for {runners * per_runner:g} CPUs but this local cluster has "
                 f"{max(cpus_left, 0):g} CPUs left for env runners: using {where}.")
