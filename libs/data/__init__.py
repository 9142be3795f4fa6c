"""Juno Data: Ray Data's API on Juno: lazy datasets of Arrow blocks, run by a streaming executor."""
from juno.data.block import BlockMetadata, RefBundle
from juno.data.context import DataContext, DatasetContext, ExecutionOptions, ExecutionResources

__all__ = ["BlockMetadata", "DataContext", "DatasetContext", "ExecutionOptions", "ExecutionResources", "RefBundle"]
