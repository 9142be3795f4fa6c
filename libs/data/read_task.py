"""What a read is made of: ``ReadTask``s, each a function a worker runs to make blocks.

A datasource (libs/data/datasource/) turns paths and options into read tasks on the driver,
cheaply (listing files, reading footers at most); the executor runs each task as (the first
step of) a remote task, fused with the map steps after it. The estimates let the executor
plan blocks and memory before any data is read.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

import pyarrow as pa


@dataclass
class ReadTask:
    """``read_fn()`` yields pyarrow Tables (one or more per task); it runs in a worker, so it must
    pickle (capture paths and options, not open files)."""

    read_fn: Callable[[], Iterable[pa.Table]]
    num_rows: int | None = None  # estimates; None when unknown before reading
    size_bytes: int | None = None
    input_files: tuple[str, ...] = ()
    schema: pa.Schema | None = None
    meta: dict = field(default_factory=dict)

    def __call__(self) -> Iterable[pa.Table]:
        return self.read_fn()


@dataclass
class Read:
    """A datasource's answer: its name (shown in the plan, e.g. "ReadParquet") and its tasks."""

    name: str
    tasks: list[ReadTask]
    schema: pa.Schema | None = None  # known up front for some formats (parquet footers)
