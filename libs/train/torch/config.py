"""torch.distributed set-up for Train's workers: ``TorchConfig`` and what each worker actor runs.

The worker group finds a free port on the rank-0 worker (``juno.air.worker.free_port``), then
calls ``setup_process_group(...)`` on every worker, and ``teardown_process_group()`` when the run ends.
torch is imported only inside those calls, so the driver can build a ``TorchConfig`` (and import
``juno.train``) without paying for torch.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import os
import socket
import time

# Process-group backends torch knows by name ("cpu:gloo,cuda:nccl" style lists are split first).
BACKENDS = ("gloo", "nccl", "mpi", "ucc", "xccl")
INIT_METHODS = ("env", "tcp")


@dataclasses.dataclass
class TorchConfig:
    """How the workers' torch.distributed process group is set up (Ray's ``ray.train.torch.TorchConfig``).

    ``backend=None`` picks "nccl" on a worker that has a GPU torch can use, else "gloo". ``init_method``
    "env" or "tcp" both rendezvous at the rank-0 worker's address and a free port found there.
    ``timeout_s`` bounds the rendezvous and every collective.
    """

    backend: str | None = None
    init_method: str = "env"
    timeout_s: int = 1800

    def __post_init__(self):
        if self.backend is not None:
            if not isinstance(self.backend, str) or not self.backend:
                raise ValueError(f"TorchConfig(backend={self.backend!r}): give a backend name such as 'gloo' or "
                                 "'nccl', or None to pick nccl on GPU workers and gloo otherwise")
            for part in self.backend.split(","):
                name = part.split(":")[-1].strip().lower()
                if name not in BACKENDS:
                    raise ValueError(f"TorchConfig(backend={self.backend!r}): unknown backend {name!r}; use one of "
                                     f"{', '.join(BACKENDS)}, or None to pick nccl on GPU workers and gloo otherwise")
        if self.init_method not in INIT_METHODS:
            raise ValueError(f"TorchConfig(init_method={self.init_method!r}): use 'env' or 'tcp'")
        if isinstance(self.timeout_s, bool) or not isinstance(self.timeout_s, (int, float)) or self.timeout_s <= 0:
            raise ValueError(f"TorchConfig(timeout_s={self.timeout_s!r}): give a positive number of seconds")

    def resolve_backend(self, has_gpu: bool, cuda_available: bool) -> str:
        """The backend a worker uses: the one given, else nccl when it has a GPU torch can use, else gloo."""
        if self.backend is not None:
            return self.backend
        return "nccl" if has_gpu and cuda_available else "gloo"


def is_loopback(address: str) -> bool:
    """Whether ``address`` (an IP or a host name) is this machine's loopback."""
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def interface_for(local_ip: str, interfaces: dict) -> str | None:
    """The name of the interface holding ``local_ip`` in ``interfaces`` (name -> [addresses with ``.address``],
    as psutil.net_if_addrs() gives), or None."""
    for name, addrs in interfaces.items():
        if any(getattr(a, "address", None) == local_ip for a in addrs):
            return name
    return None


def _gloo_interface_towards(master_addr: str) -> str | None:
    """The interface this node reaches ``master_addr`` through, so gloo does not bind to whatever the host
    name resolves to (often 127.0.1.1, which peers on other nodes cannot reach)."""
    import psutil

    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((master_addr, 9))  # UDP: no packet is sent, the kernel only picks the route
            local_ip = s.getsockname()[0]
    except OSError:
        return None
    return interface_for(local_ip, psutil.net_if_addrs())


