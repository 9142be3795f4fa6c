"""What a %%remote cell reads and assigns (juno.kernel_ext.cell_analysis; no kernel, no cluster)."""

from __future__ import annotations

import threading

import pytest

from juno.kernel_ext.cell_analysis import analyse_cell, split_last_expression
from juno.kernel_ext.sessions import RemoteSession, UnpicklableValueError, execute_cell, run_cell_task, ship


def test_reads_free_names_including_nested_scopes():
    a = analyse_cell(
        "x = y + 1\n"
        "def f(z):\n    return z + w + f\n"
        "class C:\n    k = q\n    def m(self):\n        return r\n"
        "total = sum(t for t in items)\n"
        "lam = lambda v: v + s\n")
    assert {"y", "w", "q", "r", "items", "s", "sum"} <= a.reads
    # parameters and locals of nested scopes are not read from the notebook
    assert not {"z", "t", "v", "k", "self"} & a.reads


def test_assigns_top_level_bindings():
    a = analyse_cell(
        "import numpy as np\nfrom os import path\nx = 1\na, (b, c) = 1, (2, 3)\nn += 1\n"
        "def f():\n    global g\n    g = 2\n    local = 3\n"
        "class K: pass\nfor i in range(2): pass\nwith open('f') as fh: pass\n"
        "if (w := 5): pass\n")
    assert set(a.assigns) == {"np", "path", "x", "a", "b", "c", "n", "f", "g", "K", "i", "fh", "w"}
    assert "local" not in a.assigns


def test_last_expression():
    assert analyse_cell("x = 1\nx + 1").last_expr
    assert not analyse_cell("x = 1").last_expr
    assert not analyse_cell("").last_expr
    body, last = split_last_expression("a = 1\na * 2")
    assert len(body.body) == 1 and last is not None
    assert split_last_expression("a = 1")[1] is None


def test_syntax_error_is_raised():
    with pytest.raises(SyntaxError):
        analyse_cell("def (:")


def test_shipped_takes_only_what_the_namespace_has_and_not_builtins():
    a = analyse_cell("print(len(data) + offset + missing)")
    ns = {"data": [1, 2], "offset": 3, "unused": 4, "print": print}
    assert a.shipped(ns) == {"data": [1, 2], "offset": 3}
    # a builtin the notebook rebound is shipped
    def my_len(v):
        return 0
    assert a.shipped({"len": my_len})["len"] is my_len


def test_ship_names_unpicklable_values():
    a = analyse_cell("use(lock, fine)")
    with pytest.raises(UnpicklableValueError, match=r"lock: lock"):
        ship(a, {"lock": threading.Lock(), "fine": 1, "use": print})
    assert ship(a, {"fine": 1, "use": print, "lock": 2}, hidden={"lock"}) == {"fine": 1, "use": print}


def test_run_cell_task_returns_assigned_and_last():
    out = run_cell_task("import math\nz = math.sqrt(x)\ndef f():\n    return z\nf() + 1", {"x": 16.0},
                        analyse_cell("import math\nz = math.sqrt(x)\ndef f():\n    return z\nf() + 1").assigns)
    assert out["last"] == 5.0
    assert out["values"]["z"] == 4.0 and out["values"]["f"]() == 4.0 and out["values"]["math"].pi > 3
    with pytest.raises(UnpicklableValueError, match="held"):
        run_cell_task("import threading\nheld = threading.Lock()", {}, ("held",))


def test_execute_cell_traceback_shows_cell_lines():
    import traceback

    try:
        execute_cell("a = 1\nraise RuntimeError('boom')", {})
    except RuntimeError as exc:
        text = "".join(traceback.format_exception(exc))
    assert "<remote-cell>" in text and "raise RuntimeError('boom')" in text


def test_remote_session_namespace():
    s = RemoteSession()
    assert s.run("x = 1\nx + extra", {"extra": 2}) == 3
    # the session's own names win over shipped ones; push replaces them
    assert s.run("x", {"x": 100}) == 1
    s.push({"x": 5})
    assert s.pull(["x"]) == {"x": 5}
    assert "x" in s.names() and "__builtins__" not in s.names()
    with pytest.raises(NameError, match="nope"):
        s.pull(["nope"])
