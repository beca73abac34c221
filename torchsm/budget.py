"""The session budget: at most `max_sessions_per_hour` sessions per Nova in any sliding hour.

Counted from the session ledger's start times, so restarting the supervisor never resets
it. Pure: the caller passes the start times and the time.
"""

from __future__ import annotations

from typing import Iterable

WINDOW_S = 3600.0


def window_frees_at(starts: Iterable[float], now: float, limit: int,
                    window_s: float = WINDOW_S) -> float | None:
    """None when one more session may start at `now`; else the time the budget has room
    again (when the oldest start that fills it leaves the window)."""
    if limit < 1:
        raise ValueError("a session budget must allow at least one session")
    recent = sorted(t for t in starts if now - window_s < t <= now)
    if len(recent) < limit:
        return None
    return recent[len(recent) - limit] + window_s


def sessions_in_window(starts: Iterable[float], end: float,
                       window_s: float = WINDOW_S) -> int:
    """How many sessions started in the window (end - window_s, end]."""
    return sum(1 for t in starts if end - window_s < t <= end)
