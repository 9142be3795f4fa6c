"""File sinks: where ``Dataset.write_*`` puts blocks, one or more files per block.

The contract with ``Dataset._write``: ``prepare()`` on the driver (checks the target against the
save mode, creates the directory), ``write_block(table, task_index, block_index)`` in a worker
per block (returns the paths it wrote), then ``commit(written)`` on the driver, or ``abort()``
when a block failed. Names are deterministic (``{dataset_uuid}_{task:06d}_{block:06d}.ext``
unless a ``filename_provider`` says otherwise), and every file is written under a hidden
temporary name and renamed when complete, so a reader never sees a half-written file: hidden
names are skipped by every reader.

What ``Dataset._write`` reads from a sink besides the methods: ``should_write`` (False after
``prepare`` in "ignore" mode when the target has data: skip the execution), ``min_rows_per_write``
(gather blocks into at least this many rows before writing, Ray's ``min_rows_per_file``),
``ray_remote_args`` and ``concurrency`` of the write tasks.
"""
from __future__ import annotations

import datetime
import decimal
import enum
import inspect
import json
import os
import urllib.parse
import uuid

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from juno.data.block import column_to_numpy, to_pandas, to_rows
from juno.data.datasource.paths import HIVE_NULL, strip_scheme


class SaveMode(str, enum.Enum):
    """What a write does when its target directory already holds files (Ray's ``SaveMode``)."""

    ERROR = "error"  # a clear error (the default)
    OVERWRITE = "overwrite"  # delete what is there, then write
    APPEND = "append"  # write new files beside the old ones (names never collide: a new uuid)
    IGNORE = "ignore"  # write nothing


class FilenameProvider:
    """Names the file(s) written for a block (Ray's ``FilenameProvider``); subclass to choose names.
    A name must be unique per (task_index, block_index) within a write."""

    def get_filename_for_block(self, block: pa.Table, task_index: int, block_index: int) -> str:
        raise NotImplementedError


class DefaultFilenameProvider(FilenameProvider):
    def __init__(self, dataset_uuid: str, file_format: str):
        self.dataset_uuid = dataset_uuid
        self.file_format = file_format

    def get_filename_for_block(self, block, task_index, block_index, write_uuid=None) -> str:
        return f"{write_uuid or self.dataset_uuid}_{task_index:06d}_{block_index:06d}.{self.file_format}"


def provider_filename(provider, block, write_uuid: str, task_index: int, block_index: int) -> str:
    """Ray's providers take ``write_uuid`` in newer versions and not in older ones: accept both."""
    if "write_uuid" in inspect.signature(provider.get_filename_for_block).parameters:
        name = provider.get_filename_for_block(block, task_index=task_index, block_index=block_index,
                                               write_uuid=write_uuid)
    else:
        name = provider.get_filename_for_block(block, task_index, block_index)
    if not isinstance(name, str) or not name or "/" in name or name.startswith((".", "_")):
        raise ValueError(f"{type(provider).__name__}.get_filename_for_block returned {name!r}; a file name must be "
                         "a non-empty str without '/' that does not start with '.' or '_' (readers skip those)")
    return name


def positive_int_or_none(name: str, value) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{name} must be a positive int or None, got {value!r}")
    return value


