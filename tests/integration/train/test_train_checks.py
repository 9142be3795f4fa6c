"""Train's checks and failure text against a real cluster: a worker actor running a loop that raises,
a worker killed, the resource check fed with juno.nodes(), and a checked loop really shipped."""
from __future__ import annotations

import os
import sys
import threading

import cloudpickle
import pytest

import juno
from juno.air.failure import describe_failure, first_failure
from juno.air.validation import ResourcesUnavailableError, check_function_shippable, check_resources_fit
from juno.exceptions import ActorDiedError, RayTaskError

cloudpickle.register_pickle_by_value(sys.modules[__name__])

JUNO_SHARED_INIT = {"num_cpus": 2}
HERE = os.path.abspath(__file__)


@juno.remote(num_cpus=0)
class LoopWorker:
    """Runs a train loop in a thread of the actor and re-raises what it raised, as Train's workers do."""

    def pid(self) -> int:
        return os.getpid()

    def run(self, loop, config):
        errors: list[BaseException] = []

        def target():
            try:
                loop(config)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller below
                errors.append(exc)

        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        thread.join(timeout=30)
        if errors:
            raise errors[0]
        return "done"


def train_loop(config):
    steps = config["steps"]
    return config["loss"] / steps


def test_a_loop_raising_in_a_worker_reads_as_the_error_then_the_users_frame(cluster):
    worker = LoopWorker.remote()
    pid = juno.get(worker.pid.remote(), timeout=60)
    with pytest.raises(ZeroDivisionError) as info:
        juno.get(worker.run.remote(train_loop, {"loss": 1, "steps": 0}), timeout=60)
    err = info.value
    assert isinstance(err, RayTaskError)
    text = describe_failure(err, rank=1, node="node-a")
    lines = text.splitlines()
    assert lines[0] == "ZeroDivisionError: division by zero"
    assert lines[1].startswith(f'  File "{HERE}", line ')
    loop_frame = next(i for i, line in enumerate(lines) if line.endswith(", in train_loop"))
    assert lines[loop_frame + 1].strip() == 'return config["loss"] / steps'
    assert lines[-1] == f"(rank 1, pid {pid}, node node-a)"
    assert "runtime" + os.sep not in text and "Traceback" not in text
    juno.kill(worker)


def test_a_killed_worker_is_an_actor_death_and_the_loop_error_wins(cluster):
    failing, killed = LoopWorker.remote(), LoopWorker.remote()
    juno.get([failing.pid.remote(), killed.pid.remote()], timeout=60)
    juno.kill(killed)
    with pytest.raises(ActorDiedError) as died:
        juno.get(killed.run.remote(train_loop, {"loss": 1, "steps": 1}), timeout=60)
    assert describe_failure(died.value, rank=0).startswith("ActorDiedError: ")
    with pytest.raises(ZeroDivisionError) as raised:
        juno.get(failing.run.remote(train_loop, {"loss": 1, "steps": 0}), timeout=60)
    assert first_failure([(0, died.value), (1, raised.value)]) == (1, raised.value)
    juno.kill(failing)


def test_the_resource_check_reads_juno_nodes(cluster):
    nodes = juno.nodes()
    check_resources_fit([{"CPU": 1}, {"CPU": 1}], "PACK", nodes)
    with pytest.raises(ResourcesUnavailableError, match="each worker needs GPU=1 but no alive node has any GPU"):
        check_resources_fit([{"CPU": 1, "GPU": 1}], "PACK", nodes)
    with pytest.raises(ResourcesUnavailableError, match="STRICT_SPREAD puts each worker on its own node"):
        check_resources_fit([{"CPU": 1}, {"CPU": 1}], "STRICT_SPREAD", nodes)


def test_a_loop_that_passes_the_check_runs_on_a_worker(cluster):
    scale = 3.0

    def loop(config):
        assert scale * config["loss"] == 6.0

    assert check_function_shippable(loop) > 0
    worker = LoopWorker.remote()
    assert juno.get(worker.run.remote(loop, {"loss": 2.0, "steps": 1}), timeout=60) == "done"
    juno.kill(worker)
