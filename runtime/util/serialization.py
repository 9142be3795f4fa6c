"""``juno.util.serialization``: pickle code the way Juno's own task exports do.

For libraries that ship user code inside their own messages (Serve sends a deployment's class to
replicas it starts later): by value for ``__main__`` and notebook cells, with the code's real file
name, lines and source, so a traceback raised in another process points at the user's cell.
"""
from __future__ import annotations

import pickle
from typing import Any

from juno.owner.serialization import dumps_code as _dumps_code


def dumps_code(obj: Any) -> bytes:
    """A function or class (and what it captures) as bytes; the same code always gives the same bytes."""
    return _dumps_code(obj)


def loads_code(data: bytes) -> Any:
    """The function or class ``dumps_code`` wrote, in any Juno process."""
    return pickle.loads(data)


__all__ = ["dumps_code", "loads_code"]
