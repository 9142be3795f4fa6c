"""The task spec (runtime/owner/task_spec.py): one constructor, named fields, and a wire form
that pickles like the plain tuple it replaced. Pure logic, no processes."""
from __future__ import annotations

import pickle

import pytest

from juno.gcs.actor_manager import ActorRecord
from juno.owner import task_spec as ts
from juno.owner.task_spec import FIELDS, TaskSpec, build_spec


def every_field() -> dict:
    """A value of its own for every field, so a swapped pair of fields shows."""
    return {"task_id": b"T" * 20, "kind": ts.KIND_ACTOR_CALL, "function": "incr", "name": "Counter.incr",
            "args": ("v", b"\x80\x05args"), "deps": [("r", b"O" * 24, "ipc://owner")], "num_returns": ts.STREAMING,
            "owner": "ipc://owner", "log_to": "ipc://driver", "job_id": 7, "retry_exc": True,
            "runtime_env": {"env_vars": {"A": "1"}}, "actor_id": b"A" * 16, "extra": {"concurrency_group": "io"}}


def test_every_field_survives_pickling_and_reads_by_name_and_by_index():
    fields = every_field()
    spec = build_spec(**fields)
    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        back = pickle.loads(pickle.dumps(("push_task", spec, None), protocol))[1]
        assert type(back) is TaskSpec and back == spec
        for i, name in enumerate(FIELDS):
            assert getattr(back, name) == fields[name] == back[i]
    # The layout constants and the field names agree (index reads still work during the transition).
    assert [getattr(ts, name.upper()) for name in FIELDS] == list(range(ts.SPEC_LEN))


def test_building_with_a_missing_or_unknown_field_fails_and_names_it():
    fields = every_field()
    del fields["owner"]
    with pytest.raises(TypeError, match="owner"):
        build_spec(**fields)
    with pytest.raises(TypeError, match="ownr"):
        build_spec(**every_field(), ownr="ipc://x")
    with pytest.raises(TypeError, match="ownr"):
        ts.make_spec(task_id=b"t", ownr="ipc://x")
    with pytest.raises(TypeError, match="ownr"):
        build_spec(**every_field()).replace(ownr="ipc://x")


def test_replace_makes_a_spec_with_one_field_changed():
    spec = build_spec(**every_field())
    retried = spec.replace(extra={"attempt": 1}, deps=[])
    assert type(retried) is TaskSpec and retried.extra == {"attempt": 1} and retried.deps == []
    assert retried.task_id == spec.task_id and spec.deps  # the original is untouched
    assert "owner='ipc://owner'" in repr(spec)


def test_a_spec_persisted_as_a_plain_tuple_comes_back_as_a_spec():
    """The GCS keeps actor specs in its storage; one written by an older Juno is a plain tuple."""
    old = tuple(build_spec(**every_field()))
    record = ActorRecord(b"A" * 16, pickle.loads(pickle.dumps(old, 5)), {})
    assert type(record.spec) is TaskSpec and record.spec.name == "Counter.incr"
