"""File sinks as Dataset._write drives them (prepare, write_block per block in a pickled copy,
commit or abort), on real files in tmp_path: names, modes, partitions, atomic files, clean-up."""
import json
import os
import pickle

import numpy as np
import pyarrow.parquet as pq
import pytest

from juno.data.block import concat, from_batch
from juno.data.datasource import api
from juno.data.datasource.sinks import FilenameProvider, SaveMode, numbered


def table(n=6, start=0):
    return from_batch({"id": np.arange(start, start + n), "g": np.array(["a", "b"] * (n // 2), dtype=object)})


def write(sink, blocks, fail_at=None):
    """What Dataset._write does: prepare on the driver, each block in a (pickled) worker copy."""
    sink.prepare()
    worker = pickle.loads(pickle.dumps(sink))
    written = []
    for i, block in enumerate(blocks):
        if i == fail_at:
            sink.abort(written)
            return None
        written.append(worker.write_block(block, i, 0))
    sink.commit(written)
    return written


def files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


def test_parquet_files_have_deterministic_names_one_per_block(tmp_path):
    sink = api.parquet_sink(str(tmp_path / "out"))
    written = write(sink, [table(), table(0), table(4, start=6)])
    uuid = sink.dataset_uuid
    assert files(tmp_path / "out") == [f"{uuid}_000000_000000.parquet", f"{uuid}_000002_000000.parquet"]
    assert written[1] == []  # an empty block writes no file
    assert pq.read_table(tmp_path / "out").column("id").to_pylist() == list(range(10))


def test_the_default_mode_refuses_a_non_empty_target_and_the_others_do_what_they_say(tmp_path):
    out = str(tmp_path / "out")
    write(api.parquet_sink(out), [table()])
    first = files(out)
    with pytest.raises(FileExistsError, match=r"exists and is not empty. Pass mode=\"overwrite\""):
        api.parquet_sink(out).prepare()
    ignored = api.parquet_sink(out, mode="ignore")
    assert write(ignored, [table()]) == [[]] and not ignored.should_write and files(out) == first
    write(api.parquet_sink(out, mode=SaveMode.APPEND), [table()])
    assert len(files(out)) == 2 and pq.read_table(out).num_rows == 12
    write(api.parquet_sink(out, mode="overwrite"), [table(2)])
    assert len(files(out)) == 1 and pq.read_table(out).num_rows == 2
    with pytest.raises(ValueError, match=r"mode must be one of \['error', 'overwrite', 'append', 'ignore'\]"):
        api.parquet_sink(out, mode="replace")


def test_an_empty_existing_directory_is_written_into_and_a_file_target_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    write(api.csv_sink(str(tmp_path / "empty")), [table()])
    assert len(files(tmp_path / "empty")) == 1
    (tmp_path / "f").write_text("x")
    with pytest.raises(FileExistsError, match="is a file"):
        api.csv_sink(str(tmp_path / "f")).prepare()


def test_try_create_dir_false_needs_the_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="try_create_dir=True"):
        api.json_sink(str(tmp_path / "a" / "b"), try_create_dir=False).prepare()
    write(api.json_sink("local://" + str(tmp_path / "a" / "b")), [table()])
    assert len(files(tmp_path / "a" / "b")) == 1


def test_max_rows_per_file_cuts_a_block_into_numbered_files(tmp_path):
    sink = api.csv_sink(str(tmp_path), max_rows_per_file=4)
    written = write(sink, [table(10)])
    assert [os.path.basename(p) for p in written[0]] == [
        f"{sink.dataset_uuid}_000000_000000_00000{i}.csv" for i in range(3)]
    assert numbered("x.csv", 2) == "x_000002.csv" and numbered("x", 1) == "x_000001"
    assert api.csv_sink(str(tmp_path), num_rows_per_file=5).min_rows_per_write == 5  # Ray's older name
    with pytest.raises(ValueError, match="min_rows_per_file .* above max_rows_per_file"):
        api.csv_sink(str(tmp_path), min_rows_per_file=5, max_rows_per_file=2)
    with pytest.raises(ValueError, match="max_rows_per_file must be a positive int"):
        api.csv_sink(str(tmp_path), max_rows_per_file=0)


def test_partition_cols_write_hive_directories_that_read_back(tmp_path):
    t = from_batch({"id": np.arange(5), "g": np.array(["a", "b/c", "a", None, "b/c"], dtype=object)})
    write(api.parquet_sink(str(tmp_path), partition_cols=["g"]), [t])
    dirs = sorted({os.path.dirname(f) for f in files(tmp_path)})
    assert dirs == ["g=__HIVE_DEFAULT_PARTITION__", "g=a", "g=b%2Fc"]
    assert pq.read_table(tmp_path / "g=a").to_pylist() == [{"id": 0}, {"id": 2}]  # the files omit "g"
    read = api.parquet_read(str(tmp_path))  # the reader parses the directories back
    read_back = concat([block for task in read.tasks for block in task()]).to_pylist()
    assert sorted((r["id"], r["g"]) for r in read_back) == [(0, "a"), (1, "b/c"), (2, "a"), (3, None), (4, "b/c")]
    with pytest.raises(ValueError, match=r"partition_cols \['nope'\] are not columns"):
        write(api.parquet_sink(str(tmp_path / "x"), partition_cols=["nope"]), [t])


class Named(FilenameProvider):
    def get_filename_for_block(self, block, task_index, block_index):
        return f"part-{task_index}-{block_index}.csv"


class Bad(FilenameProvider):
    def get_filename_for_block(self, block, task_index, block_index):
        return ".hidden"


def test_a_filename_provider_names_the_files(tmp_path):
    write(api.csv_sink(str(tmp_path / "ok"), filename_provider=Named()), [table(), table()])
    assert files(tmp_path / "ok") == ["part-0-0.csv", "part-1-0.csv"]
    with pytest.raises(ValueError, match="Bad.get_filename_for_block returned '.hidden'"):
        write(api.csv_sink(str(tmp_path / "bad"), filename_provider=Bad()), [table()])


def test_abort_removes_what_this_write_made_and_nothing_else(tmp_path):
    out = tmp_path / "out"
    write(api.parquet_sink(str(out)), [table()])
    before = files(out)
    sink = api.parquet_sink(str(out), mode="append")
    sink.prepare()
    # A worker killed mid-file leaves its hidden temporary file; a finished block left a file.
    (out / f".x.parquet.{sink.dataset_uuid}.tmp").write_text("half")
    write_one = pickle.loads(pickle.dumps(sink)).write_block(table(), 0, 0)
    assert len(files(out)) == 3
    sink.abort([write_one])
    assert files(out) == before
    fresh = api.parquet_sink(str(tmp_path / "new"))
    assert write(fresh, [table(), table()], fail_at=1) is None
    assert not (tmp_path / "new").exists()  # the write made the directory, so it goes too


def test_a_failing_block_leaves_no_file_that_looks_complete(tmp_path):
    bad = from_batch({"v": np.ones((2, 2))})  # a tensor column: CSV cannot hold it
    sink = api.csv_sink(str(tmp_path))
    sink.prepare()
    with pytest.raises(ValueError, match=r"column 'v' .* cannot be written as CSV"):
        sink.write_block(bad, 0, 0)
    assert files(tmp_path) == []


def test_json_lines_keep_every_digit_and_numpy_writes_one_column(tmp_path):
    t = from_batch({"x": np.array([0.1 + 0.2, 1 / 3]), "v": np.arange(4.0).reshape(2, 2)})
    (path,), = write(api.json_sink(str(tmp_path / "j")), [t])
    lines = [json.loads(line) for line in open(path)]
    assert lines == [{"x": 0.1 + 0.2, "v": [0.0, 1.0]}, {"x": 1 / 3, "v": [2.0, 3.0]}]
    (path,), = write(api.json_sink(str(tmp_path / "p"), double_precision=3), [t.select(["x"])])  # pandas' args
    assert open(path).read().splitlines() == ['{"x":0.3}', '{"x":0.333}']
    (path,), = write(api.numpy_sink(str(tmp_path / "n"), column="v"), [t])
    np.testing.assert_array_equal(np.load(path), np.arange(4.0).reshape(2, 2))
    with pytest.raises(ValueError, match=r"write_numpy\(column='w'\): no such column"):
        write(api.numpy_sink(str(tmp_path / "m"), column="w"), [t])
    with pytest.raises(TypeError, match="unexpected arguments"):
        api.csv_sink(str(tmp_path), delimiter=";")
