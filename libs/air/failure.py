"""A worker's failure as a short text: what was raised, where in the user's code, on which worker.

``juno.get`` of a failed worker call raises a RayTaskError carrying the remote traceback (with
every frame of the train loop's plumbing under it), or an ActorDiedError when the process or
its node died. The user wants the exception first, then their own frames, then which worker:

    ZeroDivisionError: division by zero
      File "/home/me/train.py", line 12, in train_loop
        loss = 1 / 0
    (rank 1, pid 4242, node 10.0.0.5)

Pure functions over exceptions; Train's TrainingFailedError and Tune's trial errors use them.
"""
from __future__ import annotations

import importlib.util
import os
import traceback
from dataclasses import dataclass, field
from typing import Sequence

from juno.exceptions import RayActorError, RayTaskError

__all__ = ["describe_failure", "first_failure", "peer_went_away", "raised_by_user_code"]

_CHAIN_LINKS = {
    "The above exception was the direct cause of the following exception:": "Caused by",
    "During handling of the above exception, another exception occurred:": "While handling",
}
_TRACEBACK_HEADER = "Traceback (most recent call last):"


def describe_failure(exc: BaseException, *, rank: int | None = None, pid: int | None = None,
                     node: str | None = None) -> str:
    """The readable text of ``exc``, the error ``juno.get`` raised for a worker's call.

    ``pid`` and ``node`` default to what the error carries (a task error knows its pid and ip).
    """
    if isinstance(exc, RayTaskError):
        pid = exc.pid if pid is None else pid
        node = exc.ip if node is None else node
        text = _describe_task_error(exc)
    elif isinstance(exc, RayActorError) and isinstance(getattr(exc, "cause", None), RayTaskError):
        text = (f"{_type_name(exc)}: the worker failed while starting (its constructor raised)\n"
                + _describe_task_error(exc.cause))
    else:
        text = _describe_local(exc)
    where = [f"rank {rank}"] if rank is not None else []
    if pid is not None:
        where.append(f"pid {pid}")
    if node:
        where.append(f"node {node}")
    return f"{text}\n({', '.join(where)})" if where else text


def raised_by_user_code(exc: BaseException) -> bool:
    """True when the worker's code raised (the loop's own error), False when the worker died."""
    return isinstance(exc, RayTaskError)


def first_failure(failures: Sequence[tuple[int, BaseException]]) -> tuple[int, BaseException]:
    """The failure to report among ``(rank, error)`` pairs, in the order they were seen.

    When one worker raises, the others die in the teardown that follows (or hang in a collective
    until then): the first error raised by user code is the cause, else the first death.
    """
    if not failures:
        raise ValueError("first_failure() needs at least one (rank, error) pair.")
    own = [f for f in failures if raised_by_user_code(f[1]) and not peer_went_away(f[1])]
    deaths = [f for f in failures if not raised_by_user_code(f[1])]
    return (own or deaths or list(failures))[0]


# What a collective (gloo, NCCL) raises on the surviving ranks when a peer dies: fallout, not a cause.
_PEER_GONE = ("Connection closed by peer", "Connection reset by peer", "DistBackendError", "NCCL communicator was aborted",
              "Broken pipe", "Socket Timeout")


def peer_went_away(exc: BaseException) -> bool:
    """True when ``exc`` is a collective's error because another rank went away."""
    text = f"{type(getattr(exc, 'cause', None) or exc).__name__}: {exc}"
    return any(marker in text for marker in _PEER_GONE)


# ----------------------------------------------------------------------------- formatting
def _describe_task_error(err: RayTaskError) -> str:
    cause = err.cause
    while isinstance(cause, RayTaskError) and cause.cause is not None:
        cause = cause.cause  # a task the loop called failed: report the innermost error
    links = _parse(err.traceback_str)
    if cause is not None and not isinstance(cause, RayTaskError):
        head = _exception_line(cause)
    else:
        head = links[-1].exception[-1] if links and links[-1].exception else f"{_type_name(err)}: {err}"
    return _render(head, links)


