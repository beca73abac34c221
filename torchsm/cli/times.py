"""Times in the CLI's text output: the reader's local time with how long ago or until
(`08:12:05 (3 min ago)`), or ISO 8601 UTC as before with `TORCHSM_UTC=1` (for scripts
that read text, and logs compared across zones). --json is always ISO 8601 UTC."""

from __future__ import annotations

import datetime as dt
import os
import time
from typing import Mapping

from torchsm.observe.local_time import WallClock


def text_clock(now: float | None = None,
               environ: Mapping[str, str] = os.environ) -> WallClock:
    """The clock one rendering shows its times on: one `now` for all its rows."""
    utc = environ.get("TORCHSM_UTC", "") not in ("", "0")
    return WallClock(time.time() if now is None else now, utc=utc)


def shown(iso: str | None, clock: WallClock) -> str | None:
    """A row's ISO time as text output shows it on `clock`; a text that is not a time
    ("far future", "invalid", "running") as it is."""
    if iso is None or clock.utc:
        return iso
    try:
        return clock.relative(dt.datetime.fromisoformat(iso).timestamp())
    except (TypeError, ValueError):
        return iso
