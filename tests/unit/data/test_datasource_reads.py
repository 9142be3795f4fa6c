"""The file readers' Read objects, their tasks run here as a worker would run them (pickled,
then called): formats, options, empty and mixed files, parquet projection, filters and pruning."""
import json
import os
import pickle
import sys

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import pytest

from juno.data.block import SchemaMismatchError, concat, to_batch
from juno.data.datasource import api


def run(read):
    """Every block the read's tasks yield, each task pickled and called as in a worker."""
    return [block for task in read.tasks for block in pickle.loads(pickle.dumps(task.read_fn))()]


def rows(read):
    return concat(run(read)).to_pylist()


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return str(path)


# ---------------------------------------------------------------------------- row formats
def test_csv_with_include_paths_an_empty_file_and_options_passed_to_pyarrow(tmp_path):
    import pyarrow.csv as pacsv

    a = write(tmp_path / "a.csv", "x,y\n1,a\n2,b\n")
    write(tmp_path / "empty.csv", "")
    read = api.csv_read(str(tmp_path), include_paths=True, override_num_blocks=1)
    assert read.name == "ReadCSV" and read.tasks[0].input_files == (a, str(tmp_path / "empty.csv"))
    assert rows(read) == [{"x": 1, "y": "a", "path": a}, {"x": 2, "y": "b", "path": a}]
    write(tmp_path / "semi" / "s.csv", "x;y\n1;2\n")
    read = api.csv_read(str(tmp_path / "semi"), parse_options=pacsv.ParseOptions(delimiter=";"))
    assert rows(read) == [{"x": 1, "y": 2}]
    with pytest.raises(TypeError, match=r"unexpected arguments \['delimiter'\]"):
        api.csv_read(str(tmp_path / "semi"), delimiter=";")


def test_mixed_csv_schemas_unify_where_arrow_can_and_otherwise_name_both(tmp_path):
    write(tmp_path / "ok" / "a.csv", "x\n1\n")
    write(tmp_path / "ok" / "b.csv", "x,y\n2.5,z\n")
    assert rows(api.csv_read(str(tmp_path / "ok"), override_num_blocks=1)) == [
        {"x": 1.0, "y": None}, {"x": 2.5, "y": "z"}]
    write(tmp_path / "bad" / "a.csv", "x\n1\n")
    write(tmp_path / "bad" / "b.csv", "x\nhello\n")
    with pytest.raises(SchemaMismatchError, match=r"x: int64[\s\S]*x: string"):
        run(api.csv_read(str(tmp_path / "bad"), override_num_blocks=1))


def test_json_lines_and_json_arrays(tmp_path):
    write(tmp_path / "a.jsonl", '{"x": 1, "s": "a"}\n{"x": 2, "s": "b"}\n')
    write(tmp_path / "b.json", json.dumps([{"x": 3, "s": "c"}]))
    write(tmp_path / "empty.json", "")
    write(tmp_path / "notes.txt", "not json")  # skipped: json reads .json and .jsonl by default
    assert rows(api.json_read(str(tmp_path))) == [{"x": 1, "s": "a"}, {"x": 2, "s": "b"}, {"x": 3, "s": "c"}]
    write(tmp_path / "broken" / "c.json", '{"x": \n')
    with pytest.raises(ValueError, match=r"c.json.* as JSON lines"):
        run(api.json_read(str(tmp_path / "broken")))


def test_text_has_one_row_per_line_and_can_drop_empty_lines(tmp_path):
    path = write(tmp_path / "t.txt", "hello\n\n  \nworld\n")
    assert rows(api.text_read(path)) == [{"text": t} for t in ["hello", "", "  ", "world"]]
    assert rows(api.text_read(path, drop_empty_lines=True)) == [{"text": "hello"}, {"text": "world"}]
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(ValueError, match="not utf-8 text"):
        run(api.text_read(str(latin)))
    assert rows(api.text_read(str(latin), encoding="latin-1")) == [{"text": "caf\xe9"}]


