"""The dashboard's time series: a window cut into buckets, and per bucket what the stored
history holds (aggregate SQL: a `GROUP BY` on time buckets over an index range, never a
Python loop over the rows). The dashboard's one query module; torchsm.observe.dashboard
draws what it returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torchsm.names import HOOK_EVENTS
from torchsm.storage import store
from torchsm.work import work_queue

DAY_S = 86400.0
MIN_WINDOW_S = 3600.0  # a younger home is drawn over its first hour: buckets of 5 min
TRANSITIONS_CAP = 2000  # exact bands up to this many transitions of a Nova in the window
TIMELINE_SLOTS = 320  # beyond it, one band per slot
MAX_BUCKETS = 60
BUCKET_SIZES = (300.0, 900.0, 3600.0, 6 * 3600.0, DAY_S, 7 * DAY_S)
AGE_BINS = ((300, "< 5 min"), (900, "< 15 min"), (3600, "< 1 h"), (6 * 3600, "< 6 h"),
            (DAY_S, "< 1 d"), (None, ">= 1 d"))


@dataclass(frozen=True)
class Buckets:
    """The window cut into `count` buckets of `size` seconds from `start`."""

    start: float
    end: float
    size: float

    @property
    def count(self) -> int:
        return max(1, int(-(-(self.end - self.start) // self.size)))

    def starts(self) -> list[float]:
        return [self.start + i * self.size for i in range(self.count)]

    def series(self, rows: list[tuple]) -> list[float]:
        """(bucket, value) rows as one value per bucket, 0 where none."""
        out = [0.0] * self.count
        for bucket, value in rows:
            if 0 <= bucket < self.count:
                out[bucket] += value or 0.0
        return out


def default_window_s(now: float, began: float | None) -> float:
    """The window drawn when none is asked for: the home's age (`now - began`), within
    [MIN_WINDOW_S, DAY_S]. A home younger than a day drawn over 24 hours is a sliver at
    the right edge; one a few minutes old still gets whole buckets."""
    age = DAY_S if began is None else now - began
    return min(DAY_S, max(MIN_WINDOW_S, age))


def home_began(conn, novas: list[store.NovaRow]) -> float | None:
    """When the home's record begins: the oldest of its Novas' creation, first transition
    and first session (history or sessions may be older than a row: imported, or a Nova
    added again). One index seek per Nova and table."""
    times = [n.created_at for n in novas]
    for n in novas:
        times += [row[0] for row in (
            conn.execute("SELECT min(at) FROM history WHERE nova_id = ?", (n.id,)).fetchone(),
            conn.execute("SELECT min(started_at) FROM sessions WHERE nova_id = ?",
                         (n.id,)).fetchone()) if row[0] is not None]
    return min(times, default=None)


def buckets_for(start: float, end: float) -> Buckets:
    """The smallest bucket size that cuts the window into at most MAX_BUCKETS."""
    for size in BUCKET_SIZES:
        if (end - start) / size <= MAX_BUCKETS:
            return Buckets(start, end, size)
    return Buckets(start, end, (end - start) / MAX_BUCKETS)


def _slot(column: str) -> str:
    return f"CAST(({column} - :start) / :size AS INTEGER)"


def read_charts(conn, novas: list[store.NovaRow], b: Buckets, now: float) -> dict[str, Any]:
    """Every chart's data in one read transaction."""
    window = {"start": b.start, "end": b.end, "size": b.size}
    per_nova = {n.name: _nova_series(conn, n, b, window) for n in novas}
    return {"novas": per_nova, "queue": _queue(conn, b, window, now),
            "windows": conn.execute("SELECT account, window, utilization, status, resets_at"
                                    " FROM account_windows ORDER BY account, window").fetchall()}


