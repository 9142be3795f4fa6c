"""Objects between nodes: a node manager pulls an object from the node that holds it.

A process that reads an object whose value says it lives on another node asks its
own node manager to ``pull_object``. That node manager (the puller) asks the source
node manager to pin the object (``transfer_begin``), reserves room in its own store
for a *secondary copy*, and asks for the bytes in chunks (``transfer_chunk``),
several in flight. The source answers each with a multi-frame message whose payload
frame is a view of its shared memory (no copy on the way out); the puller writes the
frame straight into its store (one copy), seals the copy, pins it for every reader
that asked meanwhile (concurrent pulls of one object are one transfer) and answers
them with its location. The readers then map the local copy zero-copy as usual.

Nodes on one machine (tests, or a big machine split into nodes) skip the socket: the
source answers ``transfer_begin`` with the file that holds the object (its shared-memory
arena, or a spill file) and the puller copies it from a read-only mapping of that file
straight into its own store (one memcpy), in slices between other messages.

Copies are secondary: the owner's value still names the primary's node, the source
remembers which nodes pulled a copy and forwards the owner's delete to them, and a
store under memory pressure drops copies before it spills primaries. A pull fails with
``ObjectLostError`` when the source node is dead or no longer has the object, with
``ObjectFetchTimedOutError`` when the source stops sending (config:
``object_transfer_timeout_s``, ``object_pull_timeout_s``).
"""
from __future__ import annotations

import itertools
import logging
import mmap
import os
import time
from typing import TYPE_CHECKING, Any

from juno import exceptions as exc
from juno.comm.rpc import DEFER, Reply
from juno.store.object_store import ARENA_FILE
from juno.comm.transport import DEFAULT_MAX_MESSAGE_BYTES

if TYPE_CHECKING:
    from juno.node.manager import NodeManager

logger = logging.getLogger(__name__)

_HOSTNAME = os.uname().nodename
# Bytes one same-machine copy step moves before the node manager serves other messages.
_LOCAL_COPY_SLICE = 64 << 20


class _Pull:
    """One object being copied here from ``source``; ``waiters`` are (holder, reply) of readers."""

    __slots__ = ("pull_id", "object_id", "source", "address", "size", "waiters", "next_offset", "in_flight",
                 "received", "started", "last_progress", "created")

    def __init__(self, pull_id: int, object_id: bytes, source: str):
        self.pull_id = pull_id
        self.object_id = object_id
        self.source = source
        self.address: str | None = None   # the source node manager, once known
        self.size = 0
        self.waiters: list[tuple[str, Reply]] = []
        self.next_offset = 0
        self.in_flight = 0
        self.received = 0
        self.started = time.monotonic()
        self.last_progress = self.started
        self.created = False              # room reserved in the local store


