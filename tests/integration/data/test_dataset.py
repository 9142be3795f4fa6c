"""Juno Data end to end on a real cluster: building, transforming and consuming datasets
(libs/data/dataset.py, read_api.py, the executor)."""
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

JUNO_SHARED_INIT = {"num_cpus": 2}


@pytest.fixture
def rd(cluster):
    import juno.data

    return juno.data


def test_a_dataset_shows_its_plan_and_schema_without_running(rd):
    ds = rd.range(100).map_batches(lambda b: b).filter(expr="id > 3")
    text = repr(ds)
    assert text == ("Filter(id > 3)\n+- MapBatches(<lambda>)\n   +- Dataset(num_rows=100, schema={id: int64})")
    assert repr(rd.range(100)) == "Dataset(num_rows=100, schema={id: int64})"
    assert "<pre" in ds._repr_html_() and "not executed" in ds._repr_html_()
    assert ds.stats().startswith("This dataset has not been executed yet")


def test_range_map_batches_filter_and_sum(rd):
    ds = rd.range(10_000).map_batches(lambda b: {"id": b["id"] * 2}).filter(expr="id % 3 == 0")
    rows = ds.take_all()
    assert sorted(r["id"] for r in rows) == [i * 2 for i in range(10_000) if (i * 2) % 3 == 0]
    assert ds.count() == len(rows)
    assert ds.schema().names == ["id"] and ds.columns() == ["id"]
    assert "ReadRange->MapBatches(<lambda>)->Filter(id % 3 == 0)" in ds.stats()


@pytest.mark.parametrize("fmt", ["numpy", "pandas", "pyarrow"])
def test_map_batches_in_each_format(rd, fmt):
    def add_one(batch):
        if fmt == "pyarrow":
            return pa.table({"id": pa.compute.add(batch.column("id"), 1)})
        batch["id"] = batch["id"] + 1
        return batch

    out = rd.range(50).map_batches(add_one, batch_format=fmt, batch_size=7).take_all()
    assert sorted(r["id"] for r in out) == list(range(1, 51))


def test_row_functions_and_column_operations(rd):
    ds = rd.from_items([{"a": i, "b": str(i)} for i in range(6)])
    assert sorted(r["c"] for r in ds.map(lambda r: {"c": r["a"] * 10}).take_all()) == [0, 10, 20, 30, 40, 50]
    assert len(ds.flat_map(lambda r: [r, r]).take_all()) == 12
    assert sorted(r["a"] for r in ds.filter(lambda r: r["a"] % 2 == 0).take_all()) == [0, 2, 4]
    added = ds.add_column("d", lambda df: df["a"] + 100)
    assert sorted(r["d"] for r in added.take_all()) == [100, 101, 102, 103, 104, 105]
    assert ds.drop_columns(["b"]).columns() == ["a"]
    assert ds.select_columns(["b"]).columns() == ["b"]
    assert ds.rename_columns({"a": "x"}).columns() == ["x", "b"]
    with pytest.raises(KeyError, match=r"no column \['zz'\] .* columns are \['a', 'b'\]"):
        ds.select_columns(["zz"]).take_all()


def test_limit_stops_the_upstream_work(rd):
    ds = rd.range(10_000, override_num_blocks=100).map_batches(lambda b: b).limit(15)
    assert [r["id"] for r in ds.take_all()] == list(range(15))
    executed = int(ds.stats().split(": ", 1)[1].split(" tasks")[0])
    assert executed < 100
    assert [r["id"] for r in rd.range(1000).take(3)] == [0, 1, 2]


def test_union_and_zip(rd):
    assert rd.range(5).union(rd.range(3), rd.range(2)).count() == 10
    zipped = rd.range(20, override_num_blocks=3).zip(
        rd.range(20, override_num_blocks=5).map_batches(lambda b: {"id": b["id"] * 10}))
    assert zipped.take_all() == [{"id": i, "id_1": i * 10} for i in range(20)]
    with pytest.raises(ValueError, match=r"different numbers of rows \(5 and 3\)"):
        rd.range(5).zip(rd.range(3)).take_all()


def test_callable_class_on_an_actor_pool(rd):
    class AddK:
        def __init__(self, k):
            self.k = k

        def __call__(self, batch):
            return {"id": batch["id"] + self.k}

    out = rd.range(200).map_batches(AddK, fn_constructor_args=(1000,), concurrency=(1, 2), batch_size=16)
    assert sorted(r["id"] for r in out.take_all()) == list(range(1000, 1200))
    with pytest.raises(ValueError, match="callable class needs an actor pool"):
        rd.range(3).map_batches(AddK)


def test_a_failing_udf_names_the_step_the_function_and_the_batch(rd):
    def explode(batch):
        raise ValueError("bad row")

    with pytest.raises(rd.UserCodeError) as info:
        rd.range(10, override_num_blocks=1).map_batches(explode).take_all()
    text = str(info.value)
    assert "MapBatches(explode): explode raised ValueError: bad row" in text
    assert "a dict of 10 rows with columns ['id']" in text
    with pytest.raises(TypeError, match="must return a batch"):
        rd.range(10).map_batches(lambda b: 5).take_all()


