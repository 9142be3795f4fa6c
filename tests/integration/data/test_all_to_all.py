"""Sort, shuffles, repartition and aggregations end to end: datasets on a real cluster, through
``Dataset._all_to_all`` and the shuffle's map and reduce tasks, with pandas as the oracle. Small
data; the partition threshold is lowered so that several reduce tasks run."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import juno.data as rd
from juno.data.aggregate import AggregateFn, Count, Max, Mean, Quantile, Std, Sum
from juno.data.all_to_all import api, shuffle

JUNO_SHARED_INIT = {"num_cpus": 4}


@pytest.fixture(params=["one partition", "several partitions"])
def partitions(request, monkeypatch, cluster):
    """Each test runs once with one reduce task and once with as many as the cluster has CPUs."""
    if request.param == "several partitions":
        monkeypatch.setattr(shuffle, "MIN_PARTITION_BYTES", 1)
    return request.param


def _frame(n=300, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"k": pd.array(rng.choice(["a", "b", "c", "d", None], n), dtype=object),
                          "i": rng.integers(0, 5, n), "v": rng.normal(0, 10, n)})
    frame.loc[rng.choice(n, 20, replace=False), "v"] = np.nan
    return frame


def _dataset(frame: pd.DataFrame, blocks: int = 5):
    n = len(frame)
    return rd.from_pandas([frame.iloc[i * n // blocks:(i + 1) * n // blocks] for i in range(blocks)])


def test_sort_by_several_keys_matches_pandas(partitions):
    frame = _frame()
    out = api.sort(_dataset(frame), ["k", "v"], descending=[True, False]).to_pandas()
    expected = frame.sort_values(["k", "v"], ascending=[False, True], na_position="last")
    pd.testing.assert_frame_equal(out[["k", "v"]].reset_index(drop=True), expected[["k", "v"]].reset_index(drop=True))


def test_sort_of_an_empty_dataset_and_an_unknown_column(partitions):
    frame = _frame()
    assert api.sort(_dataset(frame).filter(expr="i > 100"), "v").take_all() == []
    with pytest.raises(ValueError, match="sort key 'nope' is not a column.*columns are: k, i, v"):
        api.sort(_dataset(frame), "nope").take_all()


def test_groupby_aggregations_match_pandas(partitions):
    frame = _frame()
    out = api.groupby(_dataset(frame), ["k", "i"]).aggregate(Count(), Sum("v"), Mean("v"), Std("v"), Max("v"),
                                                              Quantile("v", q=0.9)).to_pandas()
    grouped = frame.groupby(["k", "i"], dropna=False)["v"]
    expected = pd.DataFrame({"count()": grouped.size(), "sum(v)": grouped.sum(min_count=1), "mean(v)": grouped.mean(),
                             "std(v)": grouped.std().fillna(0.0), "max(v)": grouped.max(),
                             "quantile(v)": grouped.quantile(0.9)}).reset_index()
    pd.testing.assert_frame_equal(out, expected, check_dtype=False, rtol=1e-9)


def test_grouped_shorthands_and_a_custom_aggregation(partitions):
    frame = _frame()
    ds = _dataset(frame)
    counts = api.groupby(ds, "i").count().take_all()
    assert counts == [{"i": i, "count()": n} for i, n in frame.groupby("i").size().items()]
    sums = api.groupby(ds.select_columns(["i", "v"]), "i").sum().to_pandas()  # on=None: every column but the key
    assert list(sums.columns) == ["i", "sum(v)"]
    assert sums["sum(v)"].tolist() == pytest.approx(frame.groupby("i")["v"].sum().tolist())
    span = AggregateFn(init=lambda key: [], accumulate_block=lambda acc, block: acc + block["v"].to_pylist(),
                       merge=lambda a, b: a + b, finalize=lambda acc: len(acc), name="rows")
    out = api.groupby(ds, "i").aggregate(span).take_all()
    assert [r["rows"] for r in out] == frame.groupby("i").size().tolist()


def test_dataset_level_aggregations(partitions):
    frame = _frame()
    ds = _dataset(frame)
    assert api.sum(ds, "v") == pytest.approx(frame.v.sum())
    assert api.mean(ds, ["v", "i"]) == pytest.approx({"mean(v)": frame.v.mean(), "mean(i)": frame.i.mean()})
    assert api.std(ds, "v", ddof=0) == pytest.approx(frame.v.std(ddof=0))
    assert api.min(ds, "k") == "a" and api.max(ds, "i") == frame.i.max()
    assert api.unique(ds, "k") == ["a", "b", "c", "d", None]
    assert api.aggregate(ds, Count(), Max("v")) == {"count()": len(frame), "max(v)": frame.v.max()}
    empty = ds.filter(expr="i > 100")
    assert api.sum(empty, "v") is None and api.aggregate(empty, Count()) is None
    with pytest.raises(TypeError, match="std\\(k\\) needs a numeric column"):
        api.std(ds, "k")


def test_map_groups_with_a_function_and_a_class(partitions):
    frame = _frame()
    ds = _dataset(frame)

    def top(batch, n):
        return batch.nlargest(n, "v")[["i", "v"]]

    out = api.groupby(ds, "i").map_groups(top, batch_format="pandas", fn_args=(2,)).to_pandas()
    expected = frame.dropna(subset=["v"]).sort_values("v", ascending=False).groupby("i").head(2)[["i", "v"]]
    pd.testing.assert_frame_equal(out.sort_values(["i", "v"]).reset_index(drop=True),
                                  expected.sort_values(["i", "v"]).reset_index(drop=True))

    class Scale:
        def __init__(self, factor):
            self.factor = factor

        def __call__(self, batch):
            return {"i": batch["i"][:1], "total": [batch["v"].sum() * self.factor]}

    out = api.groupby(ds, "i").map_groups(Scale, fn_constructor_args=(2,), concurrency=1).take_all()
    assert sorted(r["i"] for r in out) == sorted(frame.i.unique())  # blocks after the sort may stream out of order


def test_random_shuffle_is_a_repeatable_permutation(partitions):
    ds = rd.range(200, override_num_blocks=4).materialize()  # the seed repeats a shuffle of blocks in one order
    once = [r["id"] for r in api.random_shuffle(ds, seed=5).take_all()]
    assert sorted(once) == list(range(200)) and once != list(range(200))
    assert [r["id"] for r in api.random_shuffle(ds, seed=5).take_all()] == once
    shuffled = api.random_shuffle(ds, num_blocks=3).materialize()
    assert shuffled.num_blocks() == 3 and shuffled.count() == 200
    assert api.random_shuffle(ds.filter(expr="id > 1000")).take_all() == []


def test_repartition_keeps_the_order_unless_shuffled(partitions):
    ds = rd.from_items([{"id": i} for i in range(100)], override_num_blocks=3)  # blocks in a known order
    out = api.repartition(ds, 7).materialize()
    assert out.num_blocks() == 7
    assert [r["id"] for r in out.take_all()] == list(range(100))
    shuffled = api.repartition(ds, 2, shuffle=True).materialize()
    assert shuffled.num_blocks() == 2 and sorted(r["id"] for r in shuffled.take_all()) == list(range(100))
    with pytest.raises(ValueError, match="positive int"):
        api.repartition(ds, 0)


def test_randomize_block_order_moves_whole_blocks(partitions):
    ds = rd.range(40, override_num_blocks=8).materialize()
    out = [r["id"] for r in api.randomize_block_order(ds, seed=3).take_all()]
    assert sorted(out) == list(range(40))
    runs = [out[i:i + 5] for i in range(0, 40, 5)]
    assert all(run == list(range(run[0], run[0] + 5)) for run in runs)