class FileSink:
    """Writes each block as files of one format under ``path`` (a directory); see the module doc."""

    file_format = ""  # the default names' extension (set by each subclass)

    def __init__(self, path, *, filesystem: pafs.FileSystem | None = None, try_create_dir: bool = True,
                 mode: str | SaveMode = SaveMode.ERROR, filename_provider: FilenameProvider | None = None,
                 min_rows_per_file: int | None = None, num_rows_per_file: int | None = None,
                 max_rows_per_file: int | None = None, partition_cols: list[str] | None = None,
                 arrow_open_stream_args: dict | None = None, ray_remote_args: dict | None = None,
                 concurrency: int | None = None):
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a directory path (str), got {type(path).__name__}")
        path = strip_scheme(path)
        self.path = os.path.abspath(os.path.expanduser(path)) if filesystem is None else path
        self.filesystem = filesystem
        self.try_create_dir = try_create_dir
        try:
            self.mode = SaveMode(mode)
        except ValueError:
            raise ValueError(f"mode must be one of {[m.value for m in SaveMode]}, got {mode!r}") from None
        self.dataset_uuid = uuid.uuid4().hex
        self.filename_provider = filename_provider or DefaultFilenameProvider(self.dataset_uuid, self.file_format)
        if min_rows_per_file is not None and num_rows_per_file is not None:
            raise ValueError("give min_rows_per_file or num_rows_per_file (its older name), not both")
        self.min_rows_per_write = positive_int_or_none(
            "min_rows_per_file", min_rows_per_file if min_rows_per_file is not None else num_rows_per_file)
        self.max_rows_per_file = positive_int_or_none("max_rows_per_file", max_rows_per_file)
        if self.min_rows_per_write and self.max_rows_per_file and self.min_rows_per_write > self.max_rows_per_file:
            raise ValueError(f"min_rows_per_file ({self.min_rows_per_write}) is above max_rows_per_file "
                             f"({self.max_rows_per_file})")
        if partition_cols is not None and (isinstance(partition_cols, str)
                                           or not all(isinstance(c, str) for c in partition_cols)):
            raise TypeError(f"partition_cols must be a list of column names, got {partition_cols!r}")
        self.partition_cols = list(partition_cols or [])
        self.arrow_open_stream_args = dict(arrow_open_stream_args or {})
        self.ray_remote_args = dict(ray_remote_args or {})
        self.concurrency = concurrency
        self.should_write = True
        self.created_root = False
        self.written: list[str] = []

    @property
    def fs(self) -> pafs.FileSystem:
        return self.filesystem or pafs.LocalFileSystem()

    # ------------------------------------------------------------------ driver
    def prepare(self) -> None:
        """Check the target against the mode and create the directory (driver, before any block)."""
        info = self.fs.get_file_info(self.path)
        if info.type == pafs.FileType.File:
            if self.mode is SaveMode.OVERWRITE:
                self.fs.delete_file(self.path)
            elif self.mode is SaveMode.IGNORE:
                self.should_write = False
                return
            else:
                raise FileExistsError(f"{self.path!r} is a file; a write makes a directory of files there. Choose "
                                      "another path, or pass mode=\"overwrite\" to replace the file")
        elif info.type == pafs.FileType.Directory:
            if self.fs.get_file_info(pafs.FileSelector(self.path)):
                if self.mode is SaveMode.ERROR:
                    raise FileExistsError(
                        f"{self.path!r} exists and is not empty. Pass mode=\"overwrite\" to replace its contents, "
                        "mode=\"append\" to add files beside them, or mode=\"ignore\" to skip the write")
                if self.mode is SaveMode.OVERWRITE:
                    self.fs.delete_dir_contents(self.path)
                elif self.mode is SaveMode.IGNORE:
                    self.should_write = False
            return
        if not self.try_create_dir:
            raise FileNotFoundError(f"{self.path!r} does not exist; create it, or pass try_create_dir=True")
        self.fs.create_dir(self.path, recursive=True)
        self.created_root = True

    def commit(self, written: list[list[str]]) -> None:
        """Every block was written (driver). Files are complete as they are renamed, so nothing is left to do."""
        self.written = [p for paths in written for p in paths]

    def abort(self, written: list[list[str]] | None = None) -> None:
        """A block failed (driver): remove what this write created (the files of the blocks written,
        ``written`` when the caller has them, any file named with this write's uuid, temporary
        files) and nothing else; the directory too when this write created it and it is empty."""
        if not self.should_write:
            return
        fs = self.fs
        doomed = {p for paths in written or () for p in paths}
        if fs.get_file_info(self.path).type == pafs.FileType.Directory:
            for info in fs.get_file_info(pafs.FileSelector(self.path, recursive=True)):
                if info.type == pafs.FileType.File and self.dataset_uuid in os.path.basename(info.path):
                    doomed.add(info.path)
        for path in doomed:
            if fs.get_file_info(path).type == pafs.FileType.File:
                fs.delete_file(path)
        if self.created_root:
            self._remove_empty_dirs()

    def _remove_empty_dirs(self) -> None:
        fs = self.fs
        if fs.get_file_info(self.path).type != pafs.FileType.Directory:
            return
        dirs = [i.path for i in fs.get_file_info(pafs.FileSelector(self.path, recursive=True))
                if i.type == pafs.FileType.Directory]
        for d in sorted(dirs, key=len, reverse=True) + [self.path]:
            if not fs.get_file_info(pafs.FileSelector(d)):
                fs.delete_dir(d)

    # ------------------------------------------------------------------ worker
    def write_block(self, table: pa.Table, task_index: int, block_index: int) -> list[str]:
        """Write one block (worker); returns the paths written. An empty block writes no file. On
        failure the files this call wrote are removed before the error propagates."""
        if not self.should_write or table.num_rows == 0:
            return []
        written: list[str] = []
        try:
            for subdir, part in self.partitions(table):
                directory = f"{self.path}/{subdir}" if subdir else self.path
                if subdir:
                    self.fs.create_dir(directory, recursive=True)
                name = provider_filename(self.filename_provider, part, self.dataset_uuid, task_index, block_index)
                pieces = self.file_pieces(part)
                for i, piece in enumerate(pieces):
                    filename = name if len(pieces) == 1 else numbered(name, i)
                    written.append(self.write_one(piece, f"{directory}/{filename}"))
        except BaseException:
            for path in written:
                try:
                    self.fs.delete_file(path)
                except OSError:
                    pass
            raise
        return written

    def partitions(self, table: pa.Table) -> list[tuple[str, pa.Table]]:
        """(hive sub-directory, rows) per distinct value of the partition columns, which the files omit."""
        if not self.partition_cols:
            return [("", table)]
        missing = [c for c in self.partition_cols if c not in table.column_names]
        if missing:
            raise ValueError(f"partition_cols {missing} are not columns of the dataset ({table.column_names})")
        keys = table.select(self.partition_cols).group_by(self.partition_cols).aggregate([]).to_pylist()
        out = []
        for key in keys:
            mask = None
            for col, value in key.items():
                term = pc.is_null(table[col]) if value is None else pc.equal(table[col], pa.scalar(value))
                mask = term if mask is None else pc.and_(mask, term)
            subdir = "/".join(f"{urllib.parse.quote(col, safe='')}="
                              f"{HIVE_NULL if v is None else urllib.parse.quote(str(v), safe='')}"
                              for col, v in key.items())
            out.append((subdir, table.filter(mask).drop_columns(self.partition_cols)))
        return out

    def file_pieces(self, table: pa.Table) -> list[pa.Table]:
        if not self.max_rows_per_file or table.num_rows <= self.max_rows_per_file:
            return [table]
        step = self.max_rows_per_file
        return [table.slice(start, step) for start in range(0, table.num_rows, step)]

    def write_one(self, table: pa.Table, path: str) -> str:
        """Write under a hidden temporary name in the same directory, then rename (atomic)."""
        directory, name = os.path.split(path)
        temp = f"{directory}/.{name}.{self.dataset_uuid}.tmp"
        try:
            with self.fs.open_output_stream(temp, **self.arrow_open_stream_args) as f:
                self.write_table(table, f)
            self.fs.move(temp, path)
        except BaseException:
            if self.fs.get_file_info(temp).type == pafs.FileType.File:
                self.fs.delete_file(temp)
            raise
        return path

    def write_table(self, table: pa.Table, f) -> None:
        """Write ``table`` to the binary stream ``f`` in this sink's format."""
        raise NotImplementedError