def _nova_series(conn, nova: store.NovaRow, b: Buckets, window: dict) -> dict[str, Any]:
    args = {**window, "nova": nova.id}
    marks = ", ".join(f":e{i}" for i in range(len(HOOK_EVENTS)))
    events = {f"e{i}": e for i, e in enumerate(HOOK_EVENTS)}
    hooks = conn.execute(
        f"SELECT {_slot('at')}, count(*) FROM hook_runs WHERE nova_id = :nova AND event IN"
        f" ({marks}) AND at >= :start AND at < :end GROUP BY 1", {**args, **events}).fetchall()
    sessions = conn.execute(
        f"SELECT {_slot('started_at')}, count(*), total(cost_usd) FROM sessions"
        " WHERE nova_id = :nova AND started_at >= :start AND started_at < :end GROUP BY 1",
        args).fetchall()
    calm = conn.execute(
        f"SELECT {_slot('at')}, total(event = 'cool'), total(event = 'meditate') FROM history"
        " WHERE nova_id = :nova AND at >= :start AND at < :end"
        " AND event IN ('cool', 'meditate') GROUP BY 1", args).fetchall()
    return {"bands": state_bands(conn, nova, b.start, b.end),
            "hooks": b.series(hooks),
            "sessions": b.series([(r[0], r[1]) for r in sessions]),
            "cost": b.series([(r[0], r[2]) for r in sessions]),
            "cooldowns": b.series([(r[0], r[1]) for r in calm]),
            "meditations": b.series([(r[0], r[2]) for r in calm])}


def state_bands(conn, nova: store.NovaRow, start: float,
                end: float) -> tuple[list[tuple[float, float, str]], bool]:
    """A Nova's states over [start, end) as (from, to, state) bands, and whether they are
    exact (every transition) or one per slot (the last state of each)."""
    begin = max(start, min(nova.created_at, end))
    before = conn.execute("SELECT to_state FROM history WHERE nova_id = ? AND at < ?"
                          " ORDER BY at DESC, id DESC LIMIT 1", (nova.id, start)).fetchone()
    rows = conn.execute("SELECT at, from_state, to_state FROM history WHERE nova_id = ?"
                        " AND at >= ? AND at < ? ORDER BY at, id LIMIT ?",
                        (nova.id, start, end, TRANSITIONS_CAP + 1)).fetchall()
    state = before[0] if before else rows[0][1] if rows else nova.state
    exact = len(rows) <= TRANSITIONS_CAP
    if not exact:  # too many to draw one by one: the state each slot ends in
        size = (end - start) / TIMELINE_SLOTS
        rows = [(start + (slot + 1) * size, None, to) for slot, to, _ in conn.execute(
            "SELECT CAST((at - ?) / ? AS INTEGER) AS slot, to_state, max(at) FROM history"
            " WHERE nova_id = ? AND at >= ? AND at < ? GROUP BY slot ORDER BY slot",
            (start, size, nova.id, start, end))]
    bands, since = [], begin
    for at, _, to in rows:
        if to != state:
            if at > since:
                bands.append((since, at, state))
            since, state = max(at, begin), to
    bands.append((since, end, state))
    return bands, exact


def _queue(conn, b: Buckets, window: dict, now: float) -> dict[str, Any]:
    depth = conn.execute(f"SELECT count(*) FROM work_items WHERE {work_queue.OPEN_SQL}"
                         ).fetchone()[0]
    created = b.series(conn.execute(
        f"SELECT {_slot('created_at')}, count(*) FROM work_items WHERE created_at >= :start"
        " AND created_at < :end GROUP BY 1", window).fetchall())
    finished = b.series(conn.execute(
        f"SELECT {_slot('finished_at')}, count(*) FROM work_items WHERE finished_at >= :start"
        " AND finished_at < :end GROUP BY 1", window).fetchall())
    # the depth at the end of each bucket: today's, minus what came in after, plus what left
    series, level = [0.0] * b.count, float(depth)
    for i in range(b.count - 1, -1, -1):
        series[i] = max(0.0, level)
        level += finished[i] - created[i]
    cases = " ".join(f"WHEN age < {limit} THEN {i}" for i, (limit, _) in
                     enumerate(AGE_BINS) if limit is not None)
    ages = dict(conn.execute(
        f"SELECT CASE {cases} ELSE {len(AGE_BINS) - 1} END, count(*) FROM (SELECT ? -"
        f" created_at AS age FROM work_items WHERE {work_queue.OPEN_SQL})"
        " GROUP BY 1", (now,)).fetchall())
    return {"depth": depth, "depth_series": series, "created": created, "finished": finished,
            "ages": [float(ages.get(i, 0)) for i in range(len(AGE_BINS))]}
