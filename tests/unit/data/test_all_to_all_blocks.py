"""The all-to-all operations' block-level logic (juno.data.all_to_all, juno.data.aggregate), with
pandas as the oracle: sorting by sampled boundaries, partial aggregation and its combination,
random shuffles and repartition plans. No processes."""
from __future__ import annotations

import math
import pickle

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from juno.data.aggregate import AbsMax, AggregateFn, Count, Max, Mean, Min, Quantile, Std, Sum, Unique
from juno.data.all_to_all import aggregation, keys, shuffle
from juno.data.all_to_all.keys import SortKey
from juno.data.grouped_data import apply_to_groups


def _frame(n=400, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "k": pd.array(rng.choice(["a", "b", "c", None], n), dtype=object),
        "i": rng.integers(0, 4, n),
        "v": rng.normal(3, 2, n),
    })
    frame.loc[rng.choice(n, n // 10, replace=False), "v"] = np.nan  # nulls in Arrow
    return frame


def _blocks(frame: pd.DataFrame, sizes=(0, 37, 100, 0, 163, 100)) -> list[pa.Table]:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    out, start = [], 0
    for size in sizes:
        out.append(table.slice(start, size))
        start += size
    assert start == table.num_rows
    return out


def _sorted_via_partitions(blocks, key: SortKey, partitions: int) -> pa.Table:
    samples = [keys.sample_keys(b, key, 10 * partitions, i) for i, b in enumerate(blocks)]
    bounds = keys.boundaries(samples, key, partitions)
    pieces = [keys.partition_by_boundaries(b, key, bounds) for b in blocks]
    merged = [keys.merge_sorted([p[r] for p in pieces], key) for r in range(len(bounds) + 1)]
    return pa.concat_tables([m for m in merged if m.num_rows])


# ============================================================================ sort
@pytest.mark.parametrize("partitions", [1, 2, 5])
@pytest.mark.parametrize("columns,descending", [
    (["v"], False), (["v"], True), (["k", "v"], [False, True]), (["k", "i", "v"], [True, False, True])])
def test_sort_by_sampled_boundaries_matches_pandas(partitions, columns, descending):
    frame = _frame()
    key = SortKey.of(columns, descending)
    out = _sorted_via_partitions(_blocks(frame), key, partitions).to_pandas()
    expected = frame.sort_values(columns, ascending=[not d for d in key.descending], na_position="last",
                                 kind="stable")
    assert len(out) == len(frame)
    pd.testing.assert_frame_equal(out[columns].reset_index(drop=True), expected[columns].reset_index(drop=True))


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("values", [np.random.default_rng(2).integers(-50, 50, 300),
                                    np.random.default_rng(3).normal(0, 1, 300)])
def test_one_numeric_key_without_nulls_sorts_by_numpy_like_arrow(values, descending):
    table = pa.table({"x": values, "row": np.arange(len(values))})
    key = SortKey.of("x", descending)
    out = _sorted_via_partitions(_blocks(table.to_pandas(), (100, 0, 150, 50)), key, 3)
    assert out.column("x").to_pylist() == sorted(values.tolist(), reverse=descending)
    assert keys.sort_indices(table, key).type == pa.int64()


def test_equal_keys_never_straddle_two_partitions():
    table = pa.table({"g": [1, 1, 1, 2, 2, 3, 3, 3, 3, None, None]})
    key = SortKey.of("g")
    pieces = keys.partition_by_boundaries(table, key, [(1,), (2,), (3,)])
    assert [p.column("g").to_pylist() for p in pieces] == [[], [1, 1, 1], [2, 2], [3, 3, 3, 3, None, None]]
    bounds = keys.boundaries([table], key, 4)
    assert bounds and (1,) not in bounds and len(set(bounds)) == len(bounds) <= 3


def test_boundaries_of_duplicates_collapse():
    table = pa.table({"g": [7] * 50})
    assert keys.boundaries([table], SortKey.of("g"), 8) == []


def test_partition_pieces_are_compact_copies():
    big = pa.table({"x": np.arange(200_000)})
    pieces = keys.partition_by_boundaries(big.slice(10, 100), SortKey.of("x"), [(50,)])
    assert [p.num_rows for p in pieces] == [40, 60]
    assert all(len(pickle.dumps(p, protocol=5)) < 10_000 for p in pieces)
    assert len(pickle.dumps(keys.sample_keys(big.slice(0, 5), SortKey.of("x"), 10), protocol=5)) < 10_000


def test_nan_sorts_before_null_in_both_directions():
    table = pa.table({"x": [2.0, None, float("nan"), 1.0]})
    for descending in (False, True):
        key = SortKey.of("x", descending)
        out = _sorted_via_partitions([table], key, 1).column("x").to_pylist()
        assert out[-1] is None and math.isnan(out[-2])
        ranks = [keys.row_rank((v,), key) for v in out]
        assert ranks == sorted(ranks)


@pytest.mark.parametrize("key,descending,message", [
    ([], False, "non-empty list"), (3, False, "column name"), (["a", "a"], False, "twice"),
    (["a", "b"], [True], "one bool per key column"), ("a", "yes", "bool")])
def test_bad_sort_keys_say_what_is_wrong(key, descending, message):
    with pytest.raises(ValueError, match=message):
        SortKey.of(key, descending)


def test_unknown_sort_column_names_the_columns():
    with pytest.raises(ValueError, match="'z' is not a column.*columns are: k, i, v"):
        SortKey.of("z").validate(pa.Table.from_pandas(_frame(4), preserve_index=False).schema)
    SortKey.of("z").validate(pa.schema([]))  # an empty dataset's: nothing to check


# ============================================================================ aggregation
def _aggregate(blocks, keys_, aggs) -> pd.DataFrame:
    partials = [aggregation.partial_aggregate(b, keys_, aggs) for b in blocks]
    return aggregation.combine_partials(partials, keys_, aggs).to_pandas()


@pytest.mark.parametrize("group_keys", [["k"], ["i"], ["k", "i"]])
def test_builtin_aggregations_match_pandas(group_keys):
    frame = _frame()
    aggs = [Count(), Count("v", ignore_nulls=True), Sum("v"), Min("v"), Max("v"), Mean("v"), Std("v"),
            Std("v", ddof=0, alias_name="pstd"), AbsMax("v"), Quantile("v", q=0.3), Min("k")]
    out = _aggregate(_blocks(frame), group_keys, aggs)
    grouped = frame.groupby(group_keys, dropna=False, sort=True)
    expected = pd.DataFrame({
        "count()": grouped.size(), "count(v)": grouped["v"].count(), "sum(v)": grouped["v"].sum(min_count=1),
        "min(v)": grouped["v"].min(), "max(v)": grouped["v"].max(), "mean(v)": grouped["v"].mean(),
        "std(v)": grouped["v"].std(), "pstd": grouped["v"].std(ddof=0),
        "abs_max(v)": grouped["v"].agg(lambda s: s.abs().max()), "quantile(v)": grouped["v"].quantile(0.3),
        "min(k)": grouped["k"].min(),
    }).reset_index()
    assert list(out.columns) == group_keys + [a.name for a in aggs]
    pd.testing.assert_frame_equal(out, expected, check_dtype=False, check_index_type=False, rtol=1e-9)


def test_ignore_nulls_false_makes_a_group_with_a_null_null():
    table = pa.table({"g": [1, 1, 2, 2], "v": [1.0, None, 2.0, 3.0]})
    aggs = [Sum("v", ignore_nulls=False), Mean("v", ignore_nulls=False), Std("v", ignore_nulls=False),
            Min("v", ignore_nulls=False), AbsMax("v", ignore_nulls=False), Count("v")]
    out = _aggregate([table.slice(0, 1), table.slice(1, 3)], ["g"], aggs).to_dict("records")
    assert all(pd.isna(out[0][a.name]) for a in aggs[:-1]) and out[0]["count(v)"] == 2
    assert out[1]["sum(v)"] == 5.0 and out[1]["mean(v)"] == 2.5 and out[1]["std(v)"] == pytest.approx(math.sqrt(0.5))


def test_a_group_of_only_nulls_aggregates_to_null_and_one_value_has_std_zero():
    table = pa.table({"g": ["x", "x", "y"], "v": pa.array([None, None, 4.0])})
    out = _aggregate([table], ["g"], [Sum("v"), Mean("v"), Std("v"), Quantile("v")]).to_dict("records")
    assert all(pd.isna(v) for k, v in out[0].items() if k != "g")
    assert out[1] == {"g": "y", "sum(v)": 4.0, "mean(v)": 4.0, "std(v)": 0.0, "quantile(v)": 4.0}  # Ray: n=1 -> 0.0


def test_std_keeps_its_precision_under_a_large_mean():
    values = 1e9 + np.random.default_rng(1).normal(0, 1, 10_000)
    table = pa.table({"v": values})
    blocks = [table.slice(i, 1000) for i in range(0, 10_000, 1000)]
    assert _aggregate(blocks, [], [Std("v")])["std(v)"][0] == pytest.approx(np.std(values, ddof=1), rel=1e-6)


def test_global_aggregation_and_an_empty_input():
    frame = _frame()
    out = _aggregate(_blocks(frame), [], [Sum("v"), Count(), Unique("i")]).to_dict("records")
    assert out[0]["sum(v)"] == pytest.approx(frame.v.sum()) and out[0]["count()"] == len(frame)
    assert sorted(out[0]["unique(i)"]) == sorted(frame.i.unique())
    empty = pa.Table.from_pandas(frame, preserve_index=False).slice(0, 0)
    assert _aggregate([empty], [], [Sum("v")]).shape == (0, 1)
    assert _aggregate([empty], ["k"], [Sum("v")]).columns.tolist() == ["k", "sum(v)"]
    assert aggregation.combine_partials([aggregation.partial_aggregate(pa.table({}), ["k"], [Count()])],
                                        ["k"], [Count()]).num_rows == 0


def test_unique_per_group_with_and_without_nulls():
    table = pa.table({"g": [1, 1, 1, 2, 2], "s": ["a", None, "a", None, None]})
    out = _aggregate([table.slice(0, 2), table.slice(2)], ["g"], [Unique("s"), Unique("s", ignore_nulls=True,
                                                                                       alias_name="u")])
    assert set(out["unique(s)"][0]) == {"a", None} and out["unique(s)"][1].tolist() == [None]
    assert out["u"][0].tolist() == ["a"] and out["u"][1].tolist() == []


def test_custom_aggregate_fn_by_row_and_by_block():
    frame = _frame()
    by_row = AggregateFn(init=lambda key: 0, accumulate_row=lambda a, row: a + (row["i"] or 0),
                         merge=lambda a, b: a + b, name="isum")
    by_block = AggregateFn(init=lambda key: (key, 0), accumulate_block=lambda a, block: (a[0], a[1] + block.num_rows),
                           merge=lambda a, b: (a[0], a[1] + b[1]), finalize=lambda a: f"{a[0]}:{a[1]}", name="tag")
    out = _aggregate(_blocks(frame), ["k"], [by_row, by_block, Count()])
    expected = frame.groupby("k", dropna=False)
    assert out["isum"].tolist() == expected["i"].sum().tolist()
    assert out["tag"].tolist() == [f"{k}:{n}" for k, n in zip(out["k"].replace({np.nan: None}), out["count()"])]


def test_custom_aggregate_fn_gets_a_tuple_key_for_several_columns():
    table = pa.table({"a": [1, 1, 2], "b": ["x", "x", "y"]})
    keys_seen = AggregateFn(init=lambda key: key, accumulate_block=lambda a, block: a, merge=lambda a, b: a,
                            finalize=lambda a: repr(a), name="key")
    out = _aggregate([table], ["a", "b"], [keys_seen])
    assert out["key"].tolist() == ["(1, 'x')", "(2, 'y')"]


@pytest.mark.parametrize("make,error,message", [
    (lambda: AggregateFn(init=lambda k: 0, merge=lambda a, b: a, accumulate_row=lambda a, r: a), ValueError,
     "needs a name"),
    (lambda: AggregateFn(init=lambda k: 0, merge=lambda a, b: a, name="x"), ValueError, "exactly one of"),
    (lambda: AggregateFn(init=0, merge=lambda a, b: a, accumulate_row=lambda a, r: a, name="x"), TypeError,
     "init must be callable"),
    (lambda: Sum(), ValueError, "needs the column"),
    (lambda: Sum(["a", "b"]), TypeError, "one column name"),
    (lambda: Std("v", ddof=-1), ValueError, "ddof"),
    (lambda: Quantile("v", q=2), ValueError, "between 0 and 1"),
])
def test_bad_aggregations_say_what_is_wrong(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_validation_names_the_columns_types_and_clashes():
    schema = pa.schema([("k", pa.string()), ("v", pa.float64())])
    with pytest.raises(ValueError, match="groupby key 'z' is not a column.*columns are: k, v"):
        aggregation.validate(["z"], [Count()], schema)
    with pytest.raises(ValueError, match="'w' is not a column"):
        aggregation.validate([], [Sum("w")], schema)
    with pytest.raises(TypeError, match="std\\(k\\) needs a numeric column, but 'k' is string"):
        aggregation.validate([], [Std("k")], schema)
    with pytest.raises(ValueError, match="two output columns would be named 'sum\\(v\\)'"):
        aggregation.validate([], [Sum("v"), Sum("v")], schema)
    with pytest.raises(ValueError, match="at least one aggregation"):
        aggregation.validate([], [], schema)
    with pytest.raises(TypeError, match="AggregateFn objects"):
        aggregation.validate([], ["sum"], schema)
    aggregation.validate(["k"], [Min("k"), Sum("v", alias_name="total")], schema)


def test_map_groups_applies_the_function_to_each_group():
    table = pa.table({"g": [1, 1, 2, 2, 2, None], "v": [1, 2, 3, 4, 5, 6]})
    out = apply_to_groups(lambda df, scale: pd.DataFrame({"g": df.g[:1], "total": [df.v.sum() * scale]}), table,
                          ["g"], "pandas", (10,), {})
    assert out.to_pylist() == [{"g": 1.0, "total": 30}, {"g": 2.0, "total": 120}, {"g": None, "total": 60}]
    assert apply_to_groups(lambda b: b, table.slice(0, 0), ["g"], "pyarrow", (), {}).num_rows == 0


# ============================================================================ shuffle, repartition
def test_random_split_and_shuffle_permute_the_rows_repeatably():
    table = pa.table({"x": np.arange(1000)})
    pieces = shuffle.random_split(table, 3, [7, 0, 0])
    assert sorted(p.num_rows for p in pieces) == [333, 333, 334]
    out = shuffle.shuffle_rows(pieces, [7, 1, 0])
    assert sorted(out.column("x").to_pylist()) == list(range(1000))
    assert out.column("x").to_pylist() != list(range(1000))
    again = shuffle.shuffle_rows(shuffle.random_split(table, 3, [7, 0, 0]), [7, 1, 0])
    assert again.equals(out)
    assert all(len(pickle.dumps(p, protocol=5)) < 4000 for p in shuffle.random_split(table.slice(0, 10), 2, [1]))


@pytest.mark.parametrize("counts,num_blocks", [([10, 0, 7, 3], 3), ([5], 4), ([0, 0], 2), ([1, 1, 1], 1)])
def test_split_plan_cuts_rows_in_order_into_equal_blocks(counts, num_blocks):
    blocks = []
    start = 0
    for c in counts:
        blocks.append(pa.table({"x": np.arange(start, start + c)}))
        start += c
    plan = shuffle.split_plan(counts, num_blocks)
    assert len(plan) == num_blocks
    out = [shuffle.assemble([blocks[b] for b in dict.fromkeys(b for b, _, _ in p)], p, blocks[0].schema)
           for p in plan]
    sizes = [t.num_rows for t in out]
    assert max(sizes) - min(sizes) <= 1 and sum(sizes) == start
    assert [x for t in out for x in t.column("x").to_pylist()] == list(range(start))


def test_split_plan_refuses_a_bad_count():
    with pytest.raises(ValueError, match="positive int"):
        shuffle.split_plan([3], 0)


def test_partition_counts_follow_data_size_and_cpus():
    mib = shuffle.MiB
    assert shuffle.num_partitions(1 * mib, 10, 16) == 1
    assert shuffle.num_partitions(100 * mib, 10, 2) == 2
    assert shuffle.num_partitions(10_000 * mib, 100, 16) == 16
    assert shuffle.shuffle_partitions(1 * mib, 3, 2, 128 * mib) == 3  # as many as the input had
    assert shuffle.shuffle_partitions(1 * mib, 1000, 2, 128 * mib) == 2  # not a million tiny pieces
    assert shuffle.shuffle_partitions(1000 * mib, 1000, 2, 128 * mib) == 8
