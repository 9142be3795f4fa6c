"""The same-run comparison's supervisor (runtime/cli/microbenchmark_compare.py): it parses Ray's result
lines, gives each row its own timeout, and reports rows a side could not run as missing instead of
failing the run. The sides here are small python programs standing in for Juno's and Ray's."""
from __future__ import annotations

import sys
import textwrap

from juno.cli.bench_timing import parse_result
from juno.cli.microbenchmark import ROWS
from juno.cli.microbenchmark_compare import run_side


def fake_side(tmp_path, body: str) -> list[str]:
    """A command that runs ``body`` with ``rows`` (its --rows-json) and ``emit(name, mean)``."""
    script = tmp_path / "side.py"
    script.write_text(textwrap.dedent("""
        import json, sys, time
        rows = json.loads(sys.argv[sys.argv.index("--rows-json") + 1])
        def emit(name, mean):
            print("row-start:", name, flush=True)
            print(name, "per second", mean, "+-", 1.5, flush=True)
    """) + textwrap.dedent(body))
    return [sys.executable, str(script)]


def test_result_lines_parse_as_ray_prints_them():
    assert parse_result("1:1 actor calls sync per second 1262.38 +- 15.2") == ("1:1 actor calls sync", 1262.38, 15.2)
    assert parse_result("single client get gigabytes (100 MiB array, zero-copy) per second 3.5e+03 +- 0.0") == (
        "single client get gigabytes (100 MiB array, zero-copy)", 3500.0, 0.0)
    assert parse_result("Tip: set TESTS_TO_RUN='pattern' to run a subset of benchmarks") is None


def test_a_row_that_hangs_is_missing_and_the_rows_after_it_still_run(tmp_path):
    command = fake_side(tmp_path, """
        for name in rows:
            if name == "b":
                print("row-start:", name, flush=True)
                time.sleep(60)
            emit(name, 10.0)
    """)
    run = run_side("ray", command, ["a", "b", "c"], row_timeout=1.0)
    assert run.results == {"a": (10.0, 1.5), "c": (10.0, 1.5)}
    assert run.errors == {"b": "timed out after 1 s"}


def test_a_row_that_crashes_its_side_is_missing_and_the_side_restarts_after_it(tmp_path):
    command = fake_side(tmp_path, """
        for name in rows:
            if name == "b":
                print("row-start:", name, flush=True)
                sys.exit("the row broke the side")
            emit(name, 5.0)
    """)
    run = run_side("ray", command, ["a", "b", "c"], row_timeout=30)
    assert run.results == {"a": (5.0, 1.5), "c": (5.0, 1.5)}
    assert "exited with status 1" in run.errors["b"] and "the row broke the side" in run.errors["b"]


def test_a_python_without_the_side_fails_every_row_cleanly(tmp_path):
    run = run_side("ray", [sys.executable, str(tmp_path / "missing.py")], ["a", "b"], row_timeout=30)
    assert run.results == {} and set(run.errors) == {"a", "b"}
    assert all(why.startswith("not run (the ray side exited with status 2") for why in run.errors.values())


def test_every_row_states_its_path_and_compares_only_with_a_ray_row_of_the_same_work():
    for row in ROWS:
        assert row.path, row.name
        if row.ray is not None:
            assert row.ray_path, row.name
    inline = [row for row in ROWS if "Plasma Store" in (row.ray or "")]
    assert len(inline) == 3 and all("inline in owner" in row.name for row in inline)
