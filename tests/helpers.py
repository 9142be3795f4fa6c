"""Small helpers shared by the tests (importable as ``from helpers import ...``:
``pythonpath = ["tests"]`` in pyproject.toml puts this folder on sys.path).

Nothing here imports juno, so unit tests can use it without a cluster.
"""

from __future__ import annotations

import time
import traceback
from typing import Any, Callable


def wait_for_condition(
    predicate: Callable[..., Any],
    timeout: float = 10,
    retry_interval_ms: float = 20,
    **kwargs: Any,
) -> Any:
    """Call ``predicate(**kwargs)`` until it returns something truthy; return that.

    An exception raised by the predicate counts as "not yet" and is retried (the
    last one is shown if time runs out). Raises ``RuntimeError`` when ``timeout``
    seconds pass without the condition being met; the predicate is always tried
    at least once, and once more at the deadline.
    """
    deadline = time.monotonic() + timeout
    interval = max(retry_interval_ms, 0) / 1000.0
    name = getattr(predicate, "__qualname__", None) or repr(predicate)
    last_exc: BaseException | None = None
    attempts = 0
    while True:
        attempts += 1
        try:
            result = predicate(**kwargs)
            if result:
                return result
            last_exc = None
        except Exception as exc:  # noqa: BLE001 - retried, reported on timeout
            last_exc = exc
        now = time.monotonic()
        if now >= deadline:
            break
        time.sleep(min(interval, deadline - now))

    message = (
        f"wait_for_condition: {name} was not met within {timeout}s "
        f"({attempts} attempts)"
    )
    if last_exc is not None:
        detail = "".join(
            traceback.format_exception(type(last_exc), last_exc, last_exc.__traceback__)
        )
        message += f"; its last attempt raised:\n{detail}"
    raise RuntimeError(message)


def wait_for_file(path: str, timeout: float = 60.0) -> None:
    """Runs inside tasks: block until the test creates ``path`` (the test's signal).

    Tasks can't share a threading.Event with the test process, so a file is the
    gate; the poll is short because it only ever waits for the test itself.
    """
    import os

    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.005)
