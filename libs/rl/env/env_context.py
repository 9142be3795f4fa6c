"""``EnvContext``: the ``env_config`` dict an env creator receives, with which runner and which env
of its vector it is for (RLlib's ``EnvContext``)."""
from __future__ import annotations


class EnvContext(dict):
    def __init__(self, env_config: dict, worker_index: int = 0, vector_index: int = 0, num_workers: int = 0) -> None:
        super().__init__(env_config or {})
        self.worker_index = worker_index
        self.vector_index = vector_index
        self.num_workers = num_workers

    def copy_with_overrides(self, worker_index: int | None = None, vector_index: int | None = None) -> "EnvContext":
        return EnvContext(dict(self), self.worker_index if worker_index is None else worker_index,
                          self.vector_index if vector_index is None else vector_index, self.num_workers)

    def __reduce__(self):
        return (EnvContext, (dict(self), self.worker_index, self.vector_index, self.num_workers))