def test_numpy_gives_the_column_data_one_row_per_first_axis_entry(tmp_path):
    np.save(tmp_path / "m.npy", np.arange(12).reshape(4, 3))
    np.save(tmp_path / "v.npy", np.zeros((0, 3), dtype=np.int64))  # empty
    (tmp_path / "readme.md").write_text("skipped: not .npy")
    table = concat(run(api.numpy_read(str(tmp_path), override_num_blocks=1)))
    assert table.column_names == ["data"] and table.num_rows == 4
    np.testing.assert_array_equal(to_batch(table.slice(0, 4), "numpy")["data"], np.arange(12).reshape(4, 3))


def test_binary_files_one_row_per_file(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"\x00\x01")
    (tmp_path / "b.bin").write_bytes(b"")
    assert rows(api.binary_read(str(tmp_path), include_paths=True)) == [
        {"bytes": b"\x00\x01", "path": str(tmp_path / "a.bin")}, {"bytes": b"", "path": str(tmp_path / "b.bin")}]


def test_images_without_pillow_say_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)  # as on a machine without Pillow: importing it fails
    with pytest.raises(ImportError, match="pip install pillow"):
        api.images_read(str(tmp_path))


def test_images_read_as_arrays_resized_or_in_their_own_shapes(tmp_path):
    from PIL import Image  # the test extras install Pillow

    Image.new("RGB", (4, 2), (255, 0, 0)).save(tmp_path / "a.png")
    Image.new("L", (3, 3), 7).save(tmp_path / "b.png")
    table = concat(run(api.images_read(str(tmp_path), size=(2, 2), mode="RGB", override_num_blocks=1)))
    assert to_batch(table, "numpy")["image"].shape == (2, 2, 2, 3)
    images = to_batch(concat(run(api.images_read(str(tmp_path), override_num_blocks=1))), "numpy")["image"]
    assert [i.shape for i in images] == [(2, 4, 3), (3, 3)]
    with pytest.raises(ValueError, match="height, width"):
        api.images_read(str(tmp_path), size=(2,))


def test_an_empty_directory_reads_as_no_tasks(tmp_path):
    read = api.csv_read(str(tmp_path))
    assert read.tasks == [] and run(read) == []
    assert api.parquet_read(str(tmp_path)).schema is None


def test_override_num_blocks_groups_files_or_splits_them(tmp_path):
    for i in range(4):
        write(tmp_path / f"{i}.txt", "".join(f"{i}-{k}\n" for k in range(6)))
    assert len(api.text_read(str(tmp_path), override_num_blocks=2).tasks) == 2
    read = api.text_read(str(tmp_path), parallelism=8)
    blocks = run(read)
    assert len(read.tasks) == 4 and len(blocks) == 8 and {b.num_rows for b in blocks} == {3}
    assert [r["text"] for r in concat(blocks).to_pylist()] == [f"{i}-{k}" for i in range(4) for k in range(6)]


# ---------------------------------------------------------------------------- parquet
@pytest.fixture
def parquet_dir(tmp_path):
    """Two hive partitions, 5 row groups of 10 rows each: a = 0..49 and 50..99."""
    for year, start in (("2020", 0), ("2021", 50)):
        os.makedirs(tmp_path / f"year={year}")
        table = pa.table({"a": pa.array(range(start, start + 50), pa.int64()),
                          "b": [f"s{i}" for i in range(start, start + 50)]})
        pq.write_table(table, tmp_path / f"year={year}" / "part.parquet", row_group_size=10)
    return tmp_path


def test_parquet_schema_from_footers_with_partition_columns(parquet_dir):
    read = api.parquet_read(str(parquet_dir), override_num_blocks=10)
    assert read.schema == pa.schema([("a", pa.int64()), ("b", pa.string()), ("year", pa.string())])
    assert len(read.tasks) == 10 and [t.num_rows for t in read.tasks] == [10] * 10  # one task per row group
    table = concat(run(read))
    assert table.num_rows == 100 and table.column("year").to_pylist() == ["2020"] * 50 + ["2021"] * 50


