"""The tail of a worker log as a node manager's ``read_log`` reads it (runtime/node/log_tail.py)."""
from __future__ import annotations

import os
import types

from juno.node import log_tail


def test_tail_reads_only_the_end_of_a_big_file(tmp_path):
    path = tmp_path / "worker-0123456789ab.log"
    line = "x" * 99 + "\n"
    with open(path, "w") as f:
        for i in range(200_000):  # about 20 MB
            f.write(f"{i:08d} {line}")
    lines, truncated = log_tail.tail_file(str(path), 3, 64 << 10)
    assert lines == [f"{i:08d} {line.strip()}" for i in (199_997, 199_998, 199_999)]
    assert truncated is True
    # The window starts mid-line: the partial first line is dropped, not shown cut.
    lines, _ = log_tail.tail_file(str(path), 10_000, 1000)
    assert all(len(text) == 108 for text in lines) and lines[-1].startswith("00199999")


def test_small_file_is_whole_and_not_truncated(tmp_path):
    path = tmp_path / "w.log"
    path.write_text("a\nb\n")
    assert log_tail.tail_file(str(path), 200, 1 << 20) == (["a", "b"], False)
    assert log_tail.tail_file(str(path), 1, 1 << 20) == (["b"], True)


def _manager(tmp_path, workers=(), exited=()):
    pool = types.SimpleNamespace(workers={w.worker_id: w for w in workers})
    return types.SimpleNamespace(pool=pool, exited_workers=list(exited), log_dir=str(tmp_path), node_id="n1")


def test_read_log_by_id_prefix_pid_and_ambiguity(tmp_path):
    a = types.SimpleNamespace(worker_id=bytes.fromhex("aa" * 16), pid=101)
    b = types.SimpleNamespace(worker_id=bytes.fromhex("aa" * 5 + "bb" * 11), pid=102)
    for w in (a, b):
        with open(os.path.join(tmp_path, f"worker-{w.worker_id.hex()[:12]}.log"), "w") as f:
            f.write(f"hello from {w.pid}\n")
    manager = _manager(tmp_path, [a, b])
    got = log_tail.read_log(manager, "aa" * 6, 10, 1 << 20)
    assert got["worker_id"] == "aa" * 16 and got["pid"] == 101 and got["lines"] == ["hello from 101"]
    assert got["known"] is True and got["node_id"] == "n1"
    assert log_tail.read_log(manager, 102, 10, 1 << 20)["lines"] == ["hello from 102"]
    assert log_tail.read_log(manager, "aaaaaaaaaa", 10, 1 << 20) == {"ambiguous": sorted(["aa" * 16,
                                                                                          "aa" * 5 + "bb" * 11])}
    assert log_tail.read_log(manager, "cc" * 8, 10, 1 << 20) is None
    # A log file of a worker this node no longer lists (it exited long ago) is still found, as not known.
    with open(os.path.join(tmp_path, "worker-dddddddddddd.log"), "w") as f:
        f.write("old\n")
    old = log_tail.read_log(manager, "dddddddd", 10, 1 << 20)
    assert old["lines"] == ["old"] and old["known"] is False and old["pid"] is None
