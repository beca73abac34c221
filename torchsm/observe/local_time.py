"""Time as the dashboard shows it to a person: the wall clock of the machine's zone (or
UTC when asked), an age ("3 h ago"), a span ("2 h 5 min"), and the ticks of a time axis
on round times of that clock.

Everything stored and all --json output is epoch seconds or ISO 8601 UTC
(torchsm.clock); a page, or a table in a terminal, read after a night away reads best in
the reader's own hours, with how long ago beside it (`relative`: the CLI's text output).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from torchsm.clock import format_time

MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0
# tick steps of an axis, smallest first: round minutes, hours, days
TICK_STEPS = (5 * MINUTE, 10 * MINUTE, 15 * MINUTE, 30 * MINUTE, HOUR, 2 * HOUR, 3 * HOUR,
              6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 7 * DAY, 14 * DAY, 30 * DAY)
MAX_TICKS = 8


@dataclass(frozen=True)
class WallClock:
    """The reader's clock at `now`: local time, or UTC with `utc`."""

    now: float
    utc: bool = False

    def _struct(self, ts: float) -> time.struct_time:
        return time.gmtime(ts) if self.utc else time.localtime(ts)

    def zone(self) -> str:
        """`UTC`, or the local zone as its offset and name (`+0530 IST`)."""
        if self.utc:
            return "UTC"
        local = self._struct(self.now)
        return f"{time.strftime('%z', local)} {local.tm_zone}"

    def at(self, ts: float | None) -> str:
        """A time as the page shows it in a table: date and minute on this clock."""
        if ts is None:
            return "-"
        try:
            return time.strftime("%Y-%m-%d %H:%M", self._struct(ts))
        except (OverflowError, ValueError, OSError):
            return "far future" if ts > self.now else "invalid"

    def when(self, ts: float | None) -> str:
        """A time and how long ago (or how soon) it is: `2026-12-06 14:03 (3 h ago)`."""
        return "-" if ts is None else f"{self.at(ts)} ({self.ago(ts)})"

    def relative(self, ts: float | None) -> str | None:
        """A time as text output shows it: `08:12:05 (3 min ago)`, `in 4 min (08:20:00)`,
        the date too when not today; ISO 8601 UTC as stored (torchsm.clock) with `utc`."""
        if ts is None or self.utc:
            return format_time(ts)
        try:
            local, today = self._struct(ts), self._struct(self.now)
        except (OverflowError, ValueError, OSError):
            return format_time(ts)  # "far future", "invalid"
        shown = time.strftime("%H:%M:%S" if local[:3] == today[:3] else "%Y-%m-%d %H:%M:%S",
                              local)
        age = self.ago(ts)
        return f"{age} ({shown})" if age.startswith("in ") else f"{shown} ({age})"

    def ago(self, ts: float) -> str:
        if abs(self.now - ts) < MINUTE:
            return "now"
        if ts <= self.now:
            return f"{span(self.now - ts)} ago"
        return f"in {span(ts - self.now)}"

    def tick_label(self, ts: float, step: float) -> str:
        """An axis tick: the time of day, or the date when ticks are a day or more apart."""
        pattern = "%m-%d" if step >= DAY else "%H:%M"
        return time.strftime(pattern, self._struct(ts))

    def offset(self, ts: float) -> float:
        """Seconds this clock is ahead of UTC at `ts`."""
        return 0.0 if self.utc else float(time.localtime(ts).tm_gmtoff)

    def ticks(self, start: float, end: float) -> tuple[list[float], float]:
        """Round times of this clock in [start, end], at most MAX_TICKS, and their step."""
        step = tick_step(end - start)
        shift = self.offset(start)
        first = -(-(start + shift) // step) * step - shift
        count = int((end - first) // step) + 1 if end >= first else 0
        return [first + i * step for i in range(count)], step


def tick_step(seconds: float) -> float:
    """The smallest round step that cuts `seconds` into at most MAX_TICKS ticks."""
    for step in TICK_STEPS:
        if seconds / step <= MAX_TICKS - 1:
            return step
    return TICK_STEPS[-1] * max(1, round(seconds / TICK_STEPS[-1] / (MAX_TICKS - 1)))


def span(seconds: float) -> str:
    """A length of time in the largest units that read well: `45 s`, `10 min`,
    `2 h 5 min`, `3 d 4 h`."""
    seconds = max(0.0, seconds)
    if seconds < MINUTE:
        return f"{seconds:.0f} s"
    if seconds < HOUR:
        return f"{seconds // MINUTE:.0f} min"
    if seconds < DAY:
        return _two(seconds, HOUR, "h", MINUTE, "min")
    return _two(seconds, DAY, "d", HOUR, "h")


def _two(seconds: float, big: float, big_unit: str, small: float, small_unit: str) -> str:
    whole, rest = divmod(seconds, big)
    part = rest // small
    return f"{whole:.0f} {big_unit}" + (f" {part:.0f} {small_unit}" if part else "")
