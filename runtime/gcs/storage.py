"""Where the GCS keeps its tables so that a restarted GCS finds the cluster again.

An embedded sqlite database in the session folder (``gcs.db``): one row per
record, ``(table, key) -> pickled value``, written through on every change. The
tables are small and change at control-plane rates (a node joins, an actor
restarts), so a write per change costs nothing next to the work it describes.
WAL mode keeps a write to one fsync-free append; a GCS killed mid-write loses at
most that change, never the database. ``MemoryStorage`` is the same interface
for a GCS that was asked not to persist (``gcs_storage="memory"``).
"""
from __future__ import annotations

import os
import pickle
import sqlite3
from typing import Any


class MemoryStorage:
    """The storage interface, kept in this process only."""

    persistent = False

    def __init__(self) -> None:
        self._tables: dict[str, dict[Any, Any]] = {}

    def put(self, table: str, key: Any, value: Any) -> None:
        self._tables.setdefault(table, {})[key] = value

    def delete(self, table: str, key: Any) -> None:
        self._tables.get(table, {}).pop(key, None)

    def load(self, table: str) -> dict[Any, Any]:
        return dict(self._tables.get(table, {}))

    def close(self) -> None:
        pass


class SqliteStorage(MemoryStorage):
    """Tables in an sqlite file; ``load`` reads what a previous GCS of this session wrote."""

    persistent = True

    def __init__(self, path: str):
        super().__init__()
        self.path = path
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        # One process owns the file: holding the lock (released when the process dies, even by
        # SIGKILL) halves the cost of a write, and a second GCS on the same session fails fast.
        self._db.execute("PRAGMA locking_mode=EXCLUSIVE")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS records (tbl TEXT NOT NULL, key BLOB NOT NULL, "
                         "value BLOB NOT NULL, PRIMARY KEY (tbl, key))")

    def put(self, table: str, key: Any, value: Any) -> None:
        self._db.execute("INSERT OR REPLACE INTO records VALUES (?, ?, ?)",
                         (table, pickle.dumps(key, 5), pickle.dumps(value, 5)))

    def delete(self, table: str, key: Any) -> None:
        self._db.execute("DELETE FROM records WHERE tbl = ? AND key = ?", (table, pickle.dumps(key, 5)))

    def load(self, table: str) -> dict[Any, Any]:
        rows = self._db.execute("SELECT key, value FROM records WHERE tbl = ?", (table,)).fetchall()
        return {pickle.loads(k): pickle.loads(v) for k, v in rows}

    def close(self) -> None:
        self._db.close()


def open_storage(kind: str, session_dir: str) -> MemoryStorage:
    """``"sqlite"`` (the default: ``<session_dir>/gcs.db``) or ``"memory"``."""
    if kind == "memory":
        return MemoryStorage()
    if kind == "sqlite":
        return SqliteStorage(os.path.join(session_dir, "gcs.db"))
    raise ValueError(f"gcs_storage must be 'sqlite' or 'memory', not {kind!r}")
