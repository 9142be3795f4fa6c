"""A driver of another Juno version is refused by a running cluster, at once and clearly, and the
GCS logs the refusal; a driver of the cluster's version attaches as before.

"Another version" is this test process announcing one through the documented test-only hook
$JUNO_TEST_ANNOUNCE_VERSION (read when a process makes its event loops), set after the cluster
started, so that only the driver announces it."""
from __future__ import annotations

import os
import time

import pytest

import juno
from helpers import wait_for_condition
from juno.cluster_utils import Cluster
from juno.comm import auth
from juno.comm.transport import ANNOUNCE_VERSION_ENV, PROTOCOL_VERSION, VersionMismatchError


@pytest.fixture
def cluster(shutdown_only, monkeypatch):
    monkeypatch.delenv(auth.TOKEN_ENV, raising=False)
    monkeypatch.delenv(ANNOUNCE_VERSION_ENV, raising=False)
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        yield c
    finally:
        if juno.is_initialized():
            juno.shutdown()
        c.shutdown()


@juno.remote
def plus_one(x):
    return x + 1


def gcs_log(cluster: Cluster) -> str:
    with open(os.path.join(cluster.session_dir, "logs", "gcs.log")) as f:
        return f.read()


def test_a_driver_of_another_version_fails_fast_with_both_versions(cluster, monkeypatch):
    monkeypatch.setenv(ANNOUNCE_VERSION_ENV, "0.0.1-other")
    start = time.monotonic()
    with pytest.raises(VersionMismatchError) as info:
        juno.init(address=cluster.address)
    assert time.monotonic() - start < 5.0, "a refused version must fail at once, not time out"
    message = str(info.value)
    assert f"runs Juno {juno.__version__} (protocol {PROTOCOL_VERSION})" in message
    assert f"this process runs Juno 0.0.1-other (protocol {PROTOCOL_VERSION})" in message
    assert "use the same Juno version on every node and driver" in message
    assert not juno.is_initialized()
    wait_for_condition(lambda: "juno-gcs: refused a connection from" in gcs_log(cluster)
                       and "it runs Juno 0.0.1-other" in gcs_log(cluster), timeout=10)

    monkeypatch.delenv(ANNOUNCE_VERSION_ENV)
    juno.init(address=cluster.address)
    assert juno.get(plus_one.remote(1)) == 2
