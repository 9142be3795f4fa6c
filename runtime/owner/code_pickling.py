"""Pickling code objects so that remote tracebacks name the user's file, line and source.

cloudpickle 3.1 and later write ``<dynamic-code>`` as the file name of every code object it
pickles by value (functions of ``__main__``, of notebook cells, of modules registered by
value), so a traceback raised in a worker lost the file, the line and the source text. Juno
pickles code objects itself, with ``marshal`` (a code object's own format, which keeps the
file name, line numbers and column positions), on every cloudpickle release.

A worker reads the source lines of a traceback from the file named in the code object. A
notebook cell has no such file (ipykernel keeps its source in ``linecache`` under a temporary
file name), and a script may not exist on another node; so a function export also carries
the source lines its code spans, and the worker registers them in its own ``linecache``
where it cannot read the file. The code of ``python -c`` ("<string>") has its lines taken from
the command line; code read from stdin has none anywhere, so its frames show file and line only.
"""
from __future__ import annotations

import linecache
import marshal
import os
import sys
import types
from collections import ChainMap

# Version 2 writes no back-references, whose presence depends on reference counts: the same
# code always gives the same bytes, so a function's export id (a content hash) is stable.
_MARSHAL_VERSION = 2


def reduce_code(code: types.CodeType) -> tuple:
    """Pickle a code object with its real file name (for values: no source lines)."""
    return load_code, (marshal.dumps(code, _MARSHAL_VERSION),)


def reduce_code_with_source(code: types.CodeType) -> tuple:
    """Pickle a code object with its real file name and the source lines it spans (exports)."""
    source = source_lines(code)
    if source is None:
        return reduce_code(code)
    return load_code, (marshal.dumps(code, _MARSHAL_VERSION), source)


def load_code(data: bytes, source: tuple[int, list[str]] | None = None) -> types.CodeType:
    """Rebuild a pickled code object; register its source lines where the file can't be read."""
    code = marshal.loads(data)
    if source is not None:
        register_source(code.co_filename, *source)
    return code


def dispatch_table(base, reducer) -> ChainMap:
    """``base`` (cloudpickle's dispatch table) with code objects reduced by ``reducer``.

    The override goes into a copy of the first map, so a lookup that misses (most values)
    walks as many maps as cloudpickle's own table does.
    """
    maps = getattr(base, "maps", None)
    if not maps:
        return ChainMap({types.CodeType: reducer}, base)
    return ChainMap({**maps[0], types.CodeType: reducer}, *maps[1:])


def _line_span(code: types.CodeType) -> tuple[int, int]:
    """First and last source line of ``code`` and of the code nested in it."""
    first = last = code.co_firstlineno
    for _start, _end, line in code.co_lines():
        if line is not None and line > last:
            last = line
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            last = max(last, _line_span(const)[1])
    return first, last


def source_lines(code: types.CodeType) -> tuple[int, list[str]] | None:
    """(first line number, lines) of ``code``'s source as this process sees it, if it can."""
    lines = linecache.getlines(code.co_filename)
    first, last = _line_span(code)
    if not lines and code.co_filename == "<string>":
        lines = _command_source()
        # exec()'d strings are "<string>" too: only code that starts where the command defines it
        if not (0 < first <= len(lines) and _defines(lines[first - 1], code)):
            return None
    if not lines or first < 1 or first > len(lines):
        return None
    return first, lines[first - 1:last]


def _command_source() -> list[str]:
    """The lines of ``python -c``'s command, which linecache does not know."""
    argv = getattr(sys, "orig_argv", None) or []
    if sys.argv[:1] != ["-c"] or "-c" not in argv[:-1]:
        return []
    return argv[argv.index("-c") + 1].splitlines(True)


def _defines(line: str, code: types.CodeType) -> bool:
    """Whether ``line`` can be the first line of ``code``: a decorator, or its def/class/lambda."""
    return line.lstrip().startswith("@") or code.co_name.strip("<>") in line


def register_source(filename: str, first: int, lines: list[str]) -> None:
    """Put ``lines`` (from line ``first`` on) into this process's ``linecache`` for ``filename``.

    A file this process can read is left to ``linecache``; lines already registered for the
    same file (another function of the same cell or script) are kept.
    """
    if not filename or os.path.isfile(filename):
        return
    entry = linecache.cache.get(filename)
    known = list(entry[2]) if entry is not None and len(entry) == 4 else []
    end = first - 1 + len(lines)
    if len(known) < end:
        known.extend(["\n"] * (end - len(known)))
    known[first - 1:end] = lines
    # mtime None: linecache.checkcache leaves the entry alone (it has no file to compare with).
    linecache.cache[filename] = (sum(map(len, known)), None, known, filename)
