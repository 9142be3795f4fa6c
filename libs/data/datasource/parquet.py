"""Parquet: footers read on the driver give the schema, sizes and row counts, and let a filter
skip row groups whose statistics cannot match (and whole files whose hive partition cannot);
each read task scans its row groups with the projection and the filter (runs in a worker).
"""
from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from juno.data.block import SchemaMismatchError, _one_line
from juno.data.datasource.file_read import ReadUnit
from juno.data.datasource.paths import FileInfo

_FORMAT = pads.ParquetFileFormat()


def as_filter(filter) -> pc.Expression | None:
    """A pyarrow.compute expression from ``filter=``: an expression, or pyarrow's list form
    ``[("col", op, value), ...]`` (AND), or a list of such lists (OR of ANDs)."""
    if filter is None or isinstance(filter, pc.Expression):
        return filter
    if isinstance(filter, (list, tuple)) and filter:
        try:
            return pq.filters_to_expression(list(filter))
        except (TypeError, ValueError) as e:
            raise ValueError(f"filter={filter!r} is not a valid filter list ({e}); write it as "
                             "[(\"column\", \"op\", value), ...] with op one of =, ==, !=, <, <=, >, >=, in, "
                             "not in, or as a pyarrow.compute expression such as pc.field(\"x\") > 3") from None
    raise TypeError(f"filter must be a pyarrow.compute.Expression or a list of (column, op, value) tuples, "
                    f"got {type(filter).__name__}")


def partition_expression(partition: dict) -> pc.Expression | None:
    """What a file's hive directories say of its rows (e.g. year == "2020"), for pruning."""
    expr = None
    for name, value in partition.items():
        term = pc.field(name).is_null() if value is None else pc.field(name) == pa.scalar(value, pa.string())
        expr = term if expr is None else expr & term
    return expr


def fragment(path: str, partition: dict, filesystem=None) -> pads.ParquetFileFragment:
    return _FORMAT.make_fragment(path, filesystem=filesystem or pafs.LocalFileSystem(),
                                 partition_expression=partition_expression(partition))


def full_schema(physical: pa.Schema, partition: dict) -> pa.Schema:
    """A file's columns and then its partition columns (strings, as in Ray)."""
    for name in partition:
        if name not in physical.names:
            physical = physical.append(pa.field(name, pa.string()))
    return physical


def parquet_units(files: list[FileInfo], *, columns: list[str] | None = None, filter: pc.Expression | None = None,
                  schema: pa.Schema | None = None, filesystem=None) -> tuple[list[ReadUnit], pa.Schema | None]:
    """One unit per row group that the filter may match, and the dataset's schema (the files'
    schemas unified, then projected). Reads each file's footer, nothing more."""
    units: list[ReadUnit] = []
    schemas: list[pa.Schema] = []
    for file in files:
        frag = fragment(file.path, file.partition, filesystem)
        try:
            frag.ensure_complete_metadata()
        except (pa.ArrowInvalid, OSError) as e:
            raise ValueError(f"{file.path!r} is not a parquet file ({e}); pass file_extensions=[\"parquet\"] "
                             "to read only the parquet files of a directory") from None
        file_schema = schema or full_schema(frag.physical_schema, file.partition)
        schemas.append(file_schema)
        check_columns(columns, file_schema, file.path)
        groups = frag.row_groups
        kept = {g.id for g in groups}
        if filter is not None:
            try:
                kept = {g.id for f in frag.split_by_row_group(filter=filter, schema=file_schema) for g in f.row_groups}
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
                raise ValueError(f"filter {filter} does not apply to {file.path!r}, whose columns are "
                                 f"{', '.join(f'{f.name}: {f.type}' for f in file_schema)} ({e})") from None
        if not groups:  # an empty file: one unit still, so its schema reaches the dataset
            units.append(ReadUnit(file.path, 0, file.partition, 0, ()))
        for g in groups:
            if g.id in kept:
                units.append(ReadUnit(file.path, g.total_byte_size, file.partition,
                                      g.num_rows if filter is None else None, (g.id,)))
    if not schemas:
        return units, None
    unified = unify_schemas(schemas)
    if columns is not None:
        unified = pa.schema([unified.field(c) for c in columns])
    return units, unified


def unify_schemas(schemas: list[pa.Schema]) -> pa.Schema:
    """One schema for files whose schemas differ where Arrow can widen them, else an error naming
    two of them (the same rule as ``block.concat`` applies to the blocks)."""
    try:
        return pa.unify_schemas(schemas, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
        first = schemas[0]
        other = next((s for s in schemas if not s.equals(first)), first)
        raise SchemaMismatchError(
            f"the files' schemas cannot be unified:\n  {_one_line(first)}\n  {_one_line(other)}\n({e}). "
            "Pass schema= to read them all with one schema, or read the files apart") from None


def check_columns(columns, schema: pa.Schema, path: str) -> None:
    if columns is None:
        return
    if isinstance(columns, str) or not all(isinstance(c, str) for c in columns):
        raise TypeError(f"columns must be a list of column names, got {columns!r}")
    missing = [c for c in columns if c not in schema.names]
    if missing:
        raise ValueError(f"columns {missing} are not in {path!r}, whose columns are {schema.names}")


def read_parquet_unit(unit: ReadUnit, filesystem=None, *, columns=None, filter=None, schema=None) -> pa.Table:
    """Scan the unit's row groups (partition columns filled in from its directories)."""
    frag = fragment(unit.path, unit.partition, filesystem)
    scan_schema = schema or full_schema(frag.physical_schema, unit.partition)
    if unit.row_groups is not None:
        frag = frag.subset(row_group_ids=list(unit.row_groups))
    return pads.Scanner.from_fragment(frag, schema=scan_schema, columns=columns, filter=filter).to_table()
