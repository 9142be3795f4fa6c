"""Juno Data's planning and dispatch decisions, without processes: fusion, resource checks,
the memory budget, ordering, limits (libs/data/plan.py, execution/planner.py, execution/operators.py)."""
import pyarrow as pa
import pytest

from juno.data.block import RefBundle, metadata_of
from juno.data.context import DataContext
from juno.data.execution.operators import Budget, ExecutionState, LimitOp, MapLikeOp
from juno.data.execution.planner import UnsatisfiableResourcesError, plan
from juno.data.plan import ActorPoolStrategy, InputOp, LimitOp as LogicalLimit, MapOp, ReadOp, TaskPoolStrategy, \
    ZipOp, compute_from
from juno.data.read_task import Read, ReadTask
from juno.data.transforms import BatchStage, ReadStage, TableStage

CLUSTER = {"CPU": 2.0, "object_store_memory": 1e9}


def bundle(rows: int, tag: str = "r") -> RefBundle:
    table = pa.table({"x": list(range(rows))})
    return RefBundle(((f"{tag}{rows}", metadata_of(table)),))


def read_op(n: int = 4) -> ReadOp:
    tasks = [ReadTask(lambda: iter(()), 10, 80) for _ in range(n)]
    return ReadOp("ReadRange", read=Read("ReadRange", tasks), stage=ReadStage("ReadRange"))


def map_op(upstream, name="MapBatches(f)", compute=None, **args) -> MapOp:
    return MapOp(name, [upstream], stage=TableStage(name, fn=lambda t: t), compute=compute or TaskPoolStrategy(),
                 ray_remote_args=args)


def test_consecutive_task_maps_fuse_into_the_read():
    tip = map_op(map_op(read_op(), "MapBatches(f)"), "Filter(g)")
    ops = plan(tip, DataContext(), CLUSTER)
    assert len(ops) == 1
    assert ops[0].name == "ReadRange->MapBatches(f)->Filter(g)"
    assert [type(s).__name__ for s in ops[0].stages] == ["ReadStage", "TableStage", "TableStage"]


def test_different_resources_or_an_actor_pool_break_fusion():
    ops = plan(map_op(read_op(), num_cpus=0.5), DataContext(), CLUSTER)
    assert [op.name for op in ops] == ["ReadRange", "MapBatches(f)"]
    pool = map_op(read_op(), compute=ActorPoolStrategy(size=1))
    ops = plan(pool, DataContext(), CLUSTER)
    assert [op.name for op in ops] == ["ReadRange", "MapBatches(f)"] and ops[1].is_actor_pool


def test_a_pool_that_takes_every_cpu_runs_its_feeding_read_itself():
    """Two one-CPU actors on two CPUs would leave the read tasks no CPU (a known Ray hang)."""
    ops = plan(map_op(read_op(), compute=ActorPoolStrategy(size=2)), DataContext(), CLUSTER)
    assert len(ops) == 1 and ops[0].is_actor_pool and ops[0].name == "ReadRange->MapBatches(f)"
    assert len(ops[0].read_tasks) == 4


def test_a_growing_pool_is_capped_to_leave_a_cpu_for_its_feeders():
    ops = plan(map_op(read_op(), compute=ActorPoolStrategy(min_size=1, max_size=8)), DataContext(), CLUSTER)
    assert ops[1].compute.bounds == (1, 1)


def test_requests_the_cluster_cannot_grant_fail_naming_the_step():
    with pytest.raises(UnsatisfiableResourcesError, match=r"MapBatches\(f\) asks for GPU=1 .* GPU=0"):
        plan(map_op(read_op(), num_gpus=1), DataContext(), CLUSTER)
    with pytest.raises(UnsatisfiableResourcesError, match="needs 3 actors"):
        plan(map_op(read_op(), compute=ActorPoolStrategy(size=3)), DataContext(), CLUSTER)


def test_compute_arguments_as_ray_takes_them():
    assert compute_from(None, None, False) == TaskPoolStrategy()
    assert compute_from(None, 3, True) == ActorPoolStrategy(size=3)
    assert compute_from(None, (1, 4), True).bounds == (1, 4)
    assert compute_from(None, 2, False) == TaskPoolStrategy(size=2)
    with pytest.raises(ValueError, match="callable class needs an actor pool"):
        compute_from(None, None, True)
    with pytest.raises(ValueError, match="either compute= or concurrency="):
        compute_from(ActorPoolStrategy(size=1), 2, True)
    with pytest.raises(ValueError, match="min_size .* larger than max_size"):
        ActorPoolStrategy(min_size=3, max_size=2)


