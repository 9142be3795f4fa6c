"""The proxy's decisions without processes: which proxies to start and stop, how errors map to statuses,
which http_options are accepted."""
from __future__ import annotations

import pytest
from juno.exceptions import ActorDiedError
from juno.serve.exceptions import BackPressureError, DeploymentUnavailableError, RequestTimeoutError
from juno.serve.http.proxy_manager import HEALTHY, RESTART_BACKOFF_S, STARTING, UNHEALTHY, ProxyStates
from juno.serve.http.server import HTTPError, ProxyOptions, error_answer


def test_a_proxy_per_alive_node_and_none_for_dead_ones():
    states = ProxyStates()
    start, stop = states.plan({"n1", "n2"}, now=0)
    assert (start, stop) == (["n1", "n2"], [])
    for node in start:
        states.starting(node, 0)
    states.started("n1", ["127.0.0.1", 8000], 1)
    assert states.status() == {"n1": HEALTHY, "n2": STARTING}
    assert states.plan({"n1", "n2"}, now=2) == ([], [])
    assert states.plan({"n2", "n3"}, now=3) == (["n3"], ["n1"])
    assert "n1" not in states.status()


def test_a_failed_proxy_restarts_after_a_growing_backoff():
    states = ProxyStates()
    states.plan({"n"}, 0)
    states.starting("n", 0)
    states.failed("n", "boom", 10)
    assert states.status() == {"n": UNHEALTHY}
    assert states.plan({"n"}, 10) == ([], [])
    assert states.plan({"n"}, 10 + RESTART_BACKOFF_S) == (["n"], [])
    states.starting("n", 12)
    states.failed("n", "boom again", 13)
    assert states.plan({"n"}, 13 + RESTART_BACKOFF_S) == ([], [])  # two failures: twice the wait
    assert states.plan({"n"}, 13 + 2 * RESTART_BACKOFF_S) == (["n"], [])


def test_health_checks_are_due_by_period_and_time_out():
    states = ProxyStates()
    states.plan({"n"}, 0)
    states.starting("n", 0)
    assert not states.due_for_check("n", 100)  # not started yet
    assert states.timed_out("n", 100, pending_since=0)
    states.started("n", ["h", 1], 0)
    assert not states.due_for_check("n", 1) and states.due_for_check("n", 11)


def test_errors_map_to_statuses():
    busy = error_answer(BackPressureError(5, 4, "Echo"), "GET")
    assert busy.status == 503 and (b"retry-after", b"1") in busy.headers and "max_queued_requests=4" in busy.text
    gone = error_answer(DeploymentUnavailableError("Echo"), "GET")
    assert gone.status == 503 and "no replica can take this request" in gone.text and "serve.status()" in gone.text
    late = error_answer(RequestTimeoutError("Echo", 2.0), "GET")
    assert late.status == 504 and "request_timeout_s (2 s)" in late.text
    assert error_answer(type("BackPressureError", (Exception,), {})("same name"), "GET").status == 500  # by class
    died = ActorDiedError(error_msg="the replica's process exited")
    assert error_answer(died, "POST").status == 500 and "not retried" in error_answer(died, "POST").text
    assert "3 tries" in error_answer(died, "GET", 3).text
    assert error_answer(RuntimeError("x"), "GET").status == 500
    same = HTTPError(413, "too big")
    assert error_answer(same, "POST") is same


def test_a_wildcard_host_binds_every_interface_and_is_reached_on_loopback():
    import socket

    from juno.serve.http.proxy import bind_socket

    sock = bind_socket("0.0.0.0", 0)
    try:
        host, port = sock.getsockname()[:2]
        assert host == "0.0.0.0" and port > 0
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    finally:
        sock.close()


def test_http_options_are_checked():
    opts = ProxyOptions.from_dict({"host": "0.0.0.0", "port": 0, "unknown": 1, "request_timeout_s": 2})
    assert (opts.host, opts.port, opts.request_timeout_s, opts.max_body_bytes) == ("0.0.0.0", 0, 2, 100 * 2**20)
    assert ProxyOptions.from_dict(None).host == "127.0.0.1"  # loopback unless told otherwise
    for bad, match in [({"port": 70000}, "port"), ({"max_body_bytes": -1}, "max_body_bytes"),
                       ({"request_timeout_s": 0}, "request_timeout_s")]:
        with pytest.raises(ValueError, match=match):
            ProxyOptions.from_dict(bad)