class ObjectTransfer:
    """Both ends of object transfer for one node manager (pull side and serve side)."""

    def __init__(self, nm: "NodeManager"):
        self.nm = nm
        self.store = nm.store
        self.loop = nm.loop
        self.config = nm.config
        # A chunk is one frame: it must stay under the receiver's frame limit (max_message_bytes).
        limit = self.config.max_message_bytes or DEFAULT_MAX_MESSAGE_BYTES
        self.chunk_bytes = max(64 << 10, min(int(self.config.object_transfer_chunk_bytes), limit // 2))
        self.max_in_flight = max(1, int(self.config.object_transfer_chunks_in_flight))
        # Chunks requested and not yet arrived, over all pulls: bounds the memory queued here.
        self.max_total_in_flight = 4 * self.max_in_flight
        self.total_in_flight = 0
        self._pull_ids = itertools.count(1)
        self.pulls: dict[bytes, _Pull] = {}          # object -> the pull copying it here
        self._by_id: dict[int, _Pull] = {}
        self.copies: dict[bytes, set[str]] = {}       # object held here -> nodes that pulled a copy
        self.serving: dict[tuple[bytes, str], list] = {}  # (object, puller node) -> [pins, since]
        self._known_nodes: set[str] = set()
        # Files of nodes on this machine mapped for same-machine pulls: path -> (mmap, view, node id).
        self._source_maps: dict[str, tuple] = {}
        self._arena_of: dict[str, str] = {}  # node id -> path of its arena
        self.counters = {"num_pulls": 0, "bytes_pulled": 0, "num_pull_requests": 0, "num_pulls_failed": 0,
                         "num_served": 0, "bytes_served": 0, "pull_seconds": 0.0,
                         "num_same_machine_copies": 0}
        self.store.on_free = self._on_free
        self._check_interval = max(0.05, min(1.0, self.config.object_transfer_timeout_s / 4))
        self.loop.call_later(self._check_interval, self._check_timeouts)

    def messages(self) -> dict:
        """The one-way messages this part answers (op -> handler), for the node manager's op table."""
        return {"transfer_chunk": self._on_chunk_request, "transfer_data": self._on_chunk_data}

    # ================================================================== pull side
    def pull(self, reply: Reply, object_id: bytes, source: str, holder: str) -> Any:
        """rpc pull_object: pin a local copy of ``object_id`` (primary on ``source``) for ``holder``;
        answers its location, at once if a copy is here, else when the pull is done."""
        self.counters["num_pull_requests"] += 1
        pull = self.pulls.get(object_id)
        if pull is not None:
            pull.waiters.append((holder, reply))
            return DEFER
        if source == self.nm.node_id or object_id in self.store.entries:
            location = self.store.pin(object_id, holder,
                                      on_sealed=lambda: reply.send(self.store.pin(object_id, holder)))
            if location == ("pending",):
                return DEFER
            if location is not None:
                return location
            if source == self.nm.node_id:
                raise self._lost(object_id, "it is no longer in this node's store (freed or lost)")
        pull = _Pull(next(self._pull_ids), object_id, source)
        pull.waiters.append((holder, reply))
        self.pulls[object_id] = pull
        self._by_id[pull.pull_id] = pull
        node = self.nm.cluster_view.get(source)
        if node is not None:
            self._begin(pull, node["address"])
        else:  # not in our view: maybe it joined since the last heartbeat; ask the GCS
            self.nm.call(self.nm.gcs_address, "get_cluster_view", timeout=self.config.rpc_timeout_s,
                         callback=lambda ok, value: self._on_fresh_view(pull, ok, value))
        return DEFER

    def _on_fresh_view(self, pull: _Pull, ok: bool, value: Any) -> None:
        if self.pulls.get(pull.object_id) is not pull:
            return
        node = value[1].get(pull.source) if ok and value and value[1] else None
        if node is None:
            what = "is not alive (it died or was removed)" if ok else f"could not be looked up ({value})"
            self._fail(pull, self._lost(pull.object_id, f"node {pull.source[:12]}, which holds it, {what}"))
            return
        self._begin(pull, node["address"])

    def _begin(self, pull: _Pull, address: str) -> None:
        pull.address = address
        host = _HOSTNAME if self.config.object_transfer_same_machine else None
        self.nm.call(address, "transfer_begin", pull.object_id, self.nm.node_id, host,
                     callback=lambda ok, value: self._on_begin(pull, ok, value),
                     timeout=self.config.object_transfer_timeout_s)

    def _on_begin(self, pull: _Pull, ok: bool, size: Any) -> None:
        source_file = None
        if ok and type(size) is tuple:  # same machine: (size, file holding it, offset in that file)
            size, *source_file = size
        if self.pulls.get(pull.object_id) is not pull:
            if ok and size is not None and pull.address:  # failed meanwhile: let the source unpin
                self.nm.notify(pull.address, "transfer_end", pull.object_id, self.nm.node_id)
            return
        if not ok:
            if isinstance(size, TimeoutError):
                self._fail(pull, self._timed_out(pull, f"node {pull.source[:12]} did not answer within "
                                                       f"{self.config.object_transfer_timeout_s:g} s"))
            else:
                self._fail(pull, self._lost(pull.object_id, f"node {pull.source[:12]} failed to send it: {size}"))
            return
        if size is None:
            self._fail(pull, self._lost(pull.object_id, f"it is no longer in the store of node {pull.source[:12]} "
                                                        "(freed by its owner, or lost)"), end=False)
            return
        pull.size = size
        pull.last_progress = time.monotonic()
        try:
            self.store.create(pull.object_id, size, creator=f"pull:{pull.source}", owner=f"pull:{pull.source}",
                              secondary=True)
        except exc.ObjectStoreFullError as e:
            self._fail(pull, e)
            return
        except ValueError:  # an earlier copy is still here, freed but not yet unpinned
            self._fail(pull, self._lost(pull.object_id, "its copy on this node is being freed"))
            return
        pull.created = True
        if size == 0:
            self._complete(pull)
        elif source_file is not None and self._copy_locally(pull, *source_file):
            self.counters["num_same_machine_copies"] += 1
        else:
            self._request_chunks(pull)

    def _copy_locally(self, pull: _Pull, path: str, base: int) -> bool:
        """Copy from the source's file on this machine, a slice per loop turn; False if it can't be mapped."""
        source = self._map_source(pull.source, path)
        if source is None:
            return False
        import numpy as np  # its copy is libc's memcpy, at memory speed (a memoryview copy is ~half)

        def step() -> None:
            if self.pulls.get(pull.object_id) is not pull:
                return
            start = pull.received
            length = min(pull.size - start, _LOCAL_COPY_SLICE)
            data = source[base + start: base + start + length]
            target = self.store.region(pull.object_id, start, length)
            if target is not None and len(data) == length:
                np.copyto(np.frombuffer(target, np.uint8), np.frombuffer(data, np.uint8))
            elif len(data) != length or not self.store.write_chunk(pull.object_id, start, data):
                self._fail(pull, self._lost(pull.object_id, "its copy could not be read from the source's store"))
                return
            pull.received = start + length
            pull.last_progress = time.monotonic()
            if pull.received >= pull.size:
                if path != self._arena_of.get(pull.source):
                    self._unmap(path)  # a spill file: used once
                self._complete(pull)
            else:
                self.loop.call_soon(step)

        step()
        return True

    def _map_source(self, node_id: str, path: str) -> memoryview | None:
        """A read-only mapping of a file of a node on this machine. A node's arena stays mapped
        (its pages stay in our page tables, so later pulls copy at memory speed) until it dies."""
        mapped = self._source_maps.get(path)
        if mapped is not None:
            return mapped[1]
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return None
        try:
            mm = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
        except (OSError, ValueError):
            return None
        finally:
            os.close(fd)
        view = memoryview(mm)
        self._source_maps[path] = (mm, view, node_id)
        if os.path.basename(path) == ARENA_FILE:
            self._arena_of[node_id] = path
        return view

    def _unmap(self, path: str) -> None:
        mapped = self._source_maps.pop(path, None)
        if mapped is not None:
            mapped[1].release()
            mapped[0].close()

    def _request_chunks(self, pull: _Pull) -> None:
        while (pull.in_flight < self.max_in_flight and pull.next_offset < pull.size
               and self.total_in_flight < self.max_total_in_flight):
            length = min(self.chunk_bytes, pull.size - pull.next_offset)
            self.loop.send(pull.address, ("transfer_chunk", pull.pull_id, pull.object_id, pull.next_offset, length,
                                          self.nm.address))
            pull.next_offset += length
            pull.in_flight += 1
            self.total_in_flight += 1

    def _request_more(self) -> None:
        """Chunk slots freed up: let every pull that waits for one ask (oldest first)."""
        for pull in list(self.pulls.values()):
            if self.total_in_flight >= self.max_total_in_flight:
                return
            if pull.created and pull.next_offset < pull.size:
                self._request_chunks(pull)

    def _on_chunk_data(self, pull_id: int, offset: int, ok: bool, frames: list | None = None) -> None:
        pull = self._by_id.get(pull_id)
        if pull is None or self.pulls.get(pull.object_id) is not pull:
            return  # a pull that failed or finished: drop its late chunks
        if not ok or not frames:
            self._fail(pull, self._lost(pull.object_id, f"node {pull.source[:12]} no longer has it"))
            return
        data = frames[0].buffer
        if not self.store.write_chunk(pull.object_id, offset, data):
            self._fail(pull, self._lost(pull.object_id, "its local copy was dropped while it was being written"))
            return
        pull.received += data.nbytes
        pull.in_flight -= 1
        self.total_in_flight -= 1
        pull.last_progress = time.monotonic()
        if pull.received >= pull.size:
            self._complete(pull)
        else:
            self._request_chunks(pull)
        self._request_more()

    def _complete(self, pull: _Pull) -> None:
        self._forget(pull)
        dead = set(self.nm.recently_dead)  # readers that exited meanwhile get no pin (it would never go)
        pull.waiters = [(holder, reply) for holder, reply in pull.waiters if holder not in dead]
        holders = [holder for holder, _ in pull.waiters]
        location = self.store.seal(pull.object_id, pin_for=holders)
        self.nm.notify(pull.address, "transfer_end", pull.object_id, self.nm.node_id)
        if location is None:
            error = self._lost(pull.object_id, "it was freed by its owner while it was being copied")
            for _, reply in pull.waiters:
                reply.fail(error)
            return
        self.counters["num_pulls"] += 1
        self.counters["bytes_pulled"] += pull.size
        self.counters["pull_seconds"] += time.monotonic() - pull.started
        for _, reply in pull.waiters:
            reply.send(location)

    def _fail(self, pull: _Pull, error: BaseException, end: bool = True) -> None:
        self._forget(pull)
        self.counters["num_pulls_failed"] += 1
        if pull.created:
            self.store.abort(pull.object_id)
        if end and pull.address is not None:
            try:
                self.nm.notify(pull.address, "transfer_end", pull.object_id, self.nm.node_id)
            except Exception:  # noqa: BLE001 - the source may be gone
                pass
        logger.info("pull of %s from node %s failed: %s", pull.object_id.hex(), pull.source[:12],
                    getattr(error, "reason", None) or error)
        for _, reply in pull.waiters:
            reply.fail(error)

    def _forget(self, pull: _Pull) -> None:
        if self.pulls.get(pull.object_id) is pull:
            del self.pulls[pull.object_id]
        self._by_id.pop(pull.pull_id, None)
        self.total_in_flight -= pull.in_flight  # late chunks of a failed pull are dropped on arrival
        pull.in_flight = 0
        if self.total_in_flight < self.max_total_in_flight and self.pulls:
            self.loop.call_soon(self._request_more)

    def _lost(self, object_id: bytes, reason: str) -> exc.ObjectLostError:
        return exc.ObjectLostError(object_id.hex(), None, None, reason)

    def _timed_out(self, pull: _Pull, what: str) -> exc.ObjectFetchTimedOutError:
        return exc.ObjectFetchTimedOutError(
            pull.object_id.hex(), None, None,
            f"pulling it from node {pull.source[:12]} timed out: {what} ({pull.received} of "
            f"{pull.size or '?'} bytes copied). Raise object_transfer_timeout_s / object_pull_timeout_s "
            "in _system_config if the network is that slow.")

    # ================================================================== serve side
    def serve_begin(self, reply: Reply, object_id: bytes, puller: str, puller_host: str | None = None) -> Any:
        """rpc transfer_begin: pin the object for ``puller`` until transfer_end; answer its size
        (None if this store does not have it), or for a puller on this machine (size, file, offset)."""
        holder = f"transfer:{puller}"
        same_machine = puller_host == _HOSTNAME

        def pinned(location: tuple | None) -> int | None:
            if location is None:
                return None
            entry = self.serving.setdefault((object_id, puller), [0, time.monotonic()])
            entry[0] += 1
            entry[1] = time.monotonic()
            self.copies.setdefault(object_id, set()).add(puller)
            self.counters["num_served"] += 1
            self.counters["bytes_served"] += location[2]
            if same_machine:
                if location[0] == "arena":
                    return (location[2], self.store.arena_path, location[1])
                return (location[2], location[1], 0)
            return location[2]

        location = self.store.pin(object_id, holder,
                                  on_sealed=lambda: reply.send(pinned(self.store.pin(object_id, holder))))
        if location == ("pending",):
            return DEFER
        return pinned(location)

    def serve_end(self, object_id: bytes, puller: str) -> None:
        """rpc transfer_end: the puller has its copy (or gave up): unpin."""
        entry = self.serving.get((object_id, puller))
        if entry is None:
            return
        entry[0] -= 1
        if entry[0] <= 0:
            del self.serving[(object_id, puller)]
        self.store.unpin(object_id, f"transfer:{puller}")

    def _on_chunk_request(self, pull_id: int, object_id: bytes, offset: int, length: int, reply_to: str) -> None:
        data = self.store.chunk(object_id, offset, length) if length <= self.chunk_bytes * 16 else None
        if data is None:
            self.loop.send(reply_to, ("transfer_data", pull_id, offset, False))
        else:
            # The frame is a view of the pinned object's shared memory: sent without a copy.
            self.loop.send_frames(reply_to, ("transfer_data", pull_id, offset, True), [data])

    # ================================================================== deletes and copies
    def _on_free(self, object_id: bytes) -> None:
        """An object left this store: free the copies other nodes pulled from here."""
        nodes = self.copies.pop(object_id, None)
        if not nodes:
            return
        for node_id in nodes:
            self.forward_delete(node_id, [object_id])

    def forward_delete(self, node_id: str, object_ids: list) -> None:
        """Tell ``node_id``'s node manager to delete ``object_ids`` (the owner freed them)."""
        if node_id == self.nm.node_id:
            for object_id in object_ids:
                self.store.delete(object_id)
            return
        node = self.nm.cluster_view.get(node_id)
        if node is not None:
            self.nm.notify(node["address"], "delete_objects", list(object_ids))
            return

        def fresh(ok: bool, value: Any) -> None:  # a node that joined since our last heartbeat?
            found = value[1].get(node_id) if ok and value and value[1] else None
            if found is not None:  # else it is dead, and its store went with it
                self.nm.notify(found["address"], "delete_objects", list(object_ids))

        self.nm.call(self.nm.gcs_address, "get_cluster_view", callback=fresh, timeout=self.config.rpc_timeout_s)

    # ================================================================== failures
    def on_cluster_view(self, view: dict) -> None:
        """The live nodes changed: fail pulls from nodes that died, unpin for pullers that died."""
        nodes = set(view)
        gone = self._known_nodes - nodes
        self._known_nodes = nodes
        if not gone:
            return
        for path in [p for p, (_, _, node_id) in self._source_maps.items() if node_id in gone]:
            self._unmap(path)  # its arena is unlinked: our mapping must not keep its memory alive
        for node_id in gone:
            self._arena_of.pop(node_id, None)
        for pull in [p for p in self.pulls.values() if p.source in gone]:
            self._fail(pull, self._lost(pull.object_id, f"node {pull.source[:12]}, which holds it, died"), end=False)
        for object_id, puller in [k for k in self.serving if k[1] in gone]:
            pins, _ = self.serving.pop((object_id, puller))
            for _ in range(pins):
                self.store.unpin(object_id, f"transfer:{puller}")
        for object_id, pullers in list(self.copies.items()):
            pullers -= gone
            if not pullers:
                del self.copies[object_id]
        # Copies of a dead node's objects: no delete will ever be forwarded for them, and a rebuilt
        # object (lineage) may be written here under the same id. Freed once no reader holds them.
        creators = {f"pull:{node_id}" for node_id in gone}
        for entry in [e for e in self.store.entries.values() if e.secondary and e.creator in creators]:
            self.store.delete(entry.object_id)

    def _check_timeouts(self) -> None:
        now = time.monotonic()
        idle_limit = self.config.object_transfer_timeout_s
        total_limit = self.config.object_pull_timeout_s
        for pull in list(self.pulls.values()):
            if pull.address is None:
                continue  # still looking the source up (that call has its own timeout)
            if pull.created and pull.in_flight == 0:
                pull.last_progress = now  # waiting for a free chunk slot here, not for the source
            if now - pull.last_progress > idle_limit:
                self._fail(pull, self._timed_out(pull, f"it sent nothing for {idle_limit:g} s"))
            elif now - pull.started > total_limit:
                self._fail(pull, self._timed_out(pull, f"the pull took longer than {total_limit:g} s"))
        # A puller that vanished without transfer_end must not pin our objects forever.
        stale = [k for k, (_, since) in self.serving.items() if now - since > total_limit + idle_limit]
        for object_id, puller in stale:
            pins, _ = self.serving.pop((object_id, puller))
            for _ in range(pins):
                self.store.unpin(object_id, f"transfer:{puller}")
        self.loop.call_later(self._check_interval, self._check_timeouts)

    def stats(self) -> dict:
        return dict(self.counters, pulls_in_flight=len(self.pulls), serving=len(self.serving))
