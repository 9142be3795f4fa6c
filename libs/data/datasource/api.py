"""Ray Data's file readers and writers, with Ray's names and arguments.

``*_read(...)`` builds the ``Read`` (driver side: lists files, reads parquet footers, plans
tasks) and ``read_*`` wraps it in a ``Dataset``; ``write_*(ds, path, ...)`` are the bodies of
``Dataset.write_*``: they build a sink and hand it to ``ds._write``.
"""
from __future__ import annotations

import os

import juno
from juno.data.context import DataContext
from juno.data.datasource import formats, parquet
from juno.data.datasource.file_read import ReadUnit, choose_num_blocks, make_read, num_blocks_arg
from juno.data.datasource.paths import expand_paths
from juno.data.datasource.sinks import CSVSink, JSONSink, NumpySink, ParquetSink
from juno.data.read_task import Read


def _cpus() -> float:
    if juno.is_initialized():
        return float(juno.cluster_resources().get("CPU", 1))
    return float(os.cpu_count() or 1)


def _options_only(kind: str, given: dict, allowed: tuple[str, ...]) -> dict:
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise TypeError(f"{kind} got unexpected arguments {unknown}; it passes through {list(allowed)}")
    return given


def file_read(name: str, paths, read_unit, options: dict, *, filesystem=None, include_paths: bool = False,
              file_extensions=None, partitioning=None, override_num_blocks=None, parallelism=-1) -> Read:
    """The ``Read`` of a row format: one unit per file."""
    requested = num_blocks_arg(override_num_blocks, parallelism)
    files = expand_paths(paths, file_extensions=file_extensions, filesystem=filesystem, partitioning=partitioning)
    units = [ReadUnit(f.path, f.size, f.partition) for f in files]
    ctx = DataContext.get_current()
    num_blocks = choose_num_blocks(sum(u.size_bytes for u in units), requested=requested, cpus=_cpus(), ctx=ctx)
    return make_read(name, units, read_unit, options, num_blocks=num_blocks, filesystem=filesystem,
                     include_paths=include_paths, ctx=ctx)


# ============================================================================ reads
def parquet_read(paths, *, columns=None, filter=None, schema=None, filesystem=None, include_paths=False,
                 file_extensions=None, partitioning="hive", override_num_blocks=None, parallelism=-1) -> Read:
    requested = num_blocks_arg(override_num_blocks, parallelism)
    files = expand_paths(paths, file_extensions=file_extensions, filesystem=filesystem, partitioning=partitioning)
    expr = parquet.as_filter(filter)
    columns = list(columns) if columns is not None and not isinstance(columns, str) else columns
    units, dataset_schema = parquet.parquet_units(files, columns=columns, filter=expr, schema=schema,
                                                  filesystem=filesystem)
    ctx = DataContext.get_current()
    num_blocks = choose_num_blocks(sum(u.size_bytes for u in units), requested=requested, cpus=_cpus(), ctx=ctx)
    return make_read("ReadParquet", units, parquet.read_parquet_unit,
                     {"columns": columns, "filter": expr, "schema": schema}, num_blocks=num_blocks,
                     filesystem=filesystem, include_paths=include_paths, add_partition_columns=False,
                     schema=dataset_schema, ctx=ctx)


def csv_read(paths, *, filesystem=None, include_paths=False, file_extensions=None, partitioning="hive",
             override_num_blocks=None, parallelism=-1, **arrow_csv_args) -> Read:
    options = _options_only("read_csv", arrow_csv_args, ("parse_options", "read_options", "convert_options"))
    return file_read("ReadCSV", paths, formats.read_csv_file, options, filesystem=filesystem,
                     include_paths=include_paths, file_extensions=file_extensions, partitioning=partitioning,
                     override_num_blocks=override_num_blocks, parallelism=parallelism)


def json_read(paths, *, filesystem=None, include_paths=False, file_extensions=("json", "jsonl"),
              partitioning="hive", override_num_blocks=None, parallelism=-1, **arrow_json_args) -> Read:
    options = _options_only("read_json", arrow_json_args, ("parse_options", "read_options"))
    return file_read("ReadJSON", paths, formats.read_json_file, options, filesystem=filesystem,
                     include_paths=include_paths, file_extensions=_list(file_extensions), partitioning=partitioning,
                     override_num_blocks=override_num_blocks, parallelism=parallelism)


def text_read(paths, *, encoding="utf-8", drop_empty_lines=False, filesystem=None, include_paths=False,
              file_extensions=None, partitioning=None, override_num_blocks=None, parallelism=-1) -> Read:
    return file_read("ReadText", paths, formats.read_text_file,
                     {"encoding": encoding, "drop_empty_lines": drop_empty_lines}, filesystem=filesystem,
                     include_paths=include_paths, file_extensions=file_extensions, partitioning=partitioning,
                     override_num_blocks=override_num_blocks, parallelism=parallelism)


def numpy_read(paths, *, filesystem=None, include_paths=False, file_extensions=("npy",), partitioning=None,
               override_num_blocks=None, parallelism=-1, allow_pickle=False) -> Read:
    return file_read("ReadNumpy", paths, formats.read_numpy_file, {"allow_pickle": allow_pickle},
                     filesystem=filesystem, include_paths=include_paths, file_extensions=_list(file_extensions),
                     partitioning=partitioning, override_num_blocks=override_num_blocks, parallelism=parallelism)


def binary_read(paths, *, filesystem=None, include_paths=False, file_extensions=None, partitioning=None,
                override_num_blocks=None, parallelism=-1) -> Read:
    return file_read("ReadBinary", paths, formats.read_binary_file, {}, filesystem=filesystem,
                     include_paths=include_paths, file_extensions=file_extensions, partitioning=partitioning,
                     override_num_blocks=override_num_blocks, parallelism=parallelism)