def numbered(name: str, index: int) -> str:
    """``abc.parquet`` -> ``abc_000001.parquet``: the files of a block cut by max_rows_per_file."""
    stem, dot, ext = name.rpartition(".")
    return f"{stem}_{index:06d}.{ext}" if dot and stem else f"{name}_{index:06d}"


def scalar_columns_only(table: pa.Table, what: str) -> None:
    """CSV holds scalars: a tensor or nested column is an error naming it."""
    for field in table.schema:
        if pa.types.is_nested(field.type) or isinstance(field.type, pa.BaseExtensionType):
            raise ValueError(f"column {field.name!r} ({field.type}) cannot be written as {what}, which holds scalars; "
                             "drop or convert it first, or use write_parquet (or write_numpy for one array column)")


class ParquetSink(FileSink):
    file_format = "parquet"

    def __init__(self, path, *, arrow_parquet_args_fn=None, arrow_parquet_args: dict | None = None, **options):
        super().__init__(path, **options)
        self.arrow_parquet_args_fn = arrow_parquet_args_fn
        self.arrow_parquet_args = dict(arrow_parquet_args or {})

    def write_table(self, table, f) -> None:
        import pyarrow.parquet as pq

        args = dict(self.arrow_parquet_args)
        if self.arrow_parquet_args_fn is not None:
            args.update(self.arrow_parquet_args_fn())
        pq.write_table(table, f, **args)


