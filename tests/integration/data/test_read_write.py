"""Files through a real cluster: each format written by sinks in worker tasks and read back by
juno.data's readers, with the options that change what the workers do (projection, filters,
partitions, include_paths), empty inputs and a failed write's clean-up."""
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import juno.data as rd
from juno.data.datasource import api

JUNO_SHARED_INIT = {"num_cpus": 2}


def write(ds, sink):
    """Write through ``sink``; the paths it wrote (as the sink's commit recorded them)."""
    ds._write(sink)
    return [sink.written]


def sample(n=20):
    return rd.from_items([{"id": i, "name": f"n{i}", "group": "even" if i % 2 == 0 else "odd"} for i in range(n)],
                         override_num_blocks=3)


def test_parquet_round_trip_with_projection_filter_and_partitions(cluster, tmp_path):
    out = str(tmp_path / "pq")
    write(sample(), api.parquet_sink(out, partition_cols=["group"]))
    assert sorted(os.listdir(out)) == ["group=even", "group=odd"]
    ds = rd.read_parquet(out)
    assert ds.count() == 20  # from the footers, nothing read
    assert sorted(r["id"] for r in ds.take_all()) == list(range(20))
    assert ds.schema().names == ["id", "name", "group"]
    odd = rd.read_parquet(out, columns=["id"], filter=[("group", "=", "odd"), ("id", ">", 10)]).take_all()
    assert sorted(r["id"] for r in odd) == [11, 13, 15, 17, 19] and set(odd[0]) == {"id"}


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_csv_and_json_lines_round_trip_with_paths(cluster, tmp_path, fmt):
    out = str(tmp_path / fmt)
    sink = api.csv_sink(out) if fmt == "csv" else api.json_sink(out)
    written = write(sample(), sink)
    paths = sorted(p for block in written for p in block)
    assert len(paths) == 3 and all(os.path.basename(p).startswith(sink.dataset_uuid) for p in paths)
    read = rd.read_csv if fmt == "csv" else rd.read_json
    rows = read(out, include_paths=True).take_all()
    assert sorted((r["id"], r["name"], r["group"]) for r in rows) == [
        (i, f"n{i}", "even" if i % 2 == 0 else "odd") for i in range(20)]
    assert {r["path"] for r in rows} == set(paths)


def test_numpy_round_trip_keeps_the_array_shape(cluster, tmp_path):
    out = str(tmp_path / "npy")
    write(rd.from_numpy(np.arange(24, dtype=np.float32).reshape(6, 2, 2)), api.numpy_sink(out, column="data"))
    ds = rd.read_numpy(out)
    batch = ds.take_batch(10)
    assert batch["data"].shape == (6, 2, 2)
    np.testing.assert_array_equal(np.sort(batch["data"].ravel()), np.arange(24, dtype=np.float32))


def test_text_and_binary_files_and_a_transform_after_the_read(cluster, tmp_path):
    (tmp_path / "a.txt").write_text("alpha\n\nbeta\n")
    (tmp_path / "b.txt").write_text("gamma\n")
    lines = rd.read_text(str(tmp_path), drop_empty_lines=True).map(lambda r: {"n": len(r["text"])}).take_all()
    assert sorted(r["n"] for r in lines) == [4, 5, 5]
    files = rd.read_binary_files(str(tmp_path / "*.txt"), include_paths=True).take_all()
    assert sorted((os.path.basename(r["path"]), r["bytes"]) for r in files) == [
        ("a.txt", b"alpha\n\nbeta\n"), ("b.txt", b"gamma\n")]


def test_empty_directory_and_empty_files_give_empty_datasets(cluster, tmp_path):
    assert rd.read_csv(str(tmp_path)).count() == 0
    assert rd.read_csv(str(tmp_path)).take_all() == []
    pq.write_table(pa.table({"a": pa.array([], pa.int64())}), tmp_path / "e.parquet")
    ds = rd.read_parquet(str(tmp_path))
    assert ds.count() == 0 and ds.take_all() == [] and ds.schema().names == ["a"]


def test_missing_paths_and_a_non_empty_target_are_clear_errors(cluster, tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        rd.read_parquet(str(tmp_path / "nope"))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        write(sample(4), api.parquet_sink(str(tmp_path / "out")))
    write(sample(4), api.parquet_sink(str(tmp_path / "out"), mode="append"))
    assert rd.read_parquet(str(tmp_path / "out"), file_extensions=["parquet"]).count() == 4
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


def test_a_block_that_fails_to_write_leaves_nothing_behind(cluster, tmp_path):
    out = tmp_path / "bad"
    ds = rd.from_numpy(np.ones((4, 2, 2)))  # a tensor column: CSV cannot hold it
    with pytest.raises(Exception, match="cannot be written as CSV"):
        write(ds, api.csv_sink(str(out)))
    assert not out.exists()


def test_dataset_write_methods(cluster, tmp_path):
    sample().write_parquet(str(tmp_path / "m"))
    assert rd.read_parquet(str(tmp_path / "m")).count() == 20
