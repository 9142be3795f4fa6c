"""Juno Data's block conversions, batching and stages, run in this process (libs/data/block.py,
transforms.py, expressions.py): what user functions see and what they may return."""
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from juno.data import block as blk
from juno.data.expressions import compile_filter
from juno.data.transforms import BatchStage, RowStage, UserCodeError, rebatch, run_stages


def tables(*sizes):
    start = 0
    for n in sizes:
        yield pa.table({"id": np.arange(start, start + n)})
        start += n


def test_rebatch_cuts_exact_batches_across_block_edges():
    sizes = [t.num_rows for t in rebatch(tables(3, 5, 0, 4), 4)]
    assert sizes == [4, 4, 4]
    assert [t.num_rows for t in rebatch(tables(3, 5), 10)] == [8]
    assert [t.num_rows for t in rebatch(tables(3, 0, 5), None)] == [3, 5]
    joined = pa.concat_tables(list(rebatch(tables(3, 5, 4), 5)))
    assert joined.column("id").to_pylist() == list(range(12))


@pytest.mark.parametrize("fmt,kind", [("numpy", dict), ("default", dict), ("pandas", pd.DataFrame),
                                      ("pyarrow", pa.Table)])
def test_batch_formats_reach_the_function_and_come_back(fmt, kind):
    seen = []

    def double(batch):
        seen.append(type(batch))
        if isinstance(batch, pa.Table):
            return batch.set_column(0, "id", pa.compute.multiply(batch.column("id"), 2))
        batch["id"] = batch["id"] * 2
        return batch

    stage = BatchStage("MapBatches(double)", fn=double, batch_size=2, batch_format=fmt)
    out = pa.concat_tables(run_stages([stage], tables(3)))
    assert out.column("id").to_pylist() == [0, 2, 4] and issubclass(seen[0], kind)


def test_a_generator_udf_may_yield_several_batches():
    def split(batch):
        yield {"id": batch["id"][:1]}
        yield {"id": batch["id"][1:]}

    out = list(run_stages([BatchStage("MapBatches(split)", fn=split, batch_size=None)], tables(4)))
    assert [t.num_rows for t in out] == [1, 3]


def test_wrong_shapes_say_what_was_expected():
    with pytest.raises(ValueError, match=r"columns of different lengths \('a': 2, 'b': 1\)"):
        blk.from_batch({"a": [1, 2], "b": [1]})
    with pytest.raises(TypeError, match="must return a batch: a dict .* it returned a builtins.list"):
        blk.from_batch([1, 2])
    with pytest.raises(TypeError, match="must return a dict .* returned a builtins.int"):
        list(run_stages([RowStage("Map(f)", fn=lambda r: 1, kind="map")], tables(2)))


def test_a_raising_udf_names_the_operator_the_function_and_its_input():
    def bad(batch):
        raise KeyError("nope")

    with pytest.raises(UserCodeError, match=r"MapBatches\(bad\): bad raised KeyError: 'nope' \(its input was a "
                                            r"dict of 3 rows with columns \['id'\]\)") as info:
        list(run_stages([BatchStage("MapBatches(bad)", fn=bad, batch_size=None)], tables(3)))
    assert isinstance(info.value.__cause__, KeyError)


def test_row_stages_map_flat_map_and_filter():
    def run(kind, fn):
        return pa.concat_tables(run_stages([RowStage("S", fn=fn, kind=kind)], tables(4))).to_pylist()

    assert run("map", lambda r: {"y": r["id"] + 1}) == [{"y": 1}, {"y": 2}, {"y": 3}, {"y": 4}]
    assert run("flat_map", lambda r: [r] * r["id"]) == [{"id": 1}, {"id": 2}, {"id": 2}, {"id": 3}, {"id": 3},
                                                         {"id": 3}]
    assert run("filter", lambda r: r["id"] % 2) == [{"id": 1}, {"id": 3}]


def test_callable_classes_are_built_once_per_worker():
    class Counter:
        built = 0

        def __init__(self, k):
            Counter.built += 1
            self.k = k

        def __call__(self, batch):
            return {"id": batch["id"] + self.k}

    stage = BatchStage("MapBatches(Counter)", fn=Counter, fn_constructor_args=(10,), batch_size=1)
    out = pa.concat_tables(run_stages([stage], tables(3)))
    assert out.column("id").to_pylist() == [10, 11, 12] and Counter.built == 1