def test_resources_no_node_has_fail_within_seconds(rd):
    start = time.monotonic()
    with pytest.raises(rd.UnsatisfiableResourcesError, match="GPU=1"):
        rd.range(10).map_batches(lambda b: b, num_gpus=1).take_all()
    with pytest.raises(rd.UnsatisfiableResourcesError, match="needs 5 actors"):
        rd.range(10).map_batches(type("F", (), {"__call__": lambda s, b: b}), concurrency=5).take_all()
    assert time.monotonic() - start < 10


def test_values_from_the_driver_round_trip(rd):
    frame = pd.DataFrame({"x": [1, 2, 3], "y": ["a", "b", "c"]})
    assert rd.from_pandas(frame).to_pandas().equals(frame)
    assert rd.from_arrow(pa.Table.from_pandas(frame)).count() == 3
    arr = np.arange(12).reshape(4, 3)
    got = rd.from_numpy(arr).take_batch(10)["data"]
    assert np.array_equal(got, arr)
    assert [r["item"] for r in rd.from_items([1, 2, 3]).take_all()] == [1, 2, 3]
    refs = rd.range(10, override_num_blocks=2).to_numpy_refs(column="id")
    import juno

    assert sorted(np.concatenate(juno.get(refs)).tolist()) == list(range(10))


def test_empty_datasets(rd):
    assert rd.range(0).take_all() == [] and rd.range(0).count() == 0
    none_left = rd.range(100).filter(expr="id < 0")
    assert none_left.count() == 0 and none_left.take(5) == []
    assert rd.from_items([]).count() == 0


def test_materialize_keeps_blocks_and_counts_without_running(rd):
    ds = rd.range(1000, override_num_blocks=4).map_batches(lambda b: b).materialize()
    assert ds.num_blocks() == 4 and ds.count() == 1000
    assert type(ds).__name__ == "MaterializedDataset"
    assert sorted(r["id"] for r in ds.take_all()) == list(range(1000))


def test_breaking_out_of_a_stream_cancels_what_is_running(rd):
    import juno

    def slow(batch):
        time.sleep(0.2)
        return batch

    stream = rd.range(200, override_num_blocks=40).map_batches(slow).iter_internal_ref_bundles()
    next(stream)
    stream.close()
    before = juno.available_resources().get("CPU", 0)
    deadline = time.monotonic() + 10
    while juno.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert juno.available_resources().get("CPU", 0) == 2, before


def test_a_task_cuts_its_output_into_blocks_of_the_target_size(rd):
    ctx = rd.DataContext.get_current()
    old = ctx.target_max_block_size
    ctx.target_max_block_size = 8 * 1024  # 1,024 int64 rows
    try:
        ds = rd.range(10_000, override_num_blocks=1).map_batches(lambda b: b).materialize()
    finally:
        ctx.target_max_block_size = old
    sizes = [m.num_rows for b in ds._op.bundles for m in b.metadata]
    assert len(sizes) >= 8 and max(sizes) <= 1536 and sum(sizes) == 10_000
    assert sorted(r["id"] for r in ds.take_all()) == list(range(10_000))


def test_a_filter_that_drops_every_row_keeps_the_schema(rd):
    ds = rd.range(100).filter(expr="id < 0").materialize()
    assert ds.count() == 0 and ds.columns() == ["id"]


def test_the_remaining_ways_in_and_out(rd, capsys, tmp_path):
    import juno
    import torch

    items = rd.from_torch(torch.utils.data.TensorDataset(torch.arange(4.0), torch.arange(4)))
    assert items.count() == 4 and [len(r["item"]) for r in items.take_all()] == [2, 2, 2, 2]
    frames = [pd.DataFrame({"x": [1, 2]}), pd.DataFrame({"x": [3]})]
    assert sorted(r["x"] for r in rd.from_pandas_refs([juno.put(f) for f in frames]).take_all()) == [1, 2, 3]
    tables = [pa.table({"y": [5, 6]})]
    assert rd.from_arrow_refs([juno.put(t) for t in tables]).take_all() == [{"y": 5}, {"y": 6}]
    assert rd.from_numpy_refs([juno.put(np.arange(3))]).take_batch(5)["data"].tolist() == [0, 1, 2]
    ds = rd.range(6, override_num_blocks=2)
    ds.show(2)
    assert capsys.readouterr().out == "{'id': 0}\n{'id': 1}\n"
    assert ds.size_bytes() == 48 and sorted(r["id"] for r in ds.iter_rows()) == list(range(6))
    assert sorted(pd.concat(juno.get(ds.to_pandas_refs()))["id"]) == list(range(6))
    (tmp_path / "a.csv").write_text("k\n1\n2\n")
    assert rd.read_csv(str(tmp_path / "a.csv")).input_files() == [str(tmp_path / "a.csv")]
