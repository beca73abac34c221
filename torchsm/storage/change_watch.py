"""Noticing, for next to nothing, that another process changed the database.

A waiting supervisor must notice a critical wake within a second or two, and must cost
nothing while it waits. `PRAGMA data_version` on one long-lived connection changes
exactly when another connection has committed: a poll costs microseconds, and the real
queries run only after a change, on the same connection (opening a store costs more).
"""

from __future__ import annotations

import sqlite3
from typing import Callable, TypeVar

from torchsm.config import Home
from torchsm.storage import store

T = TypeVar("T")


class ChangeWatch:
    def __init__(self, home: Home):
        self.conn = store.connect(home.db_path, timeout=0, isolation_level=None,
                                  check_same_thread=False)
        self._version = self._data_version()

    def _data_version(self) -> int:
        try:
            return self.conn.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.OperationalError:
            return -1  # busy for a moment: report a change, the caller looks properly

    def changed(self) -> bool:
        """Whether anything was committed since the last call."""
        version = self._data_version()
        if version == self._version and version != -1:
            return False
        self._version = version
        return True

    def read(self, work: Callable[[sqlite3.Connection], T]) -> T | None:
        """Run a read on the watching connection (one snapshot); None when the database
        cannot be read at this instant (callers look again at the next poll)."""
        try:
            self.conn.execute("BEGIN")
            try:
                return work(self.conn)
            finally:
                self.conn.execute("COMMIT")
        except sqlite3.OperationalError:
            return None

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "ChangeWatch":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
