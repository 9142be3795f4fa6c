"""``Learner``: owns a module and its optimizers and updates them from sample batches.

Each algorithm subclasses it and implements ``update(batch, timestep)`` (its minibatches, epochs and
target updates); the helpers here move batches to the learner's device and apply gradients with the
config's clipping. The learner runs in the driver or in a learner actor; it cannot tell which.

With several learners (``num_learners > 1``) each is one rank of a torch process group and updates on
its shard of the batch: ``apply_gradients`` averages the gradients over the ranks before clipping, so
every rank takes the same step and the weights stay identical. An ``update`` must therefore call
``apply_gradients`` the same number of times on every rank (``lockstep_max`` gives the largest shard),
and state it derives from its own shard's numbers (PPO's KL coefficient) from ``mean_across_learners``.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

import numpy as np
import torch

from juno.rl.core.rl_module import RLModule


@contextlib.contextmanager
def cpu_threads(n: float) -> Iterator[None]:
    """torch uses ``n`` CPU threads inside the block (the CPUs the work holds), then what it used before.

    torch's default, a thread per core, makes small nets' matmuls wait on each other: RL's updates ran
    10x slower on a busy 2-core machine. In the driver this is scoped to RL's own work, so the
    notebook's torch keeps its setting; an actor's process sets it once (``set_cpu_threads``)."""
    before = torch.get_num_threads()
    wanted = max(1, int(n))
    if wanted != before:
        torch.set_num_threads(wanted)
    try:
        yield
    finally:
        if wanted != before:
            torch.set_num_threads(before)


def set_cpu_threads(n: float) -> None:
    """In an actor's own process (a learner, an env runner): torch uses the CPUs it holds."""
    torch.set_num_threads(max(1, int(n)))


class Learner:
    def __init__(self, config: Any, module: RLModule) -> None:
        self.config = config
        use_gpu = config.learner_gpus > 0 and torch.cuda.is_available()
        self.device = torch.device("cuda" if use_gpu else "cpu")
        self.module = module.to(self.device)
        self.optimizers: dict[str, torch.optim.Optimizer] = self.configure_optimizers()
        self.rank, self.world_size = 0, 1  # a LearnerGroup with several learners sets these
        self.build()

    # ------------------------------------------------------------------ to override
    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """One Adam over every parameter at ``config.lr``; algorithms with several override."""
        return {"default": torch.optim.Adam(self.module.parameters(), lr=self.config.lr)}

    def build(self) -> None:
        """Set up algorithm state (target networks, schedules) after the optimizers exist."""

    def update(self, batch: dict[str, np.ndarray], timestep: int) -> dict[str, float]:
        raise NotImplementedError(f"{type(self).__name__}.update(batch, timestep) must run one training step's "
                                  "updates and return its metrics.")

    def get_extra_state(self) -> dict:
        """Algorithm state beside the module and optimizers (counters, schedules) for checkpoints."""
        return {}

    def set_extra_state(self, state: dict) -> None:
        pass

    # ------------------------------------------------------------------ helpers
    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return next(iter(self.optimizers.values()))

    def to_tensors(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """Every array column as a tensor on the learner's device (float64 becomes float32)."""
        out = {}
        for key, value in batch.items():
            array = np.asarray(value)
            out[key] = self.as_tensor(array, np.float32 if array.dtype == np.float64 else None)
        return out

    def as_tensor(self, value: Any, dtype: Any = None) -> torch.Tensor:
        """``value`` as a tensor on the learner's device. An array read from the object store is read-only,
        which torch does not support (it warns): such an array is copied first."""
        array = np.asarray(value, dtype)
        return torch.as_tensor(array if array.flags.writeable else array.copy(), device=self.device)

    def apply_gradients(self, loss: torch.Tensor, optimizer: str | torch.optim.Optimizer = "default",
                        parameters: Any = None) -> float:
        """Backward, clip per ``grad_clip``/``grad_clip_by``, step; returns the gradient norm before clipping."""
        opt = self.optimizers[optimizer] if isinstance(optimizer, str) else optimizer
        params = list(parameters) if parameters is not None else [p for g in opt.param_groups for p in g["params"]]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.world_size > 1:
            _average_gradients(params, self.world_size)
        clip = self.config.grad_clip
        if clip and self.config.grad_clip_by == "value":
            norm = float(torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None]))
            torch.nn.utils.clip_grad_value_(params, clip)
        elif clip and self.config.grad_clip_by == "norm":  # each parameter on its own
            norm = float(torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None]))
            for p in params:
                if p.grad is not None:
                    torch.nn.utils.clip_grad_norm_([p], clip)
        else:  # global norm (the default): the clipping computes the norm it reports
            norm = float(torch.nn.utils.clip_grad_norm_(params, clip or float("inf")))
        opt.step()
        return norm

    def lockstep_max(self, n: int) -> int:
        """The largest ``n`` over the learners (``n`` alone with one): size loops by it so that every rank
        runs as many optimizer steps as the one with the biggest shard."""
        if self.world_size == 1:
            return int(n)
        import torch.distributed as dist

        value = torch.tensor([int(n)], dtype=torch.int64, device=self.device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return int(value.item())

    def mean_across_learners(self, value: torch.Tensor) -> torch.Tensor:
        """``value`` averaged over the learners (itself with one): for numbers every rank must agree on."""
        if self.world_size == 1:
            return value
        import torch.distributed as dist

        value = value.detach().clone()
        dist.all_reduce(value)
        return value / self.world_size

    # ------------------------------------------------------------------ state
    def get_weights(self) -> dict[str, np.ndarray]:
        return self.module.get_state()

    def set_weights(self, weights: dict) -> None:
        self.module.set_state(weights)

    def get_state(self) -> dict:
        return {"module": self.module.get_state(),
                "optimizers": {name: _to_cpu(opt.state_dict()) for name, opt in self.optimizers.items()},
                "extra": self.get_extra_state()}

    def set_state(self, state: dict) -> None:
        self.module.set_state(state["module"])
        for name, opt_state in state.get("optimizers", {}).items():
            if name in self.optimizers:
                self.optimizers[name].load_state_dict(opt_state)
        self.set_extra_state(state.get("extra", {}))


def _average_gradients(params: list, world_size: int) -> None:
    """Average the parameters' gradients over the process group in one all-reduce (one flat buffer).

    Every rank runs the same update code, so the same parameters have gradients on each."""
    import torch.distributed as dist

    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world_size
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def _to_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(v) for v in value)
    return value
