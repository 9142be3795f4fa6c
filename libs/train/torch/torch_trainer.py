"""``TorchTrainer``: a DataParallelTrainer whose workers form a torch.distributed process group first."""
from __future__ import annotations

from typing import Any

import juno
from juno.train.controller import Backend
from juno.train.torch.config import TorchConfig
from juno.train.trainer import DataParallelTrainer
from juno.train.worker_group import WorkerGroup


class TorchBackend(Backend):
    """init_process_group on every rank (gloo on CPU, nccl on GPU) against rank 0's address and port."""

    def on_start(self, group: WorkerGroup, config: TorchConfig) -> None:
        from juno.train.torch.config import setup_process_group

        addr, port = group.infos[0]["node_ip"], group.master_port
        world = len(group.actors)
        juno.get([actor.execute.remote(setup_process_group, config, rank, world, addr, port)
                  for rank, actor in enumerate(group.actors)], timeout=config.timeout_s + 30)

    def on_shutdown(self, group: WorkerGroup, config: TorchConfig) -> None:
        from juno.train.torch.config import teardown_process_group

        group.execute(teardown_process_group, timeout_s=60)


class TorchTrainer(DataParallelTrainer):
    """Ray's ``TorchTrainer``: ``train_loop_per_worker`` runs with torch.distributed set up, so
    ``prepare_model`` wraps the model in DistributedDataParallel across the workers."""

    _backend = TorchBackend()

    def __init__(self, train_loop_per_worker: Any, *, train_loop_config: dict | None = None,
                 torch_config: TorchConfig | None = None, **kwargs: Any) -> None:
        backend_config = kwargs.pop("backend_config", None) or torch_config or TorchConfig()
        if not isinstance(backend_config, TorchConfig):
            raise TypeError(f"TorchTrainer(torch_config=...) must be a TorchConfig, got "
                            f"{type(backend_config).__name__}.")
        super().__init__(train_loop_per_worker, train_loop_config=train_loop_config, backend_config=backend_config,
                         **kwargs)
