"""The budgets: at most `max_sessions_per_hour` sessions per Nova in any sliding hour, and
at most `max_cost_usd_per_day` of reported cost in any sliding 24 hours.

Counted from the session ledger, so restarting the supervisor never resets them. Pure:
the caller passes the start times (or costs) and the time.
"""

from __future__ import annotations

from typing import Iterable

WINDOW_S = 3600.0
COST_WINDOW_S = 24 * 3600.0


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


def cost_frees_at(costs: Iterable[tuple[float, float]], now: float, limit_usd: float,
                  window_s: float = COST_WINDOW_S) -> float | None:
    """None when the cost in the window (now - window_s, now] is below `limit_usd` (or
    the limit is 0: off); else when enough of it leaves the window to be below again.
    `costs` are (when, usd) pairs."""
    if limit_usd <= 0:
        return None
    recent = sorted((t, usd) for t, usd in costs if now - window_s < t <= now)
    spent = sum(usd for _, usd in recent)
    if spent < limit_usd:
        return None
    for t, usd in recent:
        spent -= usd
        if spent < limit_usd:
            return t + window_s
    raise AssertionError("unreachable: the window empties below any positive limit")


def cost_in_window(costs: Iterable[tuple[float, float]], now: float,
                   window_s: float = COST_WINDOW_S) -> float:
    """The cost reported in the window (now - window_s, now]."""
    return sum(usd for t, usd in costs if now - window_s < t <= now)