def test_limit_and_zip_make_their_feeders_keep_order():
    ops = plan(LogicalLimit("Limit", [map_op(read_op())], limit=5), DataContext(), CLUSTER)
    assert ops[0].preserve_order
    left, right = map_op(read_op()), map_op(read_op())
    ops = plan(ZipOp("Zip", [left, right]), DataContext(), CLUSTER)
    assert all(op.preserve_order for op in ops[:-1])


def test_map_groups_small_blocks_up_to_its_batch_size():
    op = MapLikeOp("MapBatches(f)", [], [BatchStage("MapBatches(f)", fn=None, batch_size=25)],
                   compute=TaskPoolStrategy(), ray_remote_args={}, min_rows_per_bundle=25)
    op.input_queues = [__import__("collections").deque()]
    op.inputs_done = [False]
    for _ in range(3):
        op.add_input(bundle(10))
    work = op.next_work()
    assert work.rows == 30 and len(work.source) == 3
    op.add_input(bundle(10))
    assert not op.has_work()  # 10 rows < 25 and more may come
    op.mark_input_done()
    assert op.next_work().rows == 10


def test_outputs_keep_input_order_when_asked():
    op = MapLikeOp("M", [], [], compute=TaskPoolStrategy(), ray_remote_args={}, preserve_order=True,
                   read_tasks=[ReadTask(lambda: iter(()))] * 3)
    works = [op.next_work() for _ in range(3)]
    op.finish_work(works[2].seq, [bundle(3, "c")])
    op.finish_work(works[0].seq, [bundle(1, "a")])
    assert [b.refs[0] for b in op.outputs] == ["a1"]
    op.finish_work(works[1].seq, [bundle(2, "b")])
    assert [b.refs[0] for b in op.outputs] == ["a1", "b2", "c3"]
    assert op.completed()


def test_the_memory_budget_holds_back_new_work_but_never_stalls():
    source = MapLikeOp("Read", [], [], compute=TaskPoolStrategy(), ray_remote_args={},
                       read_tasks=[ReadTask(lambda: iter(()), 10, 100)] * 10)
    state = ExecutionState([source], Budget(object_store_bytes=250, max_in_flight=8))
    started = 0
    while source.has_work() and state.may_dispatch(source, 100):
        work = source.next_work()
        state.in_flight_bytes[work.seq] = source.expected_output_bytes(work.size_bytes)
        started += 1
    assert started == 2  # a third would make 300 bytes > 250
    assert source.metrics.held_back == 1
    state.in_flight_bytes.clear()
    source.in_flight = 0
    source.outputs.extend([bundle(1000)] * 4)  # far over budget, nothing running: one may still start
    assert state.may_dispatch(source, 100)


def test_task_pool_size_caps_work_in_flight():
    op = MapLikeOp("M", [], [], compute=TaskPoolStrategy(size=2), ray_remote_args={},
                   read_tasks=[ReadTask(lambda: iter(()))] * 5)
    state = ExecutionState([op], Budget(1e12, 100))
    op.next_work(), op.next_work()
    assert not state.may_dispatch(op, 0)


def test_limit_passes_whole_bundles_then_marks_the_one_to_cut():
    op = LimitOp("Limit", [], 25)
    op.input_queues = [__import__("collections").deque([bundle(10, "a"), bundle(10, "b"), bundle(10, "c"),
                                                        bundle(10, "d")])]
    op.inputs_done = [True]
    op.take_inputs()
    assert [b.refs[0] for b in op.outputs] == ["a10", "b10"]
    assert op.pending_cut[1] == 5 and op.reached
    assert not op.input_queues[0]  # the rest is dropped


def test_input_data_is_all_output_from_the_start():
    ops = plan(InputOp("FromItems", bundles=[bundle(3), bundle(4)]), DataContext(), CLUSTER)
    assert [b.num_rows for b in ops[0].outputs] == [3, 4] and ops[0].completed()
