"""Blocks: the Arrow tables a dataset is made of, and the conversions around user functions.

A block is a ``pyarrow.Table`` in the object store (it pickles out of band, so a worker reads it
from shared memory without a copy). User functions see rows (dicts), batches in one of Ray's
formats ("numpy": dict of column -> ndarray, "pandas", "pyarrow"), and give back the same; this
module turns each into a table and back, and says clearly what was wrong when a function returns
something that is not a batch. Columns of n-dimensional arrays are Arrow fixed-shape tensors
(``pa.fixed_shape_tensor``); arrays of differing shapes are kept as an object column of arrays.
"""
from __future__ import annotations

import collections.abc
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

import numpy as np
import pyarrow as pa

BATCH_FORMATS = ("default", "numpy", "pandas", "pyarrow")


@dataclass(frozen=True)
class BlockMetadata:
    """What the driver knows of a block without fetching it."""

    num_rows: int
    size_bytes: int
    schema: pa.Schema | None = None
    input_files: tuple[str, ...] = ()
    exec_s: float = 0.0  # wall time the task spent producing it (for stats)


@dataclass(frozen=True)
class RefBundle:
    """Blocks that travel together between operators: (ref, metadata) pairs, in order."""

    blocks: tuple[tuple[Any, BlockMetadata], ...]
    owned: bool = True  # False: the user's own refs (from_arrow_refs ...): never freed by the executor

    @property
    def num_rows(self) -> int:
        return sum(m.num_rows for _, m in self.blocks)

    @property
    def size_bytes(self) -> int:
        return sum(m.size_bytes for _, m in self.blocks)

    @property
    def refs(self) -> list:
        return [r for r, _ in self.blocks]

    @property
    def metadata(self) -> list[BlockMetadata]:
        return [m for _, m in self.blocks]


@dataclass
class BlockBuilder:
    """Collects output tables and cuts them into blocks of about ``target_bytes`` each."""

    target_bytes: int
    _pending: list[pa.Table] = field(default_factory=list)
    _pending_bytes: int = 0

    def add(self, table: pa.Table) -> Iterator[pa.Table]:
        """Add ``table``; yields the blocks that are full."""
        if table.num_rows == 0 and self._pending:
            return
        self._pending.append(table)
        self._pending_bytes += table.nbytes
        if self._pending_bytes >= self.target_bytes:
            yield from self._cut(final=False)

    def finish(self) -> Iterator[pa.Table]:
        if self._pending:
            yield from self._cut(final=True)

    def _cut(self, final: bool) -> Iterator[pa.Table]:
        table = concat(self._pending)
        self._pending, self._pending_bytes = [], 0
        if table.nbytes <= self.target_bytes * 1.5 or table.num_rows <= 1:
            yield compact(table)
            return
        rows_per_block = max(1, int(table.num_rows * self.target_bytes / table.nbytes))
        start = 0
        while start < table.num_rows:
            piece = table.slice(start, rows_per_block)
            start += rows_per_block
            if start >= table.num_rows and not final:
                self._pending, self._pending_bytes = [piece], piece.nbytes  # the rest waits for more rows
                return
            yield compact(piece)


def compact(table: pa.Table) -> pa.Table:
    """``table`` with buffers of its own when it is a slice of a larger one. Pickling a slice
    writes every buffer it points into (5 rows of a 10M-row table pickle to the whole table), so
    every slice that goes to the object store passes here first."""
    if table.get_total_buffer_size() <= 2 * table.nbytes + 4096:
        return table
    return pa.table({name: pa.concat_arrays(column.chunks) if column.num_chunks else column
                     for name, column in zip(table.column_names, table.columns)}, schema=table.schema)


def metadata_of(table: pa.Table, *, exec_s: float = 0.0, input_files: Iterable[str] = ()) -> BlockMetadata:
    return BlockMetadata(table.num_rows, table.nbytes, table.schema, tuple(input_files), exec_s)


def empty_table(schema: pa.Schema | None = None) -> pa.Table:
    return schema.empty_table() if schema is not None else pa.table({})


