"""Juno Data: Ray Data's API on Juno: lazy datasets of Arrow blocks, run by a streaming executor.

    import juno.data as rd            # or: from juno import data
    ds = rd.range(1000).map_batches(lambda b: {"id": b["id"] * 2}).filter(expr="id % 3 == 0")
    ds.take(5); ds.count(); ds.iter_batches(batch_size=128)

Everything here uses only Juno's public API (tasks, actors, put/get/wait).
"""
from juno.data.aggregate import AbsMax, AggregateFn, Count, Max, Mean, Min, Quantile, Std, Sum, Unique
from juno.data.block import BlockMetadata, RefBundle
from juno.data.context import DataContext, DatasetContext, ExecutionOptions, ExecutionResources
from juno.data.dataset import Dataset, MaterializedDataset, Schema
from juno.data.datasource import (FilenameProvider, SaveMode, read_binary_files, read_csv, read_images, read_json,
                                  read_numpy, read_parquet, read_text)
from juno.data.execution.planner import UnsatisfiableResourcesError
from juno.data.grouped_data import GroupedData
from juno.data.iterator import DataIterator
from juno.data.plan import ActorPoolStrategy, TaskPoolStrategy
from juno.data.read_api import (from_arrow, from_arrow_refs, from_items, from_numpy, from_numpy_refs, from_pandas,
                                from_pandas_refs, from_torch, range, range_tensor)
from juno.data.read_task import Read, ReadTask
from juno.data.transforms import UserCodeError

__all__ = [
    "AbsMax", "AggregateFn", "Count", "DataIterator", "GroupedData", "Max", "Mean", "Min", "Quantile", "Std", "Sum",
    "Unique", "ActorPoolStrategy", "BlockMetadata", "DataContext", "Dataset", "DatasetContext", "ExecutionOptions",
    "ExecutionResources", "FilenameProvider", "MaterializedDataset", "Read", "ReadTask", "RefBundle", "SaveMode",
    "Schema", "TaskPoolStrategy",
    "UnsatisfiableResourcesError", "UserCodeError", "from_arrow", "from_arrow_refs", "from_items", "from_numpy",
    "from_numpy_refs", "from_pandas", "from_pandas_refs", "from_torch", "range", "range_tensor", "read_binary_files",
    "read_csv", "read_images", "read_json", "read_numpy", "read_parquet", "read_text",
]