def images_read(paths, *, size=None, mode=None, filesystem=None, include_paths=False,
                file_extensions=tuple(formats.IMAGE_EXTENSIONS), partitioning=None, override_num_blocks=None,
                parallelism=-1) -> Read:
    formats.require_pillow()  # on the driver, before any task: a clear ImportError now
    return file_read("ReadImage", paths, formats.read_image_file,
                     {"size": formats.validate_image_size(size), "mode": mode}, filesystem=filesystem,
                     include_paths=include_paths, file_extensions=_list(file_extensions), partitioning=partitioning,
                     override_num_blocks=override_num_blocks, parallelism=parallelism)


def _list(extensions):
    return list(extensions) if extensions is not None else None


def _dataset(read: Read, ray_remote_args, concurrency):
    from juno.data.dataset import Dataset

    return Dataset.from_read(read, ray_remote_args=ray_remote_args, concurrency=concurrency)


def read_parquet(paths, *, columns=None, filter=None, schema=None, ray_remote_args=None, concurrency=None,
                 **options):
    """A dataset of parquet files: ``columns`` projects, ``filter`` (an expression or
    ``[(col, op, value), ...]``) drops rows and skips the row groups it cannot match."""
    return _dataset(parquet_read(paths, columns=columns, filter=filter, schema=schema, **options),
                    ray_remote_args, concurrency)


def read_csv(paths, *, ray_remote_args=None, concurrency=None, **options):
    """A dataset of CSV files (pyarrow.csv; ``parse_options``/``read_options``/``convert_options`` pass through)."""
    return _dataset(csv_read(paths, **options), ray_remote_args, concurrency)


def read_json(paths, *, ray_remote_args=None, concurrency=None, **options):
    """A dataset of JSON-lines files (pyarrow.json), or files each holding a JSON array of objects."""
    return _dataset(json_read(paths, **options), ray_remote_args, concurrency)


def read_text(paths, *, ray_remote_args=None, concurrency=None, **options):
    """A dataset with one row per line of text, in the column "text"."""
    return _dataset(text_read(paths, **options), ray_remote_args, concurrency)


def read_numpy(paths, *, ray_remote_args=None, concurrency=None, **options):
    """A dataset of .npy files: one row per entry of each array's first axis, in the column "data"."""
    return _dataset(numpy_read(paths, **options), ray_remote_args, concurrency)


def read_binary_files(paths, *, ray_remote_args=None, concurrency=None, **options):
    """A dataset with one row per file, its contents in the column "bytes"."""
    return _dataset(binary_read(paths, **options), ray_remote_args, concurrency)


def read_images(paths, *, ray_remote_args=None, concurrency=None, **options):
    """A dataset with one row per image (needs Pillow), as arrays in the column "image"."""
    return _dataset(images_read(paths, **options), ray_remote_args, concurrency)


# ============================================================================ writes
_SINK_OPTIONS = ("filesystem", "try_create_dir", "mode", "filename_provider", "min_rows_per_file",
                 "num_rows_per_file", "max_rows_per_file", "arrow_open_stream_args", "ray_remote_args",
                 "concurrency")


def _split_options(options: dict) -> tuple[dict, dict]:
    """(the options every sink takes, the rest: the format's own)."""
    sink = {k: v for k, v in options.items() if k in _SINK_OPTIONS}
    return sink, {k: v for k, v in options.items() if k not in sink}


def parquet_sink(path, *, partition_cols=None, arrow_parquet_args_fn=None, **options) -> ParquetSink:
    sink_options, arrow_parquet_args = _split_options(options)
    return ParquetSink(path, partition_cols=partition_cols, arrow_parquet_args_fn=arrow_parquet_args_fn,
                       arrow_parquet_args=arrow_parquet_args, **sink_options)


def csv_sink(path, *, arrow_csv_args_fn=None, **options) -> CSVSink:
    sink_options, arrow_csv_args = _split_options(options)
    _options_only("write_csv", arrow_csv_args, ("write_options",))
    return CSVSink(path, arrow_csv_args_fn=arrow_csv_args_fn, arrow_csv_args=arrow_csv_args, **sink_options)


def json_sink(path, *, pandas_json_args_fn=None, **options) -> JSONSink:
    sink_options, pandas_json_args = _split_options(options)
    return JSONSink(path, pandas_json_args_fn=pandas_json_args_fn, pandas_json_args=pandas_json_args,
                    **sink_options)


def numpy_sink(path, *, column, **options) -> NumpySink:
    sink_options, rest = _split_options(options)
    _options_only("write_numpy", rest, ())
    return NumpySink(path, column=column, **sink_options)


def write_parquet(ds, path, **options) -> None:
    """``Dataset.write_parquet``: ``partition_cols`` for hive directories; other keywords go to
    ``pyarrow.parquet.write_table`` (``compression=`` ...)."""
    ds._write(parquet_sink(path, **options))


def write_csv(ds, path, **options) -> None:
    """``Dataset.write_csv`` (``write_options=pyarrow.csv.WriteOptions(...)`` passes through)."""
    ds._write(csv_sink(path, **options))


def write_json(ds, path, **options) -> None:
    """``Dataset.write_json``: JSON lines; other keywords go to ``pandas.DataFrame.to_json``."""
    ds._write(json_sink(path, **options))


def write_numpy(ds, path, *, column, **options) -> None:
    """``Dataset.write_numpy``: the column ``column`` of each block as a .npy file."""
    ds._write(numpy_sink(path, column=column, **options))