class CSVSink(FileSink):
    file_format = "csv"

    def __init__(self, path, *, arrow_csv_args_fn=None, arrow_csv_args: dict | None = None, **options):
        super().__init__(path, **options)
        self.arrow_csv_args_fn = arrow_csv_args_fn
        self.arrow_csv_args = dict(arrow_csv_args or {})

    def write_table(self, table, f) -> None:
        import pyarrow.csv as pacsv

        scalar_columns_only(table, "CSV")
        args = dict(self.arrow_csv_args)
        if self.arrow_csv_args_fn is not None:
            args.update(self.arrow_csv_args_fn())
        pacsv.write_csv(table, f, **args)


class JSONSink(FileSink):
    """JSON lines (one object per row). Written with the json module, so floats keep every digit
    and timestamps are ISO strings (both read back as they were); given ``pandas_json_args``
    it writes with ``pandas.DataFrame.to_json`` as Ray does."""

    file_format = "json"

    def __init__(self, path, *, pandas_json_args_fn=None, pandas_json_args: dict | None = None, **options):
        super().__init__(path, **options)
        self.pandas_json_args_fn = pandas_json_args_fn
        self.pandas_json_args = dict(pandas_json_args or {})

    def write_table(self, table, f) -> None:
        if self.pandas_json_args or self.pandas_json_args_fn is not None:
            args = {"orient": "records", "lines": True, **self.pandas_json_args}
            if self.pandas_json_args_fn is not None:
                args.update(self.pandas_json_args_fn())
            f.write(to_pandas(table).to_json(**args).encode("utf-8"))
            return
        for row in to_rows(table):
            f.write(json.dumps(row, default=json_value).encode("utf-8") + b"\n")


def json_value(value):
    """What json cannot write by itself: arrays, numpy scalars, dates and times, decimals."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (decimal.Decimal, datetime.timedelta)):
        return str(value)
    raise TypeError(f"a value of type {type(value).__name__} cannot be written as JSON; convert its column first "
                    "(or use write_parquet)")


class NumpySink(FileSink):
    """One column of each block as a .npy array (rows along the first axis)."""

    file_format = "npy"

    def __init__(self, path, *, column: str, **options):
        if not isinstance(column, str):
            raise TypeError(f"write_numpy needs column=, the name of the column to write, got {column!r}")
        super().__init__(path, **options)
        self.column = column

    def write_table(self, table, f) -> None:
        if self.column not in table.column_names:
            raise ValueError(f"write_numpy(column={self.column!r}): no such column; the columns are "
                             f"{table.column_names}")
        np.save(f, column_to_numpy(table.column(self.column)), allow_pickle=False)
