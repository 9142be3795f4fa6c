"""``LearnerGroup``: where the learner runs. ``num_learners=0``: in the driver; 1: in one learner actor
holding ``num_gpus_per_learner`` GPUs (Juno sets its ``CUDA_VISIBLE_DEVICES``); N > 1: N learner actors,
data-parallel (RLlib's multi-learner set-up).

With N learners the actors form one torch process group (gloo on CPUs, nccl when they hold GPUs; set up by
Juno Train's ``setup_process_group``). Each ``update`` splits the batch into N shards (``shard_batch``), each
learner updates on its own and the gradients are averaged over the group (``Learner.apply_gradients``), so
all N keep identical weights. Weights and state come from rank 0; setting them goes to every rank.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

import juno
from juno.exceptions import RayActorError
from juno.rl.core.learner import cpu_threads, set_cpu_threads
from juno.rl.core.rl_module import RLModuleSpec

LEARNER_CALL_TIMEOUT_S = 600.0
LEARNER_START_TIMEOUT_S = 300.0  # the actors start, import torch and meet in the process group
DEATH_GRACE_S = 10.0  # after one rank fails: how long to look for the rank that died (the others then fail too)


class LearnerHost:
    """The learner actor's class: builds the learner from its spec in the actor's process."""

    def __init__(self, config: Any, learner_class: type, module_spec: RLModuleSpec) -> None:
        set_cpu_threads(config.num_cpus_per_learner)
        self.learner = learner_class(config, module_spec.build())

    def update(self, batch: dict, timestep: int) -> dict:
        return self.learner.update(batch, timestep)

    def call(self, method: str, *args: Any) -> Any:
        return getattr(self.learner, method)(*args)

    def apply(self, func: Callable) -> Any:
        return func(self.learner)

    def rendezvous_address(self) -> tuple[str, int]:
        """This node's address and a port free on it: where rank 0 hosts the process group's store."""
        from juno.air.worker import free_port, node_ip

        return node_ip(), free_port()

    def join_group(self, rank: int, world_size: int, address: str, port: int, timeout_s: float) -> str:
        from juno.train.torch.config import TorchConfig, setup_process_group

        backend = setup_process_group(TorchConfig(timeout_s=int(timeout_s)), rank, world_size, address, port)
        self.learner.rank, self.learner.world_size = rank, world_size
        return backend

    def leave_group(self) -> None:
        from juno.train.torch.config import teardown_process_group

        teardown_process_group()


class LearnerGroup:
    def __init__(self, config: Any, learner_class: type, module_spec: RLModuleSpec) -> None:
        self.config = config
        self.num_env_steps_trained = 0
        self.version = 0  # bumped whenever the weights may have changed
        self._actors: list = []
        self._local = None
        self._broken: str | None = None
        if config.num_learners == 0:
            self._local = learner_class(config, module_spec.build())
            return
        host = juno.remote(LearnerHost).options(num_cpus=config.num_cpus_per_learner, num_gpus=config.learner_gpus)
        self._actors = [host.remote(config, learner_class, module_spec) for _ in range(config.num_learners)]
        if len(self._actors) > 1:
            try:
                self._form_group()
            except BaseException:
                self.stop()
                raise

    def _form_group(self) -> None:
        """Join the actors into one process group, then give every rank rank 0's initial state (their
        modules were initialized at random, each its own way)."""
        n = len(self._actors)
        address, port = self._gather([self._actors[0].rendezvous_address.remote()], "start",
                                     LEARNER_START_TIMEOUT_S)[0]
        self._gather([a.join_group.remote(rank, n, address, port, LEARNER_START_TIMEOUT_S)
                      for rank, a in enumerate(self._actors)], "process group set-up", LEARNER_START_TIMEOUT_S + 30)
        state = self._gather([self._actors[0].call.remote("get_state")], "get_state")[0]
        self._gather([a.call.remote("set_state", state) for a in self._actors[1:]], "set_state")

    @property
    def is_local(self) -> bool:
        return self._local is not None

    @property
    def num_learners(self) -> int:
        """How many learners update (1 for the driver's)."""
        return max(1, len(self._actors))

    @property
    def learner(self) -> Any:
        """The learner object when it runs in the driver (None in an actor)."""
        return self._local

    def _gather(self, refs: list, what: str, timeout_s: float = LEARNER_CALL_TIMEOUT_S) -> list:
        """The refs' values in rank order. A learner that dies is an error naming its rank; one that does
        not answer within ``timeout_s`` is a ``TimeoutError``. Either breaks a group of several learners."""
        if self._broken:
            raise RuntimeError(self._broken)
        ready, pending = juno.wait(list(refs), num_returns=len(refs), timeout=timeout_s)
        failures = {}
        for rank, ref in enumerate(refs):
            if ref in ready:
                try:
                    juno.get(ref, timeout=timeout_s)
                except Exception as e:  # noqa: BLE001 - sorted out below
                    failures[rank] = e
        if failures and pending:  # one rank failed; the one that died may be among those still blocked
            more, pending = juno.wait(pending, num_returns=len(pending), timeout=DEATH_GRACE_S)
            for rank, ref in enumerate(refs):
                if ref in more:
                    try:
                        juno.get(ref, timeout=DEATH_GRACE_S)
                    except Exception as e:  # noqa: BLE001
                        failures[rank] = e
        if failures:
            died = [r for r, e in failures.items() if isinstance(e, RayActorError)]
            rank = died[0] if died else min(failures)
            error = failures[rank]
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            kind = "died" if died else "failed"
            message = (f"learner rank {rank} of {len(self._actors)} {kind} during {what}: {first}")
            if len(self._actors) > 1:
                self._broken = (f"The learner group is broken ({message}); build the algorithm again, or restore "
                                "it from a checkpoint.")
            raise RuntimeError(message) from error
        if pending:
            late = [rank for rank, ref in enumerate(refs) if ref in pending]
            if len(self._actors) > 1:
                self._broken = f"The learner group is broken: learner ranks {late} did not answer {what}."
            raise TimeoutError(f"learner rank{'s' if len(late) > 1 else ''} {', '.join(map(str, late))} did not "
                               f"finish {what} within {timeout_s:.0f} s (num_learners={len(self._actors)}).")
        return juno.get(list(refs), timeout=timeout_s)

    def _call(self, method: str, *args: Any) -> Any:
        """``method`` on the learner: the driver's, else rank 0's."""
        if self._local is not None:
            return getattr(self._local, method)(*args)
        return self._gather([self._actors[0].call.remote(method, *args)], method)[0]

    def _call_all(self, method: str, *args: Any) -> None:
        if self._local is not None:
            getattr(self._local, method)(*args)
            return
        arg_refs = [juno.put(a) for a in args] if len(self._actors) > 1 else list(args)  # one copy for all ranks
        self._gather([a.call.remote(method, *arg_refs) for a in self._actors], method)

    def foreach_learner(self, func: Callable[[Any], Any]) -> list:
        """``func(learner)`` on every learner, results in rank order (RLlib's ``foreach_learner``)."""
        if self._local is not None:
            return [func(self._local)]
        return self._gather([a.apply.remote(func) for a in self._actors], "foreach_learner")

    def update(self, batch: dict[str, np.ndarray], timestep: int) -> dict[str, float]:
        """One training step's updates; counts the batch's env steps as trained. With several learners
        each updates on its shard; the metrics are their means (per-row arrays such as ``td_error``
        are put back together in the batch's order)."""
        rewards = batch.get("rewards")
        self.num_env_steps_trained += int(np.asarray(rewards).size) if rewards is not None else 0
        self.version += 1
        if self._local is not None:
            with cpu_threads(self.config.num_cpus_per_learner):
                return self._local.update(batch, timestep)
        if len(self._actors) == 1:
            return self._gather([self._actors[0].update.remote(batch, timestep)], "update")[0]
        shards = shard_batch(batch, len(self._actors))
        results = self._gather([a.update.remote(s, timestep) for a, s in zip(self._actors, shards)], "update")
        return merge_learner_metrics(results)

    def get_weights(self) -> dict[str, np.ndarray]:
        return self._call("get_weights")

    def set_weights(self, weights: dict) -> None:
        self.version += 1
        self._call_all("set_weights", weights)

    def get_state(self) -> dict:
        return self._call("get_state")

    def set_state(self, state: dict) -> None:
        self.version += 1
        self._call_all("set_state", state)

    def stop(self) -> None:
        """Leave the process group (briefly: a broken group must not hold the stop up), then kill the actors."""
        actors, self._actors = self._actors, []
        if len(actors) > 1:
            refs = [a.leave_group.remote() for a in actors]
            juno.wait(refs, num_returns=len(refs), timeout=10.0)
        for actor in actors:
            try:
                juno.kill(actor)
            except Exception:  # noqa: BLE001 - already dead is fine
                pass


def shard_batch(batch: dict[str, np.ndarray], n: int) -> list[dict[str, np.ndarray]]:
    """The batch in ``n`` shards, one per learner, as even as the rows allow.

    A time-major batch (``rewards`` [T, N]) is split along the env axis when it has at least ``n`` envs,
    so each shard holds whole env columns and GAE sees whole fragments; else along time (a cut ends a
    fragment there: GAE bootstraps from the next observation's value, as at any fragment's end). A flat
    batch (``rewards`` [B], a replay sample) is split along its rows. Columns of another shape (none of
    Juno's algorithms has one) go to every shard whole."""
    if "rewards" not in batch:
        raise ValueError(f"shard_batch needs a 'rewards' column to tell the batch's layout; it has {sorted(batch)}")
    lead = np.shape(batch["rewards"])
    if len(lead) == 2 and lead[1] >= n:
        axis = 1
    elif len(lead) in (1, 2):
        axis = 0
    else:
        raise ValueError(f"shard_batch: 'rewards' has shape {lead}; expected [T, N] (time-major) or [B] (rows)")
    if lead[axis] < n:
        raise ValueError(f"A train batch of shape {lead} cannot be split over {n} learners (each needs at least one "
                         f"row): raise train_batch_size_per_learner or lower num_learners.")
    shards: list[dict[str, np.ndarray]] = [{} for _ in range(n)]
    for key, value in batch.items():
        array = np.asarray(value)
        if array.shape[:len(lead)] == lead:
            parts = np.array_split(array, n, axis=axis)
        else:
            parts = [array] * n
        for shard, part in zip(shards, parts):
            shard[key] = part
    return shards


def merge_learner_metrics(results: list[dict]) -> dict:
    """The learners' metrics as one dict: numbers averaged, per-row arrays concatenated in rank order
    (the shards' order), anything else rank 0's."""
    merged = {}
    for key, first in results[0].items():
        values = [r.get(key) for r in results]
        if isinstance(first, np.ndarray) and first.ndim >= 1 and all(isinstance(v, np.ndarray) for v in values):
            merged[key] = np.concatenate(values)
        elif isinstance(first, (int, float, np.number)) and not isinstance(first, bool) \
                and all(isinstance(v, (int, float, np.number)) for v in values):
            merged[key] = float(np.mean(values))
        else:
            merged[key] = first
    return merged