def concat(tables: list[pa.Table]) -> pa.Table:
    """One table from several; compatible schemas are unified (a column missing in some becomes
    null there, int and float widen), incompatible ones are an error naming both."""
    tables = [t for t in tables if t.num_columns or t.num_rows]
    if not tables:
        return pa.table({})
    if len(tables) == 1:
        return tables[0]
    first = tables[0].schema
    if all(t.schema.equals(first) for t in tables[1:]):
        return pa.concat_tables(tables)
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
        other = next(t.schema for t in tables if not t.schema.equals(first))
        raise SchemaMismatchError(
            "blocks of this dataset have schemas that cannot be unified:\n"
            f"  {_one_line(first)}\n  {_one_line(other)}\n({e}). Cast the columns to one type in a map_batches "
            "step, or read the files with an explicit schema.") from None


class SchemaMismatchError(ValueError):
    """Blocks whose schemas cannot be combined (mixed file schemas, union of unlike datasets)."""


def _one_line(schema: pa.Schema) -> str:
    return ", ".join(f"{f.name}: {f.type}" for f in schema)


# ============================================================================ columns
def to_arrow_column(values: Any, name: str) -> pa.Array | pa.ChunkedArray:
    """A column from what a user function returned for it: an ndarray (n-dimensional ones become
    tensor columns), a list, an Arrow array, or a pandas Series."""
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values
    if type(values).__module__.startswith("pandas"):
        values = values.to_numpy()
    if isinstance(values, list) and values and isinstance(values[0], np.ndarray):
        return _tensor_column(values, name)
    if not isinstance(values, np.ndarray):
        try:
            return pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as e:
            raise ValueError(f"column {name!r}: cannot make an Arrow column of {type(values).__name__} ({e})") from None
    if values.ndim == 0:
        raise ValueError(f"column {name!r} is a 0-d array (a scalar); a batch column must hold one value per row")
    if values.ndim > 1:
        if len(values) == 0:  # Arrow's from_numpy_ndarray refuses empty arrays: build the type by hand
            tensor_type = pa.fixed_shape_tensor(pa.from_numpy_dtype(values.dtype), list(values.shape[1:]))
            storage = pa.array([], type=pa.list_(pa.from_numpy_dtype(values.dtype), int(np.prod(values.shape[1:]))))
            return pa.ExtensionArray.from_storage(tensor_type, storage)
        return pa.FixedShapeTensorArray.from_numpy_ndarray(np.ascontiguousarray(values))
    if values.dtype == object and len(values) and isinstance(values[0], np.ndarray):
        return _tensor_column(list(values), name)
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise ValueError(f"column {name!r}: cannot make an Arrow column of this {values.dtype} array ({e})") from None


def _tensor_column(arrays: list[np.ndarray], name: str) -> pa.Array:
    shapes = {a.shape for a in arrays}
    if len(shapes) == 1:
        return pa.FixedShapeTensorArray.from_numpy_ndarray(np.ascontiguousarray(np.stack(arrays)))
    # Ragged: each row's array as a flat list beside its shape (read back by column_to_numpy).
    dtype = np.result_type(*arrays)
    return pa.StructArray.from_arrays(
        [pa.array([a.astype(dtype, copy=False).ravel() for a in arrays]),
         pa.array([list(a.shape) for a in arrays], type=pa.list_(pa.int64()))],
        names=[RAGGED_DATA, RAGGED_SHAPE])


RAGGED_DATA, RAGGED_SHAPE = "__juno_ragged_data", "__juno_ragged_shape"


def _is_ragged(type_: pa.DataType) -> bool:
    return pa.types.is_struct(type_) and type_.num_fields == 2 and type_.field(0).name == RAGGED_DATA


