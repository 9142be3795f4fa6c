"""Out-of-memory prevention: the node manager's memory monitor.

Every ``memory_monitor_interval_s`` the node manager samples the node's memory
and its workers' memory and kills workers before the kernel's OOM killer
picks a victim at random (possibly the node manager itself). Two policies:

* **over request**: a task or actor that declared ``memory=`` and whose worker
  (with its child processes) holds more than that request plus a margin is
  killed, whatever the node's state.
* **node near its limit**: when the node uses more than
  ``memory_usage_threshold`` of its limit, one worker is killed per interval,
  chosen like Ray: retriable tasks first, then restartable actors, then the
  rest (non-retriable tasks, actors out of restarts); among equals the most
  recently leased. Idle workers, drivers, the node manager and the GCS are never
  chosen. While a killed worker has not exited yet, nobody else is killed.

A worker's memory is its private resident memory (RSS minus shared pages, as
Ray measures the worker heap), so objects mapped from the shared-memory store
are not charged to every task that reads them.

The node's limit is the container's cgroup limit when one is set (v2
``memory.max``, or v1 ``memory.limit_in_bytes``), else the machine's memory;
usage leaves out reclaimable page cache. ``node_memory_limit_bytes`` gives the
node a budget of its own instead: usage is then the memory of the node's own
processes (node manager, workers, drivers), which lets tests (and nodes that
share a machine) force the threshold without filling the machine.

:class:`MemoryPolicy` holds every decision and is tested without processes;
:class:`MemorySampler` reads ``/proc``, cgroup files and psutil; :class:`MemoryMonitor`
ties them to the node manager's worker pool and leases.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import psutil

logger = logging.getLogger(__name__)

# The death "kind" a killed worker's owner receives with the reason text (through
# "lease_worker_died" / "actor_worker_died"), so it raises OutOfMemoryError.
KIND_OOM = "oom"

POLICY_REQUEST = "memory_request"
POLICY_NODE = "node_threshold"

# Tiers of the node-threshold policy, killed in this order.
TIER_RETRIABLE_TASK = 0
TIER_RESTARTABLE_ACTOR = 1
TIER_OTHER = 2

_CGROUP_UNLIMITED = 1 << 60  # cgroup v1 reports "no limit" as a huge number


def fmt_bytes(n: float) -> str:
    if n >= 1 << 30:
        return f"{n / (1 << 30):.2f} GiB"
    if n >= 1 << 20:
        return f"{n / (1 << 20):.0f} MiB"
    if n >= 1 << 10:
        return f"{n / (1 << 10):.0f} KiB"
    return f"{int(n)} B"


@dataclass
class WorkerUsage:
    """One leased worker as the policy sees it."""

    worker_id: bytes
    pid: int
    rss: int                 # private resident bytes of the worker and its child processes
    request: int = 0         # ``memory=`` bytes its lease holds (0: none declared)
    actor: bool = False
    retriable: bool = True   # task: max_retries != 0; actor: restarts left
    started: float = 0.0     # when its lease was granted (larger: more recent)
    name: str = ""           # task or actor class name, for messages
    dying: bool = False      # already being killed (by the monitor or anything else)

    def describe(self) -> str:
        what = f"actor {self.name}" if self.actor else f"task {self.name}"
        return what if self.name else ("an actor" if self.actor else "a task")


@dataclass
class NodeUsage:
    used: int
    limit: int
    source: str = "system"   # where the numbers come from, for messages

    @property
    def fraction(self) -> float:
        return self.used / self.limit if self.limit > 0 else 0.0


@dataclass
class Kill:
    worker_id: bytes
    pid: int
    policy: str
    reason: str


class MemoryPolicy:
    """Which workers to kill, given the node's usage and its leased workers' usage."""

    def __init__(self, usage_threshold: float = 0.95, margin_fraction: float = 0.05, margin_bytes: int = 0):
        self.usage_threshold = usage_threshold
        self.margin_fraction = margin_fraction
        self.margin_bytes = margin_bytes

    @classmethod
    def from_config(cls, config: Any) -> "MemoryPolicy":
        return cls(config.memory_usage_threshold, config.memory_request_margin_fraction,
                   config.memory_request_margin_bytes)

    # ---- policy 1: a worker over its memory= request
    def request_limit(self, request: int) -> int:
        """The most a worker with this ``memory=`` request may hold before it is killed."""
        return int(request + max(self.margin_bytes, request * self.margin_fraction))

    def over_request(self, workers: Iterable[WorkerUsage]) -> list[Kill]:
        kills = []
        for w in workers:
            if w.dying or w.request <= 0:
                continue
            limit = self.request_limit(w.request)
            if w.rss > limit:
                kills.append(Kill(w.worker_id, w.pid, POLICY_REQUEST, self._request_reason(w, limit)))
        return kills

    def _request_reason(self, w: WorkerUsage, limit: int) -> str:
        what = w.describe()
        return (f"the memory monitor killed the worker (pid {w.pid}) running {what} because it used "
                f"{fmt_bytes(w.rss)} of memory, more than its memory= request of {fmt_bytes(w.request)} "
                f"allows ({fmt_bytes(limit)} with the margin). Request more memory for it with "
                f".options(memory=...) (bytes), make it use less, or allow a larger margin with "
                f"_system_config={{'memory_request_margin_fraction': ...}}")

    # ---- policy 2: the node near its limit
    def over_threshold(self, node: NodeUsage | None) -> bool:
        return node is not None and node.limit > 0 and node.fraction > self.usage_threshold

    @staticmethod
    def tier(w: WorkerUsage) -> int:
        if not w.retriable:
            return TIER_OTHER
        return TIER_RESTARTABLE_ACTOR if w.actor else TIER_RETRIABLE_TASK

    def pick_victim(self, workers: Iterable[WorkerUsage]) -> WorkerUsage | None:
        """Retriable tasks before restartable actors before the rest; the newest lease first
        within a tier (the least work lost), the biggest on a tie."""
        candidates = [w for w in workers if not w.dying]
        if not candidates:
            return None
        return min(candidates, key=lambda w: (self.tier(w), -w.started, -w.rss))

    def _node_reason(self, node: NodeUsage, w: WorkerUsage) -> str:
        why = {TIER_RETRIABLE_TASK: "the most recently started retriable task",
               TIER_RESTARTABLE_ACTOR: "the most recently started actor that can restart (no retriable "
                                       "task was running)",
               TIER_OTHER: "the most recently started task or actor (none running could be retried)"}
        return (f"the node was running low on memory: it used {fmt_bytes(node.used)} of its "
                f"{fmt_bytes(node.limit)} ({node.source}), a fraction of {node.fraction:.3f}, over the "
                f"memory_usage_threshold of {self.usage_threshold}; the memory monitor killed the worker "
                f"(pid {w.pid}, {fmt_bytes(w.rss)}) running {w.describe()} because it was {why[self.tier(w)]}. "
                f"Reduce parallelism (request more memory= or num_cpus per task so fewer run at once), "
                f"give the node more memory, or raise the threshold with "
                f"_system_config={{'memory_usage_threshold': ...}} (JUNO_MEMORY_USAGE_THRESHOLD)")

    # ---- both
    def decide(self, node: NodeUsage | None, workers: list[WorkerUsage]) -> list[Kill]:
        """Every worker over its request; else, with the node over its threshold and no
        earlier victim still exiting, one victim."""
        kills = self.over_request(workers)
        if kills or not self.over_threshold(node):
            return kills
        if any(w.dying for w in workers):
            return []  # memory is about to be freed: look again next interval
        victim = self.pick_victim(workers)
        if victim is None:
            return []
        return [Kill(victim.worker_id, victim.pid, POLICY_NODE, self._node_reason(node, victim))]


class MemorySampler:
    """Reads the node's and processes' memory (Linux /proc and cgroup files, psutil)."""

    def __init__(self, cgroup_root: str = "/sys/fs/cgroup"):
        self.cgroup_root = cgroup_root
        self._procs: dict[int, psutil.Process] = {}

    # ---- the node
    def node_usage(self) -> NodeUsage:
        cgroup = self.cgroup_usage()
        if cgroup is not None:
            return cgroup
        vm = psutil.virtual_memory()
        return NodeUsage(int(vm.total - vm.available), int(vm.total), "the machine's memory")

    def cgroup_usage(self) -> NodeUsage | None:
        """The container's limit and usage (less reclaimable page cache), or None without a limit."""
        root = self.cgroup_root
        v2 = self._read_int(os.path.join(root, "memory.max"))
        if v2 is not None:
            current = self._read_int(os.path.join(root, "memory.current"))
            if current is None:
                return None
            inactive = self._stat(os.path.join(root, "memory.stat"), "inactive_file")
            return NodeUsage(max(0, current - inactive), v2, "the container's cgroup limit")
        v1_dir = os.path.join(root, "memory")
        limit = self._read_int(os.path.join(v1_dir, "memory.limit_in_bytes"))
        if limit is None or limit >= _CGROUP_UNLIMITED or limit >= psutil.virtual_memory().total:
            return None
        usage = self._read_int(os.path.join(v1_dir, "memory.usage_in_bytes"))
        if usage is None:
            return None
        inactive = self._stat(os.path.join(v1_dir, "memory.stat"), "total_inactive_file")
        return NodeUsage(max(0, usage - inactive), limit, "the container's cgroup limit")

    @staticmethod
    def _read_int(path: str) -> int | None:
        """An integer file's value; None when missing or "max" (no limit)."""
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError:
            return None
        try:
            return int(text)
        except ValueError:
            return None

    @staticmethod
    def _stat(path: str, key: str) -> int:
        try:
            with open(path) as f:
                for line in f:
                    name, _, value = line.partition(" ")
                    if name == key:
                        return int(value)
        except (OSError, ValueError):
            pass
        return 0

    # ---- processes
    def private_rss(self, pid: int, children: bool = True) -> int:
        """Resident memory of a process (and its descendants) not shared with others; 0 if gone."""
        total = self._private(pid)
        if children:
            for child in self.descendants(pid):
                total += self._private(child)
        return total

    def _private(self, pid: int) -> int:
        proc = self._procs.get(pid)
        try:
            if proc is None:
                proc = self._procs[pid] = psutil.Process(pid)
            mi = proc.memory_info()
        except psutil.Error:
            self._procs.pop(pid, None)
            return 0
        return max(0, mi.rss - getattr(mi, "shared", 0))

    @staticmethod
    def descendants(pid: int) -> list[int]:
        """Child processes, recursively: /proc/<pid>/task/<tid>/children where the kernel has
        it (a few small reads), else psutil (which scans every process)."""
        out: list[int] = []
        todo = [pid]
        while todo:
            parent = todo.pop()
            try:
                tids = os.listdir(f"/proc/{parent}/task")
            except OSError:
                continue
            kids: list[int] = []
            try:
                for tid in tids:
                    with open(f"/proc/{parent}/task/{tid}/children") as f:
                        kids.extend(int(x) for x in f.read().split())
            except FileNotFoundError:
                try:
                    return [p.pid for p in psutil.Process(pid).children(recursive=True)]
                except psutil.Error:
                    return out
            except (OSError, ValueError):
                pass
            out.extend(kids)
            todo.extend(kids)
        return out

    def forget(self, live_pids: set[int]) -> None:
        for pid in [p for p in self._procs if p not in live_pids]:
            del self._procs[pid]


