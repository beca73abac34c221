"""Reading a running session: the agent's log (torchsm.agent.log), and the provider's usage signals stored the
moment they are read.

Claude Code prints a `rate_limit_event` after every API response, before that turn's Stop
hook runs. Stored at once for the Nova's account (not when the session ends), it is what
every hook later in the same session, and every other Nova on the account, decides on:
no continuation at `stop_utilization`, the StopFailure reset from the structured time. A
`system/api_retry` after a 429 means a request was refused: the window is stored as
rejected. Signals that could not be stored (a database locked past the timeout) are kept
for the settling of the session.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from torchsm.agent.log import AgentLog
from torchsm.config import Config, Home
from torchsm.errors import TorchsmError
from torchsm.storage import store
from torchsm.usage import accounts, limits

Emit = Callable[..., None]  # emit(event, message, **data)


class SessionReader:
    """What the supervisor does with one session's output while it runs."""

    def __init__(self, home: Home, config: Config, nova: store.NovaRow, session_id: int,
                 heading: str, emit: Emit, clock: Callable[[], float] = time.time):
        self.home, self.config, self.nova, self.emit, self.clock = home, config, nova, emit, clock
        self.log = AgentLog(home, nova.name, config.logs)
        self.log.header(session_id, heading)  # first: a follower sees the session begin
        self.unstored: list[dict[str, Any]] = []  # rate_limit_event infos left for the settling
        self._db: store.Store | None = None

    def text(self, block: str) -> None:
        """Complete lines of the agent's stdout or stderr, logged as they are read."""
        self.log.write(block)

    def signal(self, kind: str, obj: dict[str, Any]) -> None:
        """Called on the reader thread for each rate_limit_event info and api_retry."""
        now = self.clock()
        try:
            if kind == "rate_limit_event":
                limits.learn(self._store(), self.home, self.config, self.nova.account,
                             self._rows(obj, now), now, answered_by=self.nova.id)
            elif kind == "api_retry" and obj.get("error_status") == 429:
                limits.refused(self._store(), self.home, self.config, self.nova,
                               str(obj.get("error") or ""), now, source="retry")
        except TorchsmError as exc:
            if kind == "rate_limit_event":
                self.unstored.append(obj)
            self.emit("warning", f"{kind} not stored yet ({exc.message}); kept for the end "
                                 "of the session")
        except Exception as exc:  # the reader thread must go on reading whatever happens
            self.emit("warning", f"{kind} not stored: {type(exc).__name__}: {exc}")

    def _rows(self, obj: dict[str, Any], now: float) -> list[accounts.WindowRow]:
        rows, warnings = accounts.windows_from_event(obj, now, self.nova.name)
        for warning in warnings:
            self.emit("warning", f"rate_limit_event: {warning}")
        return rows

    def _store(self) -> store.Store:
        if self._db is None:
            self._db = store.open_store(self.home, self.config.db.lock_timeout_s)
        return self._db

    def close(self) -> None:
        self.log.close()
        if self._db is not None:
            self._db.close()

    def __enter__(self) -> "SessionReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
