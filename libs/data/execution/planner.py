"""From the logical plan to physical operators: fusion, and resources checked before anything runs.

Consecutive map-like steps with the same compute and resources fuse into one operator whose
task runs them back to back (a read followed by map_batches and a filter is one task per
block). A map step that asks for more than the cluster has fails here, naming the operator and
the resource, instead of waiting forever; an actor pool that would take every CPU leaves room
for the tasks that feed it, or runs them itself.
"""
from __future__ import annotations

import math

from juno.data.context import DataContext
from juno.data.execution.operators import BarrierOp, InputDataOp, LimitOp, MapLikeOp, PhysicalOp
from juno.data.plan import (ActorPoolStrategy, AllToAllOp, InputOp, LogicalOp, MapOp, ReadOp, TaskPoolStrategy,
                            UnionOp, ZipOp)
from juno.data.plan import LimitOp as LogicalLimit


class UnsatisfiableResourcesError(ValueError):
    """A dataset operator asks for resources that no node of the cluster has."""


def remote_args_with_defaults(args: dict) -> dict:
    """Ray Data's default: one CPU per map task or actor unless the step says otherwise."""
    args = dict(args)
    if "num_cpus" not in args and "num_gpus" not in args:
        args["num_cpus"] = 1
    return args


def check_resources(name: str, args: dict, cluster: dict, count: int = 1) -> None:
    """Fail now if ``count`` tasks/actors of ``args`` can never run on this cluster."""
    wanted = {"CPU": args.get("num_cpus", 0) or 0, "GPU": args.get("num_gpus", 0) or 0}
    wanted.update(args.get("resources") or {})
    if args.get("memory"):
        wanted["memory"] = args["memory"]
    for resource, amount in wanted.items():
        if not amount:
            continue
        have = cluster.get(resource, 0.0)
        if amount > have:
            raise UnsatisfiableResourcesError(
                f"{name} asks for {resource}={amount:g} per {'actor' if count > 1 else 'task'}, but the cluster has "
                f"{resource}={have:g} in all{' (no node has any)' if not have else ''}. Lower the request, or add a "
                f"node that has {resource} (juno.init(num_gpus=...), `juno start --num-gpus ...`).")
        if count > 1 and amount * count > have:
            raise UnsatisfiableResourcesError(
                f"{name} needs {count} actors of {resource}={amount:g} each ({amount * count:g} in all), but the "
                f"cluster has {resource}={have:g}. Use a smaller pool (concurrency=..., or "
                "ActorPoolStrategy(min_size=...)) or fewer resources per actor.")