class MemoryMonitor:
    """The node manager's side: builds the policy's view from the pool and the leases.

    ``workers`` returns the pool's WorkerProcess objects, ``lease_of`` a worker's lease
    (with ``allocation``, ``actor_id``, ``retriable``, ``granted_at``, ``name``) or None,
    ``other_pids`` the pids of the node's other processes (itself, drivers), which only
    count toward a configured node limit.
    """

    def __init__(self, config: Any, workers: Callable[[], Iterable[Any]], lease_of: Callable[[Any], Any],
                 other_pids: Callable[[], Iterable[int]], sampler: MemorySampler | None = None):
        self.policy = MemoryPolicy.from_config(config)
        self.limit_override = int(config.node_memory_limit_bytes or 0)
        self.workers = workers
        self.lease_of = lease_of
        self.other_pids = other_pids
        self.sampler = sampler or MemorySampler()

    def check(self) -> list[Kill]:
        sampler = self.sampler
        simulated = self.limit_override > 0
        node = None if simulated else sampler.node_usage()
        sample_all = simulated or self.policy.over_threshold(node)
        views: list[WorkerUsage] = []
        simulated_used = 0
        live = set()
        for worker in list(self.workers()):
            lease = self.lease_of(worker)
            request = int(lease.allocation.resources.get("memory", 0)) if lease is not None else 0
            if not (sample_all or request):
                continue
            live.add(worker.pid)
            rss = sampler.private_rss(worker.pid)
            simulated_used += rss
            if lease is None:
                continue  # idle or starting: never a victim
            views.append(WorkerUsage(
                worker.worker_id, worker.pid, rss, request, actor=lease.actor_id is not None,
                retriable=bool(getattr(lease, "retriable", True)), started=getattr(lease, "granted_at", 0.0),
                name=getattr(lease, "name", "") or "", dying=worker.kill_reason is not None))
        if simulated:
            for pid in self.other_pids():
                live.add(pid)
                simulated_used += sampler.private_rss(pid, children=False)
            node = NodeUsage(simulated_used, self.limit_override,
                             "node_memory_limit_bytes, counting the node's own processes")
        sampler.forget(live)
        return self.policy.decide(node, views)