def test_tensor_columns_round_trip_through_rows_batches_and_pandas():
    images = np.arange(24, dtype=np.float32).reshape(3, 2, 4)
    table = blk.from_batch({"image": images, "label": np.array([0, 1, 2])})
    assert blk.to_batch(table, "numpy")["image"].shape == (3, 2, 4)
    rows = list(blk.to_rows(table))
    assert rows[1]["image"].shape == (2, 4) and rows[1]["label"] == 1
    frame = blk.to_pandas(table)
    assert frame["image"].iloc[2].shape == (2, 4)
    assert blk.from_batch(frame).column("image").type == table.column("image").type
    ragged = blk.items_to_table([np.ones(2), np.ones(3)])
    assert [a.shape for a in blk.to_batch(ragged, "numpy")["item"]] == [(2,), (3,)]


def test_concat_unifies_compatible_schemas_and_names_incompatible_ones():
    widened = blk.concat([pa.table({"a": [1]}), pa.table({"a": [1.5], "b": ["x"]})])
    assert widened.schema.field("a").type == pa.float64() and widened.column("b").to_pylist() == [None, "x"]
    with pytest.raises(blk.SchemaMismatchError, match=r"a: int64\n  a: list<item: int64>"):
        blk.concat([pa.table({"a": [1]}), pa.table({"a": [[1]]})])


def test_block_builder_cuts_output_near_the_target_size():
    builder = blk.BlockBuilder(target_bytes=800)  # 100 int64 rows
    out = []
    for table in tables(50, 50, 250, 10):
        out.extend(builder.add(table))
    out.extend(builder.finish())
    assert sum(t.num_rows for t in out) == 360
    assert max(t.nbytes for t in out) <= 1200


def test_filter_expressions_compile_to_arrow_and_refuse_the_rest():
    table = pa.table({"x": [1, 2, 3, 4, None], "s": ["a", "b", "a", "c", "a"]})
    assert compile_filter("x > 2 and s == 'a'")(table).column("x").to_pylist() == [3]
    assert compile_filter("s in ['b', 'c'] or x is None")(table).column("s").to_pylist() == ["b", "c", "a"]
    assert compile_filter("x % 2 == 0")(table).column("x").to_pylist() == [2, 4]
    with pytest.raises(ValueError, match="not supported"):
        compile_filter("__import__('os')")
    with pytest.raises(KeyError, match=r"no column \['y'\]"):
        compile_filter("y > 1")(table)


def test_empty_tensor_columns_and_ragged_dtypes_survive():
    empty = blk.from_batch({"x": np.zeros((0, 2, 2), dtype=np.float32)})
    assert empty.num_rows == 0 and blk.to_batch(empty, "numpy")["x"].shape == (0, 2, 2)
    ragged = blk.items_to_table([np.ones(2, dtype=np.uint8), np.ones(3, dtype=np.uint8)]).slice(1, 1)
    [only] = blk.column_to_numpy(ragged.column("item"))
    assert only.dtype == np.uint8 and only.shape == (3,)


def test_slices_that_go_to_the_store_carry_only_their_rows():
    import pickle

    big = pa.table({"a": np.arange(1_000_000), "s": pa.array([str(i) for i in range(1_000_000)])})

    def stored_bytes(table):
        buffers = []
        data = pickle.dumps(table, protocol=5, buffer_callback=buffers.append)
        return len(data) + sum(len(b.raw()) for b in buffers)

    piece = blk.compact(big.slice(10, 5))
    assert stored_bytes(piece) < 10_000 and piece.to_pylist() == big.slice(10, 5).to_pylist()
    cut = list(blk.BlockBuilder(target_bytes=64 * 1024).add(big))
    assert all(stored_bytes(t) < 3 * t.nbytes + 10_000 for t in cut)
    tensors = blk.from_batch({"x": np.zeros((100, 4, 4))}).slice(3, 2)
    assert blk.compact(tensors).column("x").type == tensors.column("x").type
