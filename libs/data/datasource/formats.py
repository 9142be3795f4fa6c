"""Reading one file of each row format into an Arrow table (runs in a worker).

Each reader is ``read_X(unit, filesystem, **options) -> pa.Table`` at module level so that read
tasks pickle it by reference. An empty file is a table of zero rows, never an error.
"""
from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa

from juno.data.block import RAGGED_DATA, RAGGED_SHAPE, from_rows, to_arrow_column
from juno.data.datasource.file_read import ReadUnit

IMAGE_EXTENSIONS = ["png", "jpg", "jpeg", "tif", "tiff", "bmp", "gif"]


def open_input(path: str, filesystem=None):
    """A binary file object for ``path``, through ``filesystem`` when one is given."""
    if filesystem is None:
        return open(path, "rb")
    return filesystem.open_input_file(path)


def read_bytes(path: str, filesystem=None) -> bytes:
    with open_input(path, filesystem) as f:
        return f.read()


def read_csv_file(unit: ReadUnit, filesystem=None, *, parse_options=None, read_options=None,
                  convert_options=None) -> pa.Table:
    import pyarrow.csv as pacsv

    data = read_bytes(unit.path, filesystem)
    if not data.strip():
        return pa.table({})
    try:
        return pacsv.read_csv(io.BytesIO(data), read_options=read_options, parse_options=parse_options,
                              convert_options=convert_options)
    except pa.ArrowInvalid as e:
        raise ValueError(f"cannot read {unit.path!r} as CSV: {e}") from None


def read_json_file(unit: ReadUnit, filesystem=None, *, read_options=None, parse_options=None) -> pa.Table:
    """JSON lines (one object per line) with pyarrow.json; a file holding one JSON array of
    objects is read too (Ray reads both)."""
    import pyarrow.json as pajson

    data = read_bytes(unit.path, filesystem)
    stripped = data.lstrip()
    if not stripped:
        return pa.table({})
    if stripped[:1] == b"[":
        try:
            rows = json.loads(data)
        except ValueError as e:
            raise ValueError(f"cannot read {unit.path!r} as a JSON array: {e}") from None
        return from_rows(rows, what=f"the JSON array in {unit.path!r}")
    try:
        return pajson.read_json(io.BytesIO(data), read_options=read_options, parse_options=parse_options)
    except pa.ArrowInvalid as e:
        raise ValueError(f"cannot read {unit.path!r} as JSON lines (one object per line): {e}") from None


def read_text_file(unit: ReadUnit, filesystem=None, *, encoding: str = "utf-8",
                   drop_empty_lines: bool = False) -> pa.Table:
    try:
        lines = read_bytes(unit.path, filesystem).decode(encoding).splitlines()
    except UnicodeDecodeError as e:
        raise ValueError(f"{unit.path!r} is not {encoding} text ({e}); pass encoding=...") from None
    if drop_empty_lines:
        lines = [line for line in lines if line.strip()]
    return pa.table({"text": pa.array(lines, type=pa.string())})


def read_numpy_file(unit: ReadUnit, filesystem=None, *, allow_pickle: bool = False) -> pa.Table:
    """A .npy file as the column "data": one row per entry of its first axis."""
    try:
        array = np.load(io.BytesIO(read_bytes(unit.path, filesystem)), allow_pickle=allow_pickle)
    except ValueError as e:
        raise ValueError(f"cannot read {unit.path!r} as a .npy file: {e}") from None
    if not isinstance(array, np.ndarray):
        raise ValueError(f"{unit.path!r} is not a single .npy array (an .npz archive?); read_numpy reads .npy files")
    if array.ndim == 0:
        array = array.reshape(1)
    if array.ndim > 1 and len(array) == 0:  # pyarrow makes no tensor array of zero rows from numpy
        value_type = pa.from_numpy_dtype(array.dtype)
        storage = pa.array([], pa.list_(value_type, int(np.prod(array.shape[1:]))))
        tensor_type = pa.fixed_shape_tensor(value_type, array.shape[1:])
        return pa.table({"data": pa.ExtensionArray.from_storage(tensor_type, storage)})
    return pa.table({"data": to_arrow_column(array, "data")})


def read_binary_file(unit: ReadUnit, filesystem=None) -> pa.Table:
    return pa.table({"bytes": pa.array([read_bytes(unit.path, filesystem)], type=pa.binary())})


def require_pillow():
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("read_images needs Pillow, which is not installed: pip install pillow") from None
    return Image


def read_image_file(unit: ReadUnit, filesystem=None, *, size: tuple[int, int] | None = None,
                    mode: str | None = None) -> pa.Table:
    """An image as the column "image": an (H, W[, C]) array. With ``size`` every image has one
    shape, so the column is a tensor column; without it images may differ, so each row keeps its
    own shape (read back as an object array of ndarrays)."""
    Image = require_pillow()
    with open_input(unit.path, filesystem) as f:
        try:
            image = Image.open(io.BytesIO(f.read()))
            image.load()
        except Exception as e:  # Pillow raises several types for a file it cannot decode
            raise ValueError(f"cannot read {unit.path!r} as an image: {e}") from None
    if mode is not None:
        image = image.convert(mode)
    if size is not None:
        height, width = size
        image = image.resize((width, height))
    array = np.asarray(image)
    if size is not None:
        return pa.table({"image": to_arrow_column([array], "image")})
    column = pa.StructArray.from_arrays(
        [pa.array([array.ravel()]), pa.array([list(array.shape)], type=pa.list_(pa.int64()))],
        names=[RAGGED_DATA, RAGGED_SHAPE])
    return pa.table({"image": column})


def validate_image_size(size) -> tuple[int, int] | None:
    if size is None:
        return None
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size)):
        raise ValueError(f"size must be (height, width), two positive ints, got {size!r}")
    return tuple(size)
