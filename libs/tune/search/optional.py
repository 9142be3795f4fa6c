"""Importing the optional libraries the searcher adapters drive, with an error that says how to get them."""
from __future__ import annotations

import importlib


def import_optional(module: str, extra: str):
    """``module``, or ImportError naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"this searcher needs the {module} package: pip install \"juno[{extra}]\"") from exc