def test_parquet_projection_keeps_the_columns_asked_for(parquet_dir):
    read = api.parquet_read(str(parquet_dir), columns=["year", "a"], override_num_blocks=2)
    assert read.schema.names == ["year", "a"]
    assert concat(run(read)).column_names == ["year", "a"]
    with pytest.raises(ValueError, match=r"columns \['nope'\] are not in .*whose columns are \['a', 'b', 'year'\]"):
        api.parquet_read(str(parquet_dir), columns=["nope"])


def test_parquet_filter_prunes_row_groups_by_statistics_and_filters_rows(parquet_dir):
    read = api.parquet_read(str(parquet_dir), filter=[("a", ">=", 75), ("a", "<", 82)], override_num_blocks=100)
    pruned = {t.input_files for t in read.tasks}
    assert pruned == {(str(parquet_dir / "year=2021" / "part.parquet"),)}
    assert sum(len(fn.units[0].row_groups) for fn in (t.read_fn for t in read.tasks)) == 2  # row groups 70s, 80s
    assert sorted(concat(run(read)).column("a").to_pylist()) == list(range(75, 82))


def test_parquet_filter_on_a_partition_column_skips_whole_files(parquet_dir):
    read = api.parquet_read(str(parquet_dir), filter=pc.field("year") == "2020", columns=["a"])
    assert {f for t in read.tasks for f in t.input_files} == {str(parquet_dir / "year=2020" / "part.parquet")}
    assert sorted(concat(run(read)).column("a").to_pylist()) == list(range(50))
    # The OR of ANDs list form.
    read = api.parquet_read(str(parquet_dir), filter=[[("a", "=", 1)], [("b", "=", "s99")]])
    assert sorted(concat(run(read)).column("a").to_pylist()) == [1, 99]


def test_parquet_bad_filters_are_clear_errors(parquet_dir):
    with pytest.raises(ValueError, match=r"does not apply to .*whose columns are a: int64, b: string, year: string"):
        api.parquet_read(str(parquet_dir), filter=pc.field("zz") > 1)
    with pytest.raises(TypeError, match="filter must be"):
        api.parquet_read(str(parquet_dir), filter="a > 3")
    with pytest.raises(ValueError, match="not a valid filter list"):
        api.parquet_read(str(parquet_dir), filter=[("a", "~", 3)])


def test_parquet_empty_file_gives_its_schema_and_zero_rows(tmp_path):
    pq.write_table(pa.table({"a": pa.array([], pa.int32())}), tmp_path / "e.parquet")
    read = api.parquet_read(str(tmp_path))
    assert read.schema == pa.schema([("a", pa.int32())])
    table = concat(run(read))
    assert table.num_rows == 0 and table.schema.names == ["a"]


def test_parquet_mixed_schemas_unify_or_name_both(tmp_path):
    pq.write_table(pa.table({"a": pa.array([1], pa.int32())}), tmp_path / "1.parquet")
    pq.write_table(pa.table({"a": pa.array([2], pa.int64()), "b": ["x"]}), tmp_path / "2.parquet")
    read = api.parquet_read(str(tmp_path), override_num_blocks=1)
    assert read.schema == pa.schema([("a", pa.int64()), ("b", pa.string())])
    assert rows(read) == [{"a": 1, "b": None}, {"a": 2, "b": "x"}]
    pq.write_table(pa.table({"a": ["text"]}), tmp_path / "3.parquet")
    with pytest.raises(SchemaMismatchError, match=r"a: int32[\s\S]*a: (int64|string)"):
        api.parquet_read(str(tmp_path))


def test_a_file_that_is_not_parquet_is_named(tmp_path):
    write(tmp_path / "notes.txt", "hello")
    with pytest.raises(ValueError, match=r"notes.txt' is not a parquet file"):
        api.parquet_read(str(tmp_path))