def _describe_local(exc: BaseException) -> str:
    """An error raised in this process (a death notice, a timeout): its own frames, if any. A death
    notice's frames are only where the driver learnt of it: the message says it all."""
    show = exc.__traceback__ is not None and not isinstance(exc, RayActorError)
    text = "".join(traceback.format_exception(exc)) if show else ""
    return _render(_exception_line(exc), _parse(text))


@dataclass
class _Link:
    """One exception of a chain: its frames (lines of each), its text, how it joins the next."""

    frames: list[list[str]] = field(default_factory=list)
    exception: list[str] = field(default_factory=list)
    joined_by: str = ""


def _parse(text: str) -> list[_Link]:
    """Split a formatted traceback into the links of its exception chain. A remote error's text
    inside an exception message (a task the loop called failed) adds its frames to the link's."""
    links = [_Link()]
    in_frame = False  # the last line kept was a frame's: indented lines below it are its source
    for line in text.splitlines():
        stripped = line.strip()
        if stripped in _CHAIN_LINKS:
            links.append(_Link(joined_by=_CHAIN_LINKS[stripped]))
            in_frame = False
        elif stripped == _TRACEBACK_HEADER or not stripped:
            continue
        elif line.startswith('  File "'):
            links[-1].frames.append([line])
            in_frame = True
        elif in_frame and (line.startswith("    ") or line.startswith("  [Previous line repeated")):
            links[-1].frames[-1].append(line)
        else:
            links[-1].exception.append(line)
            in_frame = False
    return [link for link in links if link.frames or link.exception]


def _render(head: str, links: list[_Link]) -> str:
    out = [head]
    if links:
        out += _user_frames(links[-1].frames)
        for link, after in zip(reversed(links[:-1]), reversed(links[1:])):
            out.append(f"{after.joined_by}: {link.exception[-1].strip() if link.exception else '?'}")
            out += _user_frames(link.frames)
    return "\n".join(out)


def _user_frames(frames: list[list[str]]) -> list[str]:
    """The lines of the frames outside Juno's own files (all of them if every frame is Juno's:
    then the error is Juno's, and its frames are what a bug report needs)."""
    kept = [f for f in frames if not _is_juno_frame(f[0])]
    return [line for frame in (kept or frames) for line in frame]


def _is_juno_frame(line: str) -> bool:
    start = line.find('"') + 1
    end = line.find('"', start)
    name = line[start:end] if 0 < start <= end else ""
    if not name or name.startswith("<"):  # <string>, <stdin>: never one of Juno's files
        return False
    path = os.path.abspath(name)
    return any(path.startswith(root) for root in _juno_roots())


_roots: tuple[str, ...] | None = None


def _juno_roots() -> tuple[str, ...]:
    """Folders of Juno's own code: the runtime, the libraries (libs/), the kernel extension, widgets."""
    global _roots
    if _roots is None:
        folders = set()
        for name, up in (("juno", 0), ("juno.air", 1), ("juno.kernel_ext", 0), ("juno.widgets", 0)):
            spec = importlib.util.find_spec(name)
            for folder in (spec.submodule_search_locations or []) if spec else []:
                for _ in range(up):
                    folder = os.path.dirname(folder)
                for path in {os.path.abspath(folder), os.path.realpath(folder)}:
                    folders.add(path.rstrip(os.sep) + os.sep)
        _roots = tuple(sorted(folders))
    return _roots


def _exception_line(exc: BaseException) -> str:
    message = str(exc)
    return f"{_type_name(exc)}: {message}" if message else _type_name(exc)


def _type_name(exc: BaseException) -> str:
    """As Python's tracebacks name it, and Juno's own errors by their plain (Ray's) name."""
    cls = type(exc)
    module = cls.__module__
    if module in ("builtins", "__main__") or module == "juno" or module.startswith("juno."):
        return cls.__qualname__
    return f"{module}.{cls.__qualname__}"
