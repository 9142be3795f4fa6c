"""Which files a read covers, and how they become read tasks (real files in tmp_path, no cluster)."""
import os

import pytest

from juno.data.context import DataContext
from juno.data.datasource.file_read import (ReadUnit, choose_num_blocks, group_units, merge_row_groups,
                                            num_blocks_arg, plan_tasks, split_table)
from juno.data.datasource.paths import expand_paths, hive_partition, is_hidden, strip_scheme


def touch(path, text="x"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return str(path)


def names(files):
    return [os.path.basename(f.path) for f in files]


def test_a_directory_is_listed_recursively_sorted_and_skips_hidden_and_underscore_files(tmp_path):
    for rel in ["b.csv", "a.csv", "sub/c.csv", ".hidden.csv", "_SUCCESS", ".ipynb_checkpoints/a-checkpoint.csv",
                "_tmp/d.csv"]:
        touch(tmp_path / rel)
    files = expand_paths(str(tmp_path))
    assert [os.path.relpath(f.path, tmp_path) for f in files] == ["a.csv", "b.csv", "sub/c.csv"]
    assert all(f.size == 1 for f in files)


def test_one_file_a_glob_a_list_and_local_prefixes(tmp_path):
    a, b = touch(tmp_path / "a.csv"), touch(tmp_path / "b.json")
    assert names(expand_paths(a)) == ["a.csv"]
    assert names(expand_paths(str(tmp_path / "*.csv"))) == ["a.csv"]
    assert names(expand_paths([b, a])) == ["b.json", "a.csv"]  # the order given
    assert names(expand_paths("local://" + a)) == ["a.csv"]
    assert names(expand_paths("file://" + a)) == ["a.csv"]


def test_a_missing_path_or_a_glob_matching_nothing_is_a_file_not_found_error_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        expand_paths(str(tmp_path / "nope.csv"))
    with pytest.raises(FileNotFoundError, match=r"glob .*\*\.parquet"):
        expand_paths(str(tmp_path / "*.parquet"))
    touch(tmp_path / "a.csv")
    with pytest.raises(FileNotFoundError, match="missing"):
        expand_paths([str(tmp_path / "a.csv"), str(tmp_path / "missing")])


def test_an_empty_directory_has_no_files(tmp_path):
    assert expand_paths(str(tmp_path)) == []


def test_file_extensions_filter_case_insensitively_and_say_so_when_nothing_is_left(tmp_path):
    touch(tmp_path / "a.CSV"), touch(tmp_path / "b.txt")
    assert names(expand_paths(str(tmp_path), file_extensions=["csv"])) == ["a.CSV"]
    assert names(expand_paths(str(tmp_path), file_extensions=[".txt"])) == ["b.txt"]
    with pytest.raises(ValueError, match=r"none of the 2 files .* has an extension in \['parquet'\]"):
        expand_paths(str(tmp_path), file_extensions=["parquet"])


def test_bad_path_arguments_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="local files only"):
        expand_paths("s3://bucket/key")
    with pytest.raises(ValueError, match="empty list"):
        expand_paths([])
    with pytest.raises(TypeError, match="paths must be"):
        expand_paths(3)
    with pytest.raises(ValueError, match="partitioning"):
        expand_paths(str(tmp_path), partitioning="dirs")
    assert strip_scheme("local:///x/y") == "/x/y"


def test_hive_directories_give_partition_values(tmp_path):
    touch(tmp_path / "year=2020" / "month=1" / "a.parquet")
    touch(tmp_path / "year=__HIVE_DEFAULT_PARTITION__" / "b.parquet")
    files = expand_paths(str(tmp_path), partitioning="hive")
    assert [f.partition for f in files] == [{"year": "2020", "month": "1"}, {"year": None}]
    assert expand_paths(str(tmp_path))[0].partition == {}
    assert hive_partition("a=x%2Fy/plain") == {"a": "x/y"}
    assert is_hidden("sub/.x") and is_hidden("_a/b") and not is_hidden("a=1/b")


# ---------------------------------------------------------------------------- planning
def test_num_blocks_follows_rays_rule():
    ctx = DataContext()
    assert choose_num_blocks(10, requested=7, cpus=2, ctx=ctx) == 7
    assert choose_num_blocks(10, requested=None, cpus=2, ctx=ctx) == 4  # tiny data: twice the CPUs
    assert choose_num_blocks(1000 * 2 ** 20, requested=None, cpus=2, ctx=ctx) == 200  # read_op_min_num_blocks
    assert choose_num_blocks(50 * 2 ** 20, requested=None, cpus=2, ctx=ctx) == 50  # blocks of >= 1 MiB
    assert choose_num_blocks(100 * 2 ** 30, requested=None, cpus=2, ctx=ctx) == 800  # blocks of <= 128 MiB


def test_override_num_blocks_and_parallelism_are_validated():
    assert num_blocks_arg(None, -1) is None
    assert num_blocks_arg(3, -1) == 3 and num_blocks_arg(None, 5) == 5
    with pytest.raises(ValueError, match="not both"):
        num_blocks_arg(3, 4)
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="positive int"):
            num_blocks_arg(bad, -1)


def test_units_are_grouped_contiguously_by_size():
    assert group_units([1] * 6, 3) == [[0, 1], [2, 3], [4, 5]]
    assert group_units([10, 1, 1, 1, 1, 6], 2) == [[0], [1, 2, 3, 4, 5]]
    assert group_units([5, 5], 4) == [[0], [1]]
    assert group_units([], 3) == []
    for sizes, n in (([3, 1, 4, 1, 5, 9, 2, 6], 3), ([0, 0, 0], 2), ([100, 1, 1, 1], 4)):
        groups = group_units(sizes, n)
        assert sum(groups, []) == list(range(len(sizes))) and len(groups) == min(n, len(sizes))


def test_fewer_units_than_blocks_split_each_task_output():
    units = [ReadUnit(f"/f{i}", 10) for i in range(3)]
    assert [split for _, split in plan_tasks(units, 8)] == [3, 3, 2]
    assert [(len(g), split) for g, split in plan_tasks(units, 2)] == [(2, 1), (1, 1)]
    assert plan_tasks([], 5) == []
    import pyarrow as pa
    assert [t.num_rows for t in split_table(pa.table({"a": range(5)}), 3)] == [2, 2, 1]
    assert [t.num_rows for t in split_table(pa.table({"a": range(1)}), 3)] == [1, 0, 0]


def test_adjacent_row_groups_of_one_file_merge_into_one_unit():
    units = [ReadUnit("/a", 1, {}, 5, (0,)), ReadUnit("/a", 2, {}, 5, (1,)), ReadUnit("/b", 3, {}, None, (0,))]
    merged = merge_row_groups(units)
    assert merged == [ReadUnit("/a", 3, {}, 10, (0, 1)), ReadUnit("/b", 3, {}, None, (0,))]
