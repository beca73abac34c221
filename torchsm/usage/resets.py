"""When a usage-limit message or event says a limit resets.

Structured signals come first (a rate_limit_event's `resetsAt`); the message text of a
usage-limit error is only a fallback, and its wording has changed often. Every wording seen
is parsed here; anything else returns None, which callers treat as "back off", never as
"retry now". A text's reset is also checked against how long the window it names can
last, so a misread (or a far-off epoch) cannot hold a Nova for years.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from torchsm.clock import format_time

WINDOW_SPANS_S = {"five_hour": 5 * 3600, "seven_day": 7 * 86400,
                  "seven_day_opus": 7 * 86400, "seven_day_sonnet": 7 * 86400}
KNOWN_WINDOWS = frozenset(WINDOW_SPANS_S)
DEFAULT_SPAN_S = 5 * 3600

GRACE_S = 3600
MINUTE_S = 60

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
WEEKLY_WORDING = re.compile(r"\bweekly\b|\b(?:7|seven)[- ]?day\b", re.I)
FIVE_HOUR_WORDING = re.compile(
    r"\b(?:5|five)[- ]?hour\b|\bsession limit\b|\busage limit reached\b", re.I)


def parse_reset_time(text: str, now: float, local_tz: dt.tzinfo | None = None) -> float | None:
    """The epoch time a usage-limit message says the limit resets, or None.

    A clock time without a date is read relative to `now`: ahead of it, the next such time
    ("resets 5am (UTC)" at 23:00 UTC means tomorrow); less than an hour behind it, `now`
    (the text drops the seconds, so a named minute that has begun may still be ahead by a
    few seconds, and a message read late still means "reset already"); an hour or more
    behind, the next day's. Without a zone the time is in `local_tz` (default: this host's).
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
    return _reading(_occurrences(hour, minute, zone, now), now)


def _occurrences(hour: int, minute: int, zone: dt.tzinfo, now: float) -> list[float]:
    """The instants from yesterday to tomorrow (local to `zone`) whose wall clock reads
    hour:minute: one a day, two in the hour repeated when clocks go back, and for a wall
    time skipped when clocks go forward the instant it normalises to."""
    today = dt.datetime.fromtimestamp(now, zone).date()
    instants: set[float] = set()
    for days in (-1, 0, 1):
        instants.update(_wall_time(today + dt.timedelta(days=days), hour, minute, zone))
    return sorted(instants)


def _wall_time(day: dt.date, hour: int, minute: int, zone: dt.tzinfo) -> list[float]:
    """The instants at which `zone` reads `day` hour:minute; a skipped time, read with the
    offset before the change, lands as far past the gap as it was into it."""
    wall = dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
    first, second = wall.timestamp(), wall.replace(fold=1).timestamp()
    if first == second:
        return [first]
    return [t for t in (first, second) if _reads(t, zone, hour, minute)] or [first]


def _reads(instant: float, zone: dt.tzinfo, hour: int, minute: int) -> bool:
    local = dt.datetime.fromtimestamp(instant, zone)
    return (local.hour, local.minute) == (hour, minute)


def _reading(occurrences: list[float], now: float) -> float:
    """Which occurrence a message read at `now` means.

    A named minute that has begun is this reset (only its seconds were dropped): `now`.
    Else the next occurrence, unless one passed less than an hour ago: then also `now`;
    but in the hour repeated when clocks go back the later occurrence, still ahead, wins:
    waiting an hour too long once a year costs less than retrying, message after message,
    against a limit that has not reset.
    """
    behind = [t for t in occurrences if now - GRACE_S < t <= now]
    ahead = min(t for t in occurrences if t > now)
    if any(t > now - MINUTE_S for t in behind):
        return now
    if behind and ahead - now >= GRACE_S:
        return now
    return ahead


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
        if isinstance(resets, (int, float)) and 0 < resets < float("inf"):
            return float(resets)
    return None


def window_from_text(text: str) -> str | None:
    """The window a usage-limit message names: `seven_day` for a weekly limit (Opus or
    not), `five_hour` for the 5-hour or session limit (and the older "usage limit reached"
    forms, from before weekly limits), else None."""
    if not text:
        return None
    if WEEKLY_WORDING.search(text):
        return "seven_day"
    if FIVE_HOUR_WORDING.search(text):
        return "five_hour"
    return None


def cap_reset(resets_at: float, window: str | None, now: float) -> tuple[float, str | None]:
    """`resets_at`, or `now` plus the window's span if it lies further ahead than the
    window can last (a misread or stale time would hold the Nova past any real reset),
    with a one-line warning saying so. An unknown or unnamed window gets the shortest
    known span, so a hold nobody re-announces is re-checked soonest."""
    span = WINDOW_SPANS_S.get(window or "", DEFAULT_SPAN_S)
    if resets_at <= now + span:
        return resets_at, None
    capped = now + span
    return capped, (f"reset {format_time(resets_at)} is further ahead than "
                    f"{_window_phrase(window)} lasts; capped at {format_time(capped)}")


def _window_phrase(window: str | None) -> str:
    if window in KNOWN_WINDOWS:
        return f"a {window} window"
    hours = DEFAULT_SPAN_S // 3600
    if window:
        return f"an unknown {window} window ({hours} h assumed)"
    return f"an unnamed window ({hours} h assumed)"


def text_reset(text: str, now: float,
               local_tz: dt.tzinfo | None = None) -> tuple[float | None, str | None]:
    """The reset a usage-limit message announces, capped to the window it names, and the
    warning if it was capped; (None, None) when the text names no reset."""
    resets_at = parse_reset_time(text, now, local_tz)
    if resets_at is None:
        return None, None
    return cap_reset(resets_at, window_from_text(text), now)
