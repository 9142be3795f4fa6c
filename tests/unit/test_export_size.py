"""Code whose pickled form is huge is refused past the error size, warned about past the
warning size, with the captured values that make it big and the fix."""
from __future__ import annotations

import warnings

import pytest

from juno.config import Config
from juno.owner.export_size import check_export_size
from juno.owner.call_builder import export_code

SMALL = Config(function_size_warn_bytes=10_000, function_size_error_bytes=100_000)
MB = 1 << 20


def test_small_code_passes_silently():
    def f():
        return 1

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_export_size(export_code(f)[1], f, "remote function", "f", SMALL)


def test_past_the_warning_size_warns_with_the_captured_name_and_the_fix():
    table = b"x" * (2 * MB)
    config = Config(function_size_warn_bytes=MB, function_size_error_bytes=10 * MB)

    def f():
        return len(table)

    with pytest.warns(UserWarning) as record:
        check_export_size(export_code(f)[1], f, "remote function", "f", config)
    text = str(record[0].message)
    assert "The remote function f is very large (2.0 MiB" in text
    assert "table (2.0 MiB)" in text and "juno.put()" in text


def test_past_the_error_size_is_refused_naming_the_biggest_captures():
    big, medium, tiny = b"x" * (3 * MB), b"y" * (2 * MB), b"z"
    config = Config(function_size_warn_bytes=MB, function_size_error_bytes=4 * MB)

    class Holder:
        DATA = big

        def run(self):
            return len(medium) + len(tiny)

    with pytest.raises(ValueError) as info:
        check_export_size(export_code(Holder)[1], Holder, "actor class", "Holder", config)
    text = str(info.value)
    assert "The actor class Holder is too large to export (5.0 MiB > function_size_error_bytes=4.0 MiB)" in text
    assert "DATA (3.0 MiB), medium (2.0 MiB)" in text and "tiny" not in text
    assert "juno.put()" in text
