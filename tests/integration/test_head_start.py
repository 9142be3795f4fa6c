"""A GCS and its head node start side by side (local_cluster.start_gcs_and_head): when either
fails, nothing is left behind, and a node whose GCS never comes exits by itself."""
from __future__ import annotations

import glob
import os
import re
import shutil
import socket
import time

import psutil
import pytest

from juno.comm import auth
from juno.config import Config
from juno.cluster.local_cluster import launch_node, new_session, read_cluster_token, start_local_cluster
from juno.store.shm import SHM_ROOT


def _processes_of(session_dir: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if session_dir in " ".join(proc.info["cmdline"] or []):
            found.append(proc)
    return found


def test_a_gcs_that_fails_to_start_stops_its_head_node_and_raises_the_gcs_error(_juno_leak_guard):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(RuntimeError, match="The GCS exited during start-up") as raised:
            start_local_cluster(Config.from_env(), num_cpus=1, owner_pid=os.getpid(), port=port)
        assert time.monotonic() - started < 15
    message = str(raised.value)
    assert "Address already in use" in message  # the end of the GCS's own log
    session_dir = re.search(r"its log (\S+)/logs/gcs\.log", message).group(1)
    assert not os.path.exists(session_dir)
    assert _processes_of(session_dir) == []  # the head node started beside it is gone already
    assert read_cluster_token(f"127.0.0.1:{port}") is None
    assert glob.glob(os.path.join(SHM_ROOT, f"juno-{os.path.basename(session_dir)}-*")) == []


def _launch_waiting_node(config: Config):
    name, session_dir = new_session()
    node = launch_node(name, session_dir, None, config, num_cpus=1, head=True,
                       token=auth.token_for_new_cluster())
    return node, session_dir


def test_a_head_node_whose_address_pipe_closes_exits_by_itself_with_a_clear_log_line(_juno_leak_guard):
    config = Config.from_env()
    node, session_dir = _launch_waiting_node(config)
    try:
        node.proc.stdin.close()  # the starter gave up on its GCS (or died)
        started = time.monotonic()
        with pytest.raises(RuntimeError, match="node manager exited during start-up") as raised:
            node.wait_ready(config)
        assert time.monotonic() - started < 15
        assert node.proc.returncode == 1
        assert "The GCS never came: stdin closed before the GCS address was sent" in str(raised.value)
    finally:
        node.abort(config)
        shutil.rmtree(session_dir, ignore_errors=True)


def test_a_head_node_that_waits_past_the_start_timeout_exits_by_itself(_juno_leak_guard):
    config = Config.from_env({"process_start_timeout_s": 1.0})
    node, session_dir = _launch_waiting_node(config)
    try:
        assert node.proc.wait(timeout=20) == 1  # stdin still open: its own timeout ends it
        with open(node.log_path) as f:
            assert "The GCS never came: no GCS address on stdin within 1 s" in f.read()
    finally:
        node.abort(config)
        shutil.rmtree(session_dir, ignore_errors=True)
