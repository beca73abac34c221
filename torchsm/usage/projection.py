"""When an account runs out at its current pace: each usage window at 100 %, and the daily
cost budget.

A window's rate is the rise of its current period: its utilization at the last reading
over the time since the period began (its reset less the window's span; a five-hour
window begins with its first request). It is spent when that rate reaches 100 % before the
reset; else the reset comes first. The daily budget's rate is the cost of the last 24
hours over the time since the first of those costs (an hour at least: one session is no
pace); it is spent when, by budget.py's sliding day, the costs still in the window plus
that rate reach the limit (costs leaving the window meanwhile count no more). Looked for
over the next 24 hours. Pure: windows, costs, limit and time are passed in.
"""

from __future__ import annotations

from typing import Iterable

from torchsm.clock import format_time
from torchsm.records import record
from torchsm.usage import budget
from torchsm.usage.resets import WINDOW_SPANS_S

HOUR_S = 3600.0
MIN_RATE_SPAN_S = HOUR_S
HORIZON_S = budget.COST_WINDOW_S


@record
class WindowProjection:
    window: str
    full_at: float | None  # when it reaches 100 % at this rate, before its reset
    resets_at: float | None
    rate_per_hour: float | None  # utilization (0..1) an hour
    says: str


@record
class BudgetProjection:
    spent_at: float | None  # when the limit is reached (now: spent already)
    frees_at: float | None  # spent already: when it frees (budget.py)
    rate_usd_per_hour: float
    says: str


def window_projection(window, now: float) -> WindowProjection:
    """When `window` (an accounts.WindowRow) reaches 100 % at its period's rate."""
    resets = window.resets_at
    if resets is None:
        return WindowProjection(window.window, None, None, None, "no reset known")
    if resets <= now:
        return _window(window, None, None, f"reset at {format_time(resets)}; nothing "
                                           "reported since")
    if window.status == "rejected" or (window.utilization or 0.0) >= 1.0:
        return _window(window, window.updated_at, None, f"spent; resets at {format_time(resets)}")
    if not window.utilization:
        return _window(window, None, None, f"no rise seen yet; resets at {format_time(resets)}")
    rate = _window_rate(window)
    if rate is None:
        return _window(window, None, None, f"no rate known; resets at {format_time(resets)}")
    full_at = window.updated_at + (1.0 - window.utilization) / rate * HOUR_S
    if full_at >= resets:
        return _window(window, None, rate, f"resets first, at {format_time(resets)}")
    return _window(window, full_at, rate,
                   f"spent at {format_time(full_at)} (at {_percent(rate)} %/h)")


def _window(window, full_at: float | None, rate: float | None, says: str) -> WindowProjection:
    return WindowProjection(window.window, full_at, window.resets_at, rate, says)


def _window_rate(window) -> float | None:
    """Utilization an hour over the current period so far (None: its span is unknown, or
    it was read as the period began)."""
    span = WINDOW_SPANS_S.get(window.window)
    if span is None:
        return None
    elapsed = window.updated_at - (window.resets_at - span)
    return window.utilization / elapsed * HOUR_S if elapsed > 0 else None


def budget_projection(costs: Iterable[tuple[float, float]], limit_usd: float,
                      now: float) -> BudgetProjection | None:
    """When the daily cost budget is spent at the last 24 hours' rate (None: no budget).
    `costs` are the account's (ended at, usd) pairs, as budget.py takes them."""
    if limit_usd <= 0:
        return None
    costs = list(costs)
    frees = budget.cost_frees_at(costs, now, limit_usd)
    if frees is not None:
        return BudgetProjection(now, frees, 0.0, f"spent; frees at {format_time(frees)}")
    rate = cost_rate(costs, now)
    if rate == 0:
        return BudgetProjection(None, None, 0.0, "no cost in the last 24 h")
    spent_at = _reached(costs, limit_usd, rate, now)
    if spent_at is None:
        return BudgetProjection(None, None, rate * HOUR_S,
                                f"not within 24 h at ${rate * HOUR_S:.2f}/h")
    return BudgetProjection(spent_at, None, rate * HOUR_S,
                            f"spent at {format_time(spent_at)} (at ${rate * HOUR_S:.2f}/h)")


def cost_rate(costs: list[tuple[float, float]], now: float) -> float:
    """USD a second: the cost in the budget's window over the time since its first cost
    (MIN_RATE_SPAN_S at least)."""
    recent = [t for t, _ in costs if now - budget.COST_WINDOW_S < t <= now]
    if not recent:
        return 0.0
    span = max(now - min(recent), MIN_RATE_SPAN_S)
    return budget.cost_in_window(costs, now) / span


def _reached(costs: list[tuple[float, float]], limit_usd: float, rate: float,
             now: float) -> float | None:
    """The first time within the horizon when the costs still in the sliding day plus
    `rate` since `now` reach the limit. Between two costs leaving the window, what stays
    of the past is constant and the projected part grows: one linear step each."""
    leaving = sorted(t + budget.COST_WINDOW_S for t, _ in costs
                     if now < t + budget.COST_WINDOW_S < now + HORIZON_S)
    starts, ends = [now, *leaving], [*leaving, now + HORIZON_S]
    for start, end in zip(starts, ends):
        at = now + (limit_usd - budget.cost_in_window(costs, start)) / rate
        if start <= at < end:
            return at
    return None


def _percent(rate: float) -> str:
    value = rate * 100
    return f"{value:.1f}" if value < 10 else f"{value:.0f}"
