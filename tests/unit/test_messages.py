"""The control messages of runtime/comm/messages.py: each builder makes the plain (op, *fields)
tuple the transport dispatches, with the fields its receiver's handler takes, in that order."""
from __future__ import annotations

import inspect
import pickle

import pytest

from juno.comm import messages
from juno.owner import task_spec as ts
from juno.owner.actor_submitter import ActorSubmitter
from juno.owner.task_submitter import TaskSubmitter
from juno.worker.executor import TaskExecutor

# builder -> the handler its op is dispatched to
RECEIVERS = [
    (messages.push_task, TaskExecutor.on_push_task),
    (messages.cancel_task, TaskExecutor.on_cancel_task),
    (messages.task_result, TaskSubmitter.on_task_result),
    (messages.gen_item, TaskSubmitter.on_generator_item),
    (messages.actor_update, ActorSubmitter.on_actor_update),
]


def fields_of(fn) -> list[str]:
    return [p.name for p in inspect.signature(fn).parameters.values() if p.name != "self"]


@pytest.mark.parametrize("builder, handler", RECEIVERS, ids=lambda f: f.__qualname__)
def test_a_message_carries_the_fields_its_handler_takes(builder, handler):
    assert fields_of(builder) == fields_of(handler)
    values = [object() for _ in fields_of(builder)]
    if builder is messages.push_task:
        values[0] = ts.make_spec(task_id=b"t", kind=ts.KIND_TASK)
    msg = builder(*values)
    assert type(msg) is tuple and msg[0] == builder.__name__ and list(msg[1:]) == values


def test_a_task_travels_as_a_plain_tuple():
    """A pickled class reference costs more than the rest of the spec (see TaskSpec); the worker
    wraps it again (TaskExecutor.on_push_task), which every integration test exercises."""
    spec = ts.make_spec(task_id=b"t", kind=ts.KIND_TASK, deps=[], args=("v", b"x"))
    _, sent, lease = pickle.loads(pickle.dumps(messages.push_task(spec, None), 5))
    assert type(sent) is tuple and sent == spec and lease is None
    assert b"TaskSpec" not in pickle.dumps(messages.push_task(spec, None), 5)


def test_a_warning_is_its_text():
    assert messages.warning("full") == ("warning", "full")