def plan(tip: LogicalOp, ctx: DataContext, cluster: dict) -> list[PhysicalOp]:
    """Physical operators in topological order; the last one's output is the dataset's."""
    built: dict[int, PhysicalOp] = {}
    consumers: dict[int, int] = {}
    for op in tip.chain():
        for upstream in op.inputs:
            consumers[upstream.id] = consumers.get(upstream.id, 0) + 1
    order: list[PhysicalOp] = []
    preserve = ctx.execution_options.preserve_order

    def add(phys: PhysicalOp) -> PhysicalOp:
        order.append(phys)
        return phys

    def build(op: LogicalOp) -> PhysicalOp:
        if op.id in built:
            return built[op.id]
        if isinstance(op, InputOp):
            phys = add(InputDataOp(op.name, op.bundles))
        elif isinstance(op, ReadOp):
            args = remote_args_with_defaults(op.ray_remote_args)
            check_resources(op.name, args, cluster)
            phys = add(MapLikeOp(op.name, [], [op.stage], compute=TaskPoolStrategy(op.concurrency),
                                 ray_remote_args=args, read_tasks=list(op.read.tasks), preserve_order=preserve))
        elif isinstance(op, MapOp):
            phys = build_map(op, build(op.inputs[0]), consumers.get(op.inputs[0].id, 0) == 1)
        elif isinstance(op, LogicalLimit):
            phys = add(LimitOp(op.name, [build(op.inputs[0])], op.limit))
        elif isinstance(op, AllToAllOp):
            phys = add(BarrierOp(op.name, [build(op.inputs[0])], "all_to_all", op.fn))
        elif isinstance(op, UnionOp):
            phys = add(BarrierOp(op.name, [build(i) for i in op.inputs], "union"))
        elif isinstance(op, ZipOp):
            phys = add(BarrierOp(op.name, [build(i) for i in op.inputs], "zip"))
        else:
            raise TypeError(f"no physical operator for {type(op).__name__}")
        built[op.id] = phys
        return phys

    def build_map(op: MapOp, upstream: PhysicalOp, sole_consumer: bool) -> PhysicalOp:
        args = remote_args_with_defaults(op.ray_remote_args)
        pool = op.compute if isinstance(op.compute, ActorPoolStrategy) else None
        if pool is not None:
            low, high = pool.bounds
            check_resources(op.name, args, cluster, count=low)
            pool = fit_pool(op, pool, args, upstream, cluster)
        else:
            check_resources(op.name, args, cluster)
        task_upstream = (isinstance(upstream, MapLikeOp) and not upstream.is_actor_pool and sole_consumer
                         and upstream is order[-1])
        if pool is None and task_upstream and upstream.ray_remote_args == args \
                and upstream.compute == op.compute:
            fuse_into(upstream, op)
            return upstream
        if pool is not None and task_upstream and starves(pool, args, upstream, cluster):
            # The pool takes every CPU: the steps feeding it run inside its actors (on its budget).
            order.pop()
            fused = MapLikeOp(f"{upstream.name}->{op.name}", upstream.inputs, upstream.stages + [op.stage],
                              compute=pool, ray_remote_args=args, min_rows_per_bundle=op.min_rows_per_bundle,
                              read_tasks=list(upstream.read_tasks), preserve_order=preserve)
            fused.input_queues = upstream.input_queues
            fused.inputs_done = upstream.inputs_done
            return add(fused)
        return add(MapLikeOp(op.name, [upstream], [op.stage], compute=pool or op.compute, ray_remote_args=args,
                             min_rows_per_bundle=op.min_rows_per_bundle, preserve_order=preserve))

    build(tip)
    for phys in order:
        if isinstance(phys, LimitOp) or (isinstance(phys, BarrierOp) and phys.kind == "zip"):
            keep_order_upstream(phys)
    return order


def keep_order_upstream(op: PhysicalOp) -> None:
    """Zip pairs rows by position and limit keeps the first rows: the operators feeding them
    release outputs in input order (up to the nearest barrier, whose output is ordered)."""
    for upstream in op.inputs:
        if isinstance(upstream, BarrierOp) and upstream.kind != "union":
            continue
        upstream.preserve_order = True
        keep_order_upstream(upstream)


def fuse_into(upstream: MapLikeOp, op: MapOp) -> None:
    upstream.stages = upstream.stages + [op.stage]
    upstream.name = f"{upstream.name}->{op.name}"
    if op.min_rows_per_bundle is not None and not upstream.read_tasks:
        upstream.min_rows_per_bundle = max(upstream.min_rows_per_bundle or 0, op.min_rows_per_bundle)


def starves(pool: ActorPoolStrategy, args: dict, upstream: MapLikeOp, cluster: dict) -> bool:
    """Whether the pool's smallest size leaves too few CPUs for one task of ``upstream``."""
    cpus = cluster.get("CPU", 0.0)
    need = upstream.ray_remote_args.get("num_cpus", 0) or 0
    return bool(need) and pool.bounds[0] * (args.get("num_cpus", 0) or 0) + need > cpus


def fit_pool(op: MapOp, pool: ActorPoolStrategy, args: dict, upstream: PhysicalOp,
             cluster: dict) -> ActorPoolStrategy:
    """The pool's largest size, capped by the CPUs there are (less one feeding task's)."""
    low, high = pool.bounds
    per_actor = args.get("num_cpus", 0) or 0
    if not per_actor:
        return ActorPoolStrategy(min_size=low, max_size=high or low,
                                 max_tasks_in_flight_per_actor=pool.max_tasks_in_flight_per_actor)
    cpus = cluster.get("CPU", 0.0)
    feeding = upstream.ray_remote_args.get("num_cpus", 0) if isinstance(upstream, MapLikeOp) \
        and not upstream.is_actor_pool else 0
    room = max(low, math.floor((cpus - (feeding or 0)) / per_actor))
    cap = room if high is None else min(high, max(low, room))
    return ActorPoolStrategy(min_size=low, max_size=max(low, cap),
                             max_tasks_in_flight_per_actor=pool.max_tasks_in_flight_per_actor)
