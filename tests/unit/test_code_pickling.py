"""Code pickled by value keeps its file name, lines and source (runtime/owner/code_pickling.py).

Functions here are compiled from source text, as a notebook cell's or a script's are, so that
cloudpickle pickles them by value; the ``linecache`` entry a kernel registers for a cell is
removed before loading, as a worker process never had it.
"""
import linecache
import pickle

import cloudpickle
import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pip vendors the same parser
    from pip._vendor import tomli as tomllib
try:
    from packaging.requirements import Requirement
    from packaging.version import Version
except ModuleNotFoundError:  # packaging comes with pip otherwise
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.version import Version

from juno.owner import serialization
from juno.owner.code_pickling import register_source
from juno.exceptions import format_remote_traceback

SOURCE = '''\
x = 1


@staticmethod
def fails(k):
    total = k + 1
    raise ValueError(f"fails with {total}")


def calls_fails(k):
    return fails.__func__(k)
'''


def _define(filename: str, *, cell: bool):
    """Compile SOURCE as file ``filename``; ``cell``: register it in linecache as ipykernel does."""
    if cell:
        linecache.cache[filename] = (len(SOURCE), None, SOURCE.splitlines(True), filename)
    namespace = {"__name__": "__main__"}
    exec(compile(SOURCE, filename, "exec"), namespace)
    return namespace["calls_fails"]


def _remote_traceback(fn) -> str:
    with pytest.raises(ValueError) as info:
        fn(1)
    return format_remote_traceback(info.value)


@pytest.fixture
def cell_file(tmp_path):
    """A notebook cell's file name: no such file exists; linecache is left as it was."""
    name = str(tmp_path / "ipykernel_1234" / "2730612573.py")
    yield name
    linecache.cache.pop(name, None)


def test_installed_cloudpickle_is_in_the_range_pyproject_allows():
    with open("pyproject.toml", "rb") as f:
        deps = [Requirement(r) for r in tomllib.load(f)["project"]["dependencies"]]
    (req,) = [r for r in deps if r.name == "cloudpickle"]
    assert req.specifier.contains(Version(cloudpickle.__version__)), (cloudpickle.__version__, str(req))


def test_a_script_function_keeps_its_file_line_and_source(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(SOURCE)
    fn = pickle.loads(serialization.dumps_code(_define(str(script), cell=False)))
    assert fn.__code__.co_filename == str(script)
    assert fn.__code__.co_firstlineno == 10
    text = _remote_traceback(fn)
    assert f'File "{script}", line 11, in calls_fails' in text
    assert f'File "{script}", line 7, in fails' in text
    assert 'raise ValueError(f"fails with {total}")' in text


def test_a_cell_function_brings_its_source_lines_to_the_worker(cell_file):
    blob = serialization.dumps_code(_define(cell_file, cell=True))
    linecache.cache.pop(cell_file)  # the worker never ran the cell
    fn = pickle.loads(blob)
    text = _remote_traceback(fn)
    assert f'File "{cell_file}", line 11, in calls_fails' in text
    assert "return fails.__func__(k)" in text
    assert f'File "{cell_file}", line 7, in fails' in text
    assert 'raise ValueError(f"fails with {total}")' in text


def test_an_export_is_the_same_bytes_each_time(cell_file):
    """The export id is a content hash: one function is exported once, whatever its refcounts."""
    fn = _define(cell_file, cell=True)
    first = serialization.dumps_code(fn)
    held = [fn.__code__] * 10  # noqa: F841 - more references to the code must not change the bytes
    assert serialization.dumps_code(fn) == first


def test_a_function_in_a_value_keeps_its_file_but_carries_no_source(cell_file):
    """Values travel per task: their functions keep file and line, without the source text."""
    fn = _define(cell_file, cell=True)
    value = serialization.serialize({"f": fn}).to_bytes()
    assert b"total = k + 1" not in value
    linecache.cache.pop(cell_file)
    rebuilt, _ = serialization.deserialize_bytes(value)
    assert rebuilt["f"].__code__.co_filename == cell_file
    assert cell_file not in linecache.cache


def test_registered_lines_merge_and_leave_readable_files_alone(tmp_path, cell_file):
    register_source(cell_file, 3, ["three\n", "four\n"])
    register_source(cell_file, 6, ["six\n"])
    assert [linecache.getline(cell_file, n) for n in range(1, 8)] == [
        "\n", "\n", "three\n", "four\n", "\n", "six\n", ""]
    real = tmp_path / "real.py"
    real.write_text("on disk\n")
    register_source(str(real), 1, ["stale\n"])
    assert str(real) not in linecache.cache or linecache.cache[str(real)][1] is not None
    assert linecache.getline(str(real), 1) == "on disk\n"


def test_python_c_code_brings_the_command_lines_but_exec_strings_do_not(monkeypatch):
    """``python -c``'s functions are "<string>", as exec()'d ones are: only the former match the command."""
    monkeypatch.setattr("sys.argv", ["-c"])
    monkeypatch.setattr("sys.orig_argv", ["python", "-c", SOURCE], raising=False)
    monkeypatch.setattr(linecache, "cache", dict(linecache.cache))  # what loading registers goes with the test
    command_fn = _define("<string>", cell=False)
    namespace = {"__name__": "__main__"}
    exec(compile("def other(k):\n    raise ValueError(k)\n", "<string>", "exec"), namespace)
    other_blob = serialization.dumps_code(namespace["other"])
    fn = pickle.loads(serialization.dumps_code(command_fn))
    assert 'raise ValueError(f"fails with {total}")' in _remote_traceback(fn)
    linecache.cache.pop("<string>")
    pickle.loads(other_blob)
    assert "<string>" not in linecache.cache  # the command's lines don't belong to other's code
