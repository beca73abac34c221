"""Usage limits: when the provider says a window resets.

Structured signals come first (a rate_limit_event's `resetsAt`); the message text of a
usage-limit error is only a fallback, and its wording has changed often. Every wording seen
is parsed here; anything else returns None, which callers treat as "back off", never as
"retry now".
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, NamedTuple

_MONTHS = {m: i for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1)}

EPOCH_FORM = re.compile(r"limit reached\|(\d{9,12})")
DATE_FORM = re.compile(
    r"(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*,?\s+([a-z]{3})[a-z]*\s+(\d{1,2}),?\s+(\d{4}),?\s+"
    r"(\d{1,2}):(\d{2})(?::(\d{2}))?\s*([ap]\.?m\.?)?\s*"
    r"(?:(?:gmt|utc)\s*([+-]\d{1,2})(?::?(\d{2}))?|(?:gmt|utc)\b)?", re.I)
CLOCK_FORM = re.compile(
    r"reset(?:s|ting)?(?:\s+at)?\s+(\d{1,2})(?::(\d{2}))?\s*([ap]\.?m\.?)?"
    r"(?:\s*\(([^)]+)\))?", re.I)


def parse_reset_time(text: str, now: float, local_tz: dt.tzinfo | None = None) -> float | None:
    """The epoch time a usage-limit message says the limit resets, or None.

    A clock time without a date is the next such time after `now` ("resets 5am (UTC)" at
    23:00 UTC means tomorrow); without a zone it is in `local_tz` (default: this host's).
    """
    if not text:
        return None
    if match := EPOCH_FORM.search(text):
        return float(match.group(1))
    if match := DATE_FORM.search(text):
        return _absolute(match)
    if match := CLOCK_FORM.search(text):
        return _next_clock_time(match, now, local_tz)
    return None


def _hour24(hour: int, meridiem: str | None) -> int | None:
    if meridiem:
        if not 1 <= hour <= 12:
            return None
        return hour % 12 + (12 if meridiem.lower().startswith("p") else 0)
    return hour if 0 <= hour <= 23 else None


def _absolute(match: re.Match) -> float | None:
    month = _MONTHS.get(match.group(1).lower())
    hour = _hour24(int(match.group(4)), match.group(7))
    if month is None or hour is None:
        return None
    offset_hours = int(match.group(8) or 0)
    offset_minutes = int(match.group(9) or 0) * (-1 if offset_hours < 0 else 1)
    zone = dt.timezone(dt.timedelta(hours=offset_hours, minutes=offset_minutes))
    try:
        moment = dt.datetime(int(match.group(3)), month, int(match.group(2)), hour,
                             int(match.group(5)), int(match.group(6) or 0), tzinfo=zone)
    except ValueError:
        return None
    return moment.timestamp()


def _next_clock_time(match: re.Match, now: float, local_tz: dt.tzinfo | None) -> float | None:
    hour = _hour24(int(match.group(1)), match.group(3))
    minute = int(match.group(2) or 0)
    if hour is None or minute > 59 or (match.group(2) is None and match.group(3) is None):
        return None  # a bare number ("resets 5") is not a time
    zone = _zone(match.group(4), local_tz)
    if zone is None:
        return None
    today = dt.datetime.fromtimestamp(now, zone)
    candidate = today.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if candidate.timestamp() <= now:
        candidate = (today + dt.timedelta(days=1)).replace(hour=hour, minute=minute,
                                                           second=0, microsecond=0)
    return candidate.timestamp()


def _zone(name: str | None, local_tz: dt.tzinfo | None) -> dt.tzinfo | None:
    if not name:
        return local_tz or dt.datetime.now().astimezone().tzinfo
    name = name.strip()
    if name.upper() in ("UTC", "GMT", "Z"):
        return dt.timezone.utc
    if offset := re.fullmatch(r"(?:UTC|GMT)?\s*([+-])(\d{1,2})(?::?(\d{2}))?", name, re.I):
        sign = -1 if offset.group(1) == "-" else 1
        return dt.timezone(sign * dt.timedelta(hours=int(offset.group(2)),
                                               minutes=int(offset.group(3) or 0)))
    try:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def latest_reset(rate_limit_events: list[dict[str, Any]]) -> float | None:
    """The reset time announced by the most recent rate_limit_event, if any."""
    for info in reversed(rate_limit_events):
        resets = info.get("resetsAt")
        if isinstance(resets, (int, float)) and resets > 0:
            return float(resets)
    return None


# --- usage windows: what the provider last said, and what it means for starting work ---

def windows_from_event(info: dict[str, Any], now: float) -> list:
    """The windows a `rate_limit_event`'s `rate_limit_info` describes, as store rows."""
    from torchsm.store import WindowRow

    windows = info.get("unifiedWindows")
    if isinstance(windows, dict) and windows:
        return [WindowRow(str(name), _text(w.get("status")), _number(w.get("utilization")),
                          _number(w.get("resetsAt")), now)
                for name, w in windows.items() if isinstance(w, dict)]
    name = info.get("rateLimitType") or "unified"
    return [WindowRow(str(name), _text(info.get("status")), _number(info.get("utilization")),
                      _number(info.get("resetsAt")), now)]


def record_rate_limit_event(conn, nova_id: int, info: dict[str, Any], now: float) -> None:
    from torchsm import store

    for row in windows_from_event(info, now):
        store.upsert_usage_window(conn, nova_id, row)


class Verdict(NamedTuple):
    kind: str  # ok | slow | stop
    until: float | None  # stop: when to try again (the reset plus the margin)
    why: str
    pressure: float  # slow: 0..1, how far from slow_utilization toward stop_utilization


def limit_verdict(windows: list, cfg, now: float) -> Verdict:
    """What the latest windows mean: `stop` at `stop_utilization` or a rejected status
    (until the reset + margin), `slow` from `slow_utilization`, else `ok`.
    Windows whose reset has passed say nothing any more."""
    live = [w for w in windows if w.resets_at is None or w.resets_at > now]
    stopping = [w for w in live if w.status == "rejected"
                or (w.utilization or 0) >= cfg.stop_utilization]
    if stopping:
        w = max(stopping, key=lambda w: w.resets_at or 0)
        until = (w.resets_at or now) + cfg.reset_margin_s
        return Verdict("stop", until, f"usage limit: {w.window} {_pct(w.utilization)}"
                       f"{' rejected' if w.status == 'rejected' else ''}, resets "
                       f"{_iso(w.resets_at)}", 1.0)
    slow = [w for w in live if (w.utilization or 0) >= cfg.slow_utilization]
    if slow:
        w = max(slow, key=lambda w: w.utilization)
        span = max(cfg.stop_utilization - cfg.slow_utilization, 1e-9)
        pressure = min(1.0, (w.utilization - cfg.slow_utilization) / span)
        return Verdict("slow", w.resets_at, f"usage {w.window} at {_pct(w.utilization)}, "
                       f"resets {_iso(w.resets_at)}", pressure)
    return Verdict("ok", None, "", 0.0)


def limit_reset(windows: list, message: str, now: float) -> float | None:
    """When a limit that was just hit resets: the latest rejected (else fullest) live
    window's `resetsAt`, else the time in the message text, else None (back off)."""
    live = [w for w in windows if w.resets_at and w.resets_at > now]
    if live:
        rejected = [w for w in live if w.status == "rejected"]
        return max(rejected or live, key=lambda w: (w.utilization or 0, w.resets_at)).resets_at
    return parse_reset_time(message, now)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _pct(value: float | None) -> str:
    return "?" if value is None else f"{value * 100:.0f}%"


def _iso(ts: float | None) -> str:
    from torchsm.clock import format_time

    return format_time(ts) or "at an unknown time"
