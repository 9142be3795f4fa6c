"""Serve's errors keep their fields across pickling and say what to do; the shared router loop is
one per process and a forked child gets its own."""
import asyncio
import os
import pickle

import pytest

from juno.exceptions import RayError
from juno.serve.exceptions import (BackPressureError, DeploymentUnavailableError, RequestCancelledError,
                                   RequestTimeoutError)
from juno.serve.router import shared_loop


@pytest.mark.parametrize("err, hint", [
    (BackPressureError(7, 5, "d"), "max_queued_requests=5"),
    (RequestCancelledError("r1"), "send it again"),
    (DeploymentUnavailableError("d"), "serve.status()"),
    (RequestTimeoutError("d", 2.5), "2.5 s"),
])
def test_errors_round_trip_and_say_what_to_do(err, hint):
    assert isinstance(err, RayError) and hint in str(err)
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is type(err) and str(back) == str(err) and back.__dict__ == err.__dict__


def test_request_timeout_is_a_timeout_error():
    assert isinstance(RequestTimeoutError("d", 1), TimeoutError)


def test_shared_loop_is_one_per_process_and_fresh_after_fork():
    loop = shared_loop()
    assert shared_loop() is loop and loop.is_running()
    assert asyncio.run_coroutine_threadsafe(asyncio.sleep(0, "ran"), loop).result(10) == "ran"
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the parent's loop thread is not here; a new loop must run
        try:
            child = shared_loop()
            ok = child is not loop and asyncio.run_coroutine_threadsafe(asyncio.sleep(0, 1), child).result(10) == 1
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write)
    assert os.read(read, 1) == b"1"
    os.waitpid(pid, 0)
