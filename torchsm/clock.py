"""Time as torchsm shows it: epoch seconds in storage, ISO 8601 UTC on output."""

from __future__ import annotations

import datetime as dt


def format_time(ts: float | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC (`2026-11-26T06:20:00Z`), the form of all output."""
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