def column_to_numpy(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """An Arrow column as the ndarray a "numpy" batch holds (tensor columns as n-d arrays)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if isinstance(column.type, pa.FixedShapeTensorType):
        return column.to_numpy_ndarray()
    if _is_ragged(column.type):
        data, shapes = column.field(0), column.field(1).to_pylist()
        values = data.values.to_numpy(zero_copy_only=False)  # keeps the dtype (to_pylist would not)
        offsets = data.offsets.to_numpy()
        out = np.empty(len(data), dtype=object)
        for i, shape in enumerate(shapes):
            out[i] = values[offsets[i]:offsets[i + 1]].reshape(shape)
        return out
    try:
        return column.to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return np.asarray(column.to_pylist(), dtype=object)


# ============================================================================ batches
def to_batch(table: pa.Table, batch_format: str | None) -> Any:
    """``table`` in the format a batch function asked for."""
    if batch_format in ("default", "numpy"):
        return {name: column_to_numpy(table.column(name)) for name in table.column_names}
    if batch_format == "pandas":
        return to_pandas(table)
    if batch_format in ("pyarrow", None):
        return table
    raise ValueError(f"batch_format must be one of {', '.join(map(repr, BATCH_FORMATS))}, got {batch_format!r}")


def to_pandas(table: pa.Table):
    import pandas as pd

    special = [n for n in table.column_names if _is_tensor_type(table.column(n).type)]
    if not special:
        return table.to_pandas()
    frame = table.drop_columns(special).to_pandas()
    for name in special:
        frame[name] = list(column_to_numpy(table.column(name)))
    return frame[table.column_names] if isinstance(frame, pd.DataFrame) else frame


def _is_tensor_type(type_: pa.DataType) -> bool:
    return isinstance(type_, pa.FixedShapeTensorType) or _is_ragged(type_)


def from_batch(batch: Any, *, what: str = "the function") -> pa.Table:
    """The table a batch function's return value stands for; a clear error for anything else."""
    if isinstance(batch, pa.Table):
        return batch
    if type(batch).__name__ == "DataFrame" and type(batch).__module__.startswith("pandas"):
        return _from_pandas(batch)
    if isinstance(batch, collections.abc.Mapping):
        if not batch:
            return pa.table({})
        columns = {}
        for name, values in batch.items():
            if not isinstance(name, str):
                raise ValueError(f"{what} returned a dict with a non-string key {name!r}; column names must be str")
            columns[name] = to_arrow_column(values, name)
        lengths = {name: len(col) for name, col in columns.items()}
        if len(set(lengths.values())) > 1:
            shown = ", ".join(f"{n!r}: {k}" for n, k in lengths.items())
            raise ValueError(f"{what} returned columns of different lengths ({shown}); every column of a batch "
                             "must have one value per row")
        return pa.table(columns)
    raise TypeError(f"{what} must return a batch: a dict of column name -> array, a pandas.DataFrame or a "
                    f"pyarrow.Table; it returned a {type(batch).__module__}.{type(batch).__qualname__}")


def _from_pandas(frame) -> pa.Table:
    columns = {}
    for name in frame.columns:
        series = frame[name]
        if series.dtype == object and len(series) and isinstance(series.iloc[0], np.ndarray):
            columns[str(name)] = _tensor_column(list(series), str(name))
        else:
            columns[str(name)] = pa.Array.from_pandas(series)
    return pa.table(columns) if columns else pa.table({})


# ============================================================================ rows
def to_rows(table: pa.Table) -> Iterator[dict]:
    """Rows as dicts; tensor columns give ndarrays."""
    special = [n for n in table.column_names if _is_tensor_type(table.column(n).type)]
    if not special:
        yield from table.to_pylist()
        return
    arrays = {n: column_to_numpy(table.column(n)) for n in special}
    plain = table.drop_columns(special).to_pylist() if len(special) < table.num_columns else [{}] * table.num_rows
    names = table.column_names
    for i, row in enumerate(plain):
        for n in special:
            row[n] = arrays[n][i]
        yield {n: row[n] for n in names}


def from_rows(rows: list, *, what: str = "the function") -> pa.Table:
    """A table from row dicts (a row that is not a dict is an error saying so)."""
    if not rows:
        return pa.table({})
    for row in rows:
        if not isinstance(row, collections.abc.Mapping):
            raise TypeError(f"{what} must return a dict (one row: column name -> value); it returned a "
                            f"{type(row).__module__}.{type(row).__qualname__}")
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    if any(isinstance(v, np.ndarray) and v.ndim > 0 for v in rows[0].values()):
        return pa.table({n: to_arrow_column([r.get(n) for r in rows], n) for n in names})
    try:
        return pa.Table.from_pylist([dict(r) for r in rows])
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise ValueError(f"the rows {what} returned do not form a table: {e}") from None


def items_to_table(items: list) -> pa.Table:
    """from_items: dicts are rows; anything else is the single column "item" (as in Ray)."""
    if items and all(isinstance(i, collections.abc.Mapping) for i in items):
        return from_rows(items, what="from_items")
    return pa.table({"item": to_arrow_column(list(items) if not isinstance(items, list) else items, "item")})
