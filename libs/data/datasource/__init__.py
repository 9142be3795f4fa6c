"""Juno Data's file datasources and sinks: read_* (parquet, CSV, JSON lines, text, .npy,
binary files, images) and write_* (parquet, CSV, JSON lines, .npy), with Ray's arguments."""
from juno.data.datasource.api import (read_binary_files, read_csv, read_images, read_json, read_numpy,
                                      read_parquet, read_text, write_csv, write_json, write_numpy, write_parquet)
from juno.data.datasource.sinks import FilenameProvider, FileSink, SaveMode

__all__ = ["FileSink", "FilenameProvider", "SaveMode", "read_binary_files", "read_csv", "read_images", "read_json",
           "read_numpy", "read_parquet", "read_text", "write_csv", "write_json", "write_numpy", "write_parquet"]
