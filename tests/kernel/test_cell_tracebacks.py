"""A task defined in a notebook cell fails: the error shows the cell's file name, line and source.

The cell's source exists only in the kernel (ipykernel registers it in linecache under a
temporary file name); the worker gets the lines with the function's export.
"""
from __future__ import annotations

PARSE = '''\
@juno.remote
def parse(text):
    number = int(text)
    return number
'''


def test_remote_traceback_shows_the_cells_file_line_and_source(own_kernel):
    own_kernel.run_ok("import juno\njuno.init(num_cpus=1)")
    own_kernel.run_ok(PARSE)
    cell_file = own_kernel.eval("parse._function.__code__.co_filename").strip("'")
    assert "ipykernel" in cell_file  # the kernel's name for the cell, which no file on disk has
    assert own_kernel.eval(f"__import__('os').path.exists({cell_file!r})") == "False"
    failed = own_kernel.execute('juno.get(parse.remote("not a number"))')
    assert not failed.ok
    text = failed.error_text
    assert f'File "{cell_file}", line 3, in parse' in text, text
    assert "number = int(text)" in text, text
    assert "invalid literal for int()" in text
