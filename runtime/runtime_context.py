"""``juno.get_runtime_context()``: what the calling code is part of (Ray's RuntimeContext)."""
from __future__ import annotations

from typing import Any

from juno import ids


class RuntimeContext:
    def __init__(self, cw):
        self._cw = cw

    def _ctx(self):
        return self._cw.context()

    def get_job_id(self) -> str:
        job_id = self._ctx().job_id or self._cw.job_id
        return ids.job_hex(job_id) if job_id is not None else ""

    @property
    def job_id(self) -> str:
        return self.get_job_id()

    def get_node_id(self) -> str:
        return self._cw.node_id

    @property
    def node_id(self) -> str:
        return self.get_node_id()

    def get_worker_id(self) -> str:
        return self._cw.worker_id.hex()

    def get_task_id(self) -> str | None:
        task_id = self._ctx().task_id
        return task_id.hex() if task_id else None

    def get_task_name(self) -> str | None:
        ctx = self._ctx()
        return ctx.name if ctx.task_id else None

    def get_actor_id(self) -> str | None:
        actor_id = self._ctx().actor_id
        return actor_id.hex() if actor_id else None

    def get_actor_name(self) -> str | None:
        """The name the current actor was created with ("" if unnamed); None outside actors."""
        executor = getattr(self._cw, "executor", None)
        if executor is None or executor.actor_id is None:
            return None
        return executor.registered_name

    @property
    def namespace(self) -> str:
        return self._ctx().namespace or self._cw.namespace

    @property
    def was_current_actor_reconstructed(self) -> bool:
        executor = getattr(self._cw, "executor", None)
        return bool(executor and executor.actor_id and executor.num_restarts > 0)

    @property
    def current_actor(self):
        from juno.actor import ActorHandle

        actor_id = self._ctx().actor_id
        if actor_id is None:
            raise RuntimeError("current_actor is only available inside an actor.")
        info = self._cw.gcs_call("subscribe_actor", actor_id, self._cw.address)
        return ActorHandle(actor_id, info["meta"])

    def get_assigned_resources(self) -> dict[str, float]:
        return dict(self._ctx().resources or {})

    def get_accelerator_ids(self) -> dict[str, list[str]]:
        return {"GPU": [str(g) for g in self._ctx().gpu_ids]}

    def get_runtime_env_string(self) -> str:
        import json

        return json.dumps(self.runtime_env)

    @property
    def runtime_env(self) -> dict:
        from juno.job_config import public_runtime_env

        return public_runtime_env(self._ctx().runtime_env or self._cw.job_runtime_env)

    @property
    def gcs_address(self) -> str:
        return self._cw.gcs_address.replace("tcp://", "")

    def get(self) -> dict[str, Any]:
        out = {"job_id": self.get_job_id(), "node_id": self.get_node_id(), "namespace": self.namespace}
        if self.get_task_id():
            out["task_id"] = self.get_task_id()
        if self.get_actor_id():
            out["actor_id"] = self.get_actor_id()
        return out
