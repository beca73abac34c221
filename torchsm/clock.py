"""Time as torchsm shows it: epoch seconds in storage, ISO 8601 UTC on output."""

from __future__ import annotations

import datetime as dt

# 10000-01-01T00:00:00Z: from here on a time has no four-digit ISO 8601 year
_END_OF_ISO = 253402300800.0
FAR_FUTURE = "far future"
INVALID = "invalid"


def format_time(ts: float | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC (`2026-11-26T06:20:00Z`), the form of all output.

    Any float renders: a row written under an old config may hold `inf` or `1e300`
    ("far future": past the year 9999), or NaN or a time before the year 1 ("invalid"),
    and reading it must never fail."""
    if ts is None:
        return None
    try:
        if ts >= _END_OF_ISO:  # inf included
            return FAR_FUTURE
        return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, ValueError, OSError, TypeError):
        return INVALID  # NaN (every comparison is False), -inf, before the year 1