def setup_process_group(config: TorchConfig, world_rank: int, world_size: int, master_addr: str,
                        master_port: int) -> str:
    """Join this worker to the run's process group; returns the backend used.

    Sets torchrun's MASTER_ADDR, MASTER_PORT, RANK and WORLD_SIZE, then rendezvouses through a TCPStore on
    the rank-0 worker. If a peer never comes (it died, or cannot reach ``master_addr``), this raises
    ``TimeoutError`` after about ``config.timeout_s`` saying so, instead of waiting forever.
    """
    import datetime

    import torch
    import torch.distributed as dist

    if not isinstance(config, TorchConfig):
        raise TypeError(f"setup_process_group needs a TorchConfig, got {type(config).__name__}")
    if not (isinstance(world_size, int) and world_size >= 1 and isinstance(world_rank, int)
            and 0 <= world_rank < world_size):
        raise ValueError(f"world_rank={world_rank!r} must be in 0..world_size-1 (world_size={world_size!r})")
    if not dist.is_available():
        raise RuntimeError("this torch build has no torch.distributed; install a torch wheel with distributed "
                           "support (the default pip wheels have it)")
    if dist.is_initialized():
        raise RuntimeError("torch.distributed is already initialized in this worker; call "
                           "teardown_process_group() first")

    from juno.train.torch.train_loop_utils import get_devices

    device = get_devices()[0]
    backend = config.resolve_backend(device.type == "cuda", torch.cuda.is_available())
    if "nccl" in backend and not torch.cuda.is_available():
        raise ValueError(f"TorchConfig(backend={backend!r}) needs CUDA, but torch sees no GPU in this worker; "
                         "use backend='gloo' or None, or ScalingConfig(use_gpu=True) on a cluster with GPUs")
    os.environ.update(MASTER_ADDR=str(master_addr), MASTER_PORT=str(master_port), RANK=str(world_rank),
                      WORLD_SIZE=str(world_size))
    if "gloo" in backend and "GLOO_SOCKET_IFNAME" not in os.environ and not is_loopback(str(master_addr)):
        interface = _gloo_interface_towards(str(master_addr))
        if interface:
            os.environ["GLOO_SOCKET_IFNAME"] = interface
    if "nccl" in backend:
        os.environ.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1")  # a stuck collective aborts, not hangs
        if device.type == "cuda":
            torch.cuda.set_device(device)

    timeout = datetime.timedelta(seconds=config.timeout_s)
    # A client's first connect to a master that never listens takes the whole store timeout and is then
    # retried once after about as long again: give clients half, so the failure comes within ~timeout_s.
    connect_timeout = timeout if world_rank == 0 else timeout / 2
    started = time.monotonic()
    try:
        store = dist.TCPStore(str(master_addr), int(master_port), world_size, world_rank == 0,
                              timeout=connect_timeout, wait_for_workers=True)
        store.set_timeout(timeout)
        # Bound to its GPU, an nccl group uses the right device whichever thread later runs a collective.
        bound = {"device_id": device} if "nccl" in backend and device.type == "cuda" else {}
        dist.init_process_group(backend, store=store, rank=world_rank, world_size=world_size, timeout=timeout,
                                **bound)
    except (RuntimeError, OSError) as e:  # torch's DistError family derives from RuntimeError
        raise _rendezvous_error(e, world_rank, world_size, master_addr, master_port, config.timeout_s,
                                time.monotonic() - started) from e
    return backend


def _rendezvous_error(error: BaseException, rank: int, size: int, addr, port, timeout_s, elapsed: float) -> Exception:
    first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
    where = f"{addr}:{port}"
    if "timed out" not in first_line.lower() and "timeout" not in first_line.lower() and elapsed < timeout_s / 2:
        return RuntimeError(f"torch.distributed set-up failed on rank {rank} of {size} (rendezvous at {where}): "
                            f"{first_line}")
    if rank == 0:
        what = (f"rank 0 waited at {where} but not all {size} workers joined within {timeout_s} s: a worker died "
                f"before joining, or cannot reach {addr} from its node")
    else:
        what = (f"rank {rank} of {size} could not complete the rendezvous with rank 0 at {where} within {timeout_s} "
                f"s: rank 0 never listened there (it died), or {addr} is not reachable from this node")
    return TimeoutError(f"torch.distributed rendezvous timed out: {what}. Raise TorchConfig(timeout_s=...) if "
                        f"workers start slowly. (torch said: {first_line})")


def teardown_process_group() -> None:
    """Leave the process group if this worker is in one; never raises (it runs while a run is torn down)."""
    import sys

    if "torch" not in sys.modules:  # torch never loaded here: there is no process group to leave
        return
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    except Exception:  # noqa: BLE001 - a broken group must not mask the run's own outcome
        pass
