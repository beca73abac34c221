"""Usage pacing: whether an account's next request may go now, later, or not before a reset.

One verdict from the account's windows (torchsm.usage.accounts), the requests in flight on it and
its [usage] settings:
- `stop`: a window is rejected or at `stop_utilization`: every Nova on the account holds
  until that window's reset plus `reset_margin_s` (a reset that has just passed still
  holds for its margin);
- `pace` (not before `until`): from `slow_utilization` on, what is left of the window below
  `stop_utilization`, counted in requests of the estimated size, is spread evenly over
  the time to the reset, so the window ends near `stop_utilization` instead of hitting it
  early and idling (or idling half unused); and while the answers to other Novas' requests
  in flight could already reach `stop_utilization`, the Nova waits for them rather than
  racing them into a refused request;
- `ok`.
Pure: the windows, the count in flight and the time are passed in.
"""

from __future__ import annotations

import math

from torchsm.clock import format_time
from torchsm.records import record

UNKNOWN_RESET_HOLD_S = 300.0  # a rejected window whose reset nobody announced
IN_FLIGHT_POLL_S = 0.5  # how soon to look again while others' answers are awaited


@record
class Verdict:
    kind: str  # ok | pace | stop
    until: float | None  # stop: the reset plus the margin; pace: not before this
    why: str
    pressure: float = 0.0  # 0 at slow_utilization, 1 at stop_utilization


OK = Verdict("ok", None, "")


def verdict(windows: list, cfg, now: float, in_flight: int = 0) -> Verdict:
    """What the account's windows allow at `now` (cfg: a UsageConfig)."""
    stopping = [w for w in windows if _stops(w, cfg) and _hold_end(w, cfg) > now]
    if stopping:
        w = max(stopping, key=lambda w: _hold_end(w, cfg))
        return Verdict("stop", _hold_end(w, cfg), _stop_why(w), 1.0)
    live = [w for w in windows if _reset_of(w) > now]
    paced = [v for v in (_pace(w, cfg, now, in_flight) for w in live) if v is not None]
    return max(paced, key=lambda v: v.until) if paced else OK


def _hold_end(window, cfg) -> float:
    """Until when a stopping window holds: its reset plus the margin. A reset that has
    just passed (or is "now", as a message naming the current minute says) still holds
    for the margin: the provider's clock may lag ours, and a request sent at the reset
    itself goes straight into the refusing window. A backoff announced no reset: no
    margin on top of it."""
    margin = 0.0 if window.source == "backoff" else cfg.reset_margin_s
    return _reset_of(window) + margin


def _reset_of(window) -> float:
    if window.resets_at is not None:
        return window.resets_at
    return window.updated_at + UNKNOWN_RESET_HOLD_S


def _stops(window, cfg) -> bool:
    return window.status == "rejected" or (window.utilization or 0) >= cfg.stop_utilization


def _pace(window, cfg, now: float, in_flight: int) -> Verdict | None:
    used, cost = window.utilization or 0.0, window.per_request
    pressure = _pressure(used, cfg)
    if in_flight and ((cost and used + in_flight * cost >= cfg.stop_utilization)
                      or (not cost and used >= cfg.slow_utilization)):
        return Verdict("pace", now + IN_FLIGHT_POLL_S,
                       f"usage {window.window} at {_pct(used)}: waiting for the answers to "
                       f"{in_flight} request(s) of other Novas in flight", pressure)
    if used < cfg.slow_utilization or window.resets_at is None:
        return None
    left = requests_left(used + in_flight * (cost or 0.0), cost, cfg.stop_utilization)
    last = window.updated_at
    not_before = last + (window.resets_at - last) / (left + 1)
    if not_before <= now:
        return None
    return Verdict("pace", not_before,
                   f"usage {window.window} at {_pct(used)}: about {left} request(s) left "
                   f"before {_pct(cfg.stop_utilization)}, spread until the reset at "
                   f"{format_time(window.resets_at)}", pressure)


def requests_left(used: float, cost: float | None, stop_utilization: float) -> int:
    """How many more requests fit below `stop_utilization` (at least one: the check comes
    after each answer). Unknown cost: one at a time."""
    if not cost:
        return 1
    return max(1, math.ceil((stop_utilization - used) / cost - 1e-9))


def _pressure(used: float, cfg) -> float:
    span = max(cfg.stop_utilization - cfg.slow_utilization, 1e-9)
    return min(1.0, max(0.0, (used - cfg.slow_utilization) / span))


def _stop_why(window) -> str:
    said = [] if window.utilization is None else [_pct(window.utilization)]
    said += ["rejected"] if window.status == "rejected" else []
    resets = format_time(window.resets_at) if window.resets_at else "at an unknown time"
    return f"usage limit: {' '.join([window.window, *said])}, resets {resets}"


def _pct(value: float | None) -> str:
    return "?" if value is None else f"{value * 100:.0f}%"
