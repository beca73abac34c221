"""Usage limits: when the provider says a window resets.

Structured signals come first (a rate_limit_event's `resetsAt`); the message text of a
usage-limit error is only a fallback, and its wording has changed often. Every wording seen
is parsed here; anything else returns None, which callers treat as "back off", never as
"retry now".
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

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
