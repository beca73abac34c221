"""`torchsm dashboard`: one self-contained HTML page (inline CSS and SVG, no script, no
network) of a home over a window [now - since, now): what a person away for the night
reads first.

The window: as asked (`--since`), else the home's age (its oldest Nova, transition or
session) within [1 h, 24 h], so a young home fills the page instead of a sliver at its
right edge. Times are on the reader's clock (the machine's zone, or UTC with `utc`), with
how long ago beside them (torchsm.observe.local_time).

What it shows, and where each part comes from (every series is read by
torchsm.observe.series, the dashboard's query module; every list by its owner's own
function, in the same read transaction):
  health      the score (torchsm.observe.health) per Nova and overall, its trend against the
              window before, the recommendations
  novas       each Nova's state, since, until, next start and why, as `torchsm status`
              says it (torchsm.observe.nova_status.status_rows)
  alerts      open alerts and the latest resolved ones (torchsm.alerts.conditions.recent)
  states      one full-width timeline per Nova, bands of its states over the window (at
              most TRANSITIONS_CAP transitions; beyond that the last state of each of
              TIMELINE_SLOTS slots, marked data-exact="0"), all over one time axis
  activity    counts per bucket as bars (work items created and finished, hook runs per
              Nova, sessions started, cooldowns and meditations); the queue's depth and
              the cost per Nova as lines; open items by age
  sessions    the latest sessions (torchsm.usage.ledger.latest, as `torchsm sessions`)
  queue       the oldest open items with tier and age (torchsm.work.work_queue.oldest_open)
  logs        each Nova's last LOG_LINES log lines (torchsm.agent.log.tail), escaped
  usage       each account's usage windows as last reported (utilization, reset)
"""

from __future__ import annotations

from typing import Any

from torchsm.agent import log
from torchsm.alerts import conditions
from torchsm.config import Config, Home
from torchsm.observe import charts, dashboard_lists as lists
from torchsm.observe.health import measure
from torchsm.observe.local_time import HOUR, WallClock, span
from torchsm.observe.nova_status import status_rows
from torchsm.observe.series import (AGE_BINS, DAY_S, MIN_WINDOW_S, Buckets, buckets_for, default_window_s,
                                    home_began, read_charts)
from torchsm.storage import store
from torchsm.terminal import html_text
from torchsm.usage import ledger
from torchsm.work import work_queue

RECENT_SESSIONS = 20
QUEUE_ROWS = 20
RESOLVED_ALERTS = 10
LOG_LINES = 20


def collect(home: Home, config: Config, now: float, since_s: float | None) -> dict[str, Any]:
    """Everything the page shows, as plain data; `since_s` None: the home's window."""
    with store.open_store(home, config.db.lock_timeout_s) as db:
        data = db.read(lambda conn: _read(conn, now, since_s))
    b: Buckets = data["buckets"]
    logs = {name: log.tail(home, name, LOG_LINES) for name in data["rows"]}
    return {**data, "health": measure(home, config, None, b.end - b.start, now),
            "status": status_rows(home, config, now=now), "logs": logs}


def _read(conn, now: float, since_s: float | None) -> dict[str, Any]:
    """The database's part, in one read transaction (one snapshot)."""
    rows = store.load_novas(conn)
    began = home_began(conn, rows)
    window = default_window_s(now, began) if since_s is None else since_s
    b = buckets_for(now - window, now)
    return {"buckets": b, "asked": since_s is not None, "began": began,
            "rows": {n.name: n for n in rows}, **read_charts(conn, rows, b, now),
            "sessions": _recent_sessions(conn, rows),
            "open_items": work_queue.oldest_open(conn, QUEUE_ROWS),
            "alerts": conditions.recent(conn, RESOLVED_ALERTS)}


def _recent_sessions(conn, rows: list[store.NovaRow]) -> list[ledger.SessionRow]:
    """The latest RECENT_SESSIONS of every Nova, newest first: each Nova's latest (an
    index walk) merged. `ledger.latest` over every Nova at once sorts the whole table:
    1.2 s of a page on the benchmark's home of 571,428 sessions, against 0 ms."""
    found = [s for nova in rows for s in ledger.latest(conn, nova.id, RECENT_SESSIONS)]
    return sorted(found, key=lambda s: (s.started_at, s.id), reverse=True)[:RECENT_SESSIONS]


# --- rendering ------------------------------------------------------------------------------

def render(home: Home, config: Config, now: float, since_s: float | None = None,
           refresh_s: float | None = None, utc: bool = False) -> str:
    """The page: one HTML document. `refresh_s` adds a refresh meta (when served)."""
    return page(collect(home, config, now, since_s), home, WallClock(now, utc), refresh_s)


def page(data: dict[str, Any], home: Home, clock: WallClock, refresh_s: float | None) -> str:
    refresh = (f'<meta http-equiv="refresh" content="{int(refresh_s)}">'
               if refresh_s else "")
    head = (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"{refresh}<title>torchsm dashboard</title><style>{CSS}</style></head><body>"
            f"<header><h1>torchsm</h1><p>{_header(data, home, clock)}</p></header>")
    if not data["novas"]:
        body = ('<section class="empty-state"><h2>No Novas yet</h2><p>Add one with '
                "<code>torchsm nova add NAME</code>; its history will show here.</p></section>")
    else:
        body = "".join([
            _health(data), lists.status(data["status"], data["rows"], clock),
            lists.alerts(data["alerts"], clock), _timelines(data, clock), _activity(data, clock),
            lists.sessions(data["sessions"], clock),
            lists.queue(data["open_items"], data["queue"]["depth"], clock),
            lists.logs(data["logs"], LOG_LINES), _usage(data["windows"], clock)])
    return head + body + "</body></html>\n"


def _header(data: dict[str, Any], home: Home, clock: WallClock) -> str:
    """Which window is drawn, and why that one; the clock the times are on."""
    b: Buckets = data["buckets"]
    window = b.end - b.start
    why = ""
    if not data["asked"] and window < DAY_S and data["began"] is not None:
        age = clock.now - data["began"]
        why = " (the home's age)" if age >= MIN_WINDOW_S else f" (the home is {span(age)} old)"
    return (f"{html_text(str(home.path))}: the last {html_text(_window_words(window))}{why}, "
            f"{html_text(clock.at(b.start))} .. {html_text(clock.at(b.end))} "
            f"{html_text(clock.zone())} (buckets of {_duration(b.size)}); drawn "
            f"{html_text(clock.at(clock.now))}")


def _window_words(seconds: float) -> str:
    """`24 h` rather than `1 d`: a day's window reads as hours."""
    if seconds <= 2 * DAY_S and seconds % HOUR == 0:
        return f"{seconds / HOUR:g} h"
    return span(seconds)


def _duration(seconds: float) -> str:
    for unit, size in (("d", DAY_S), ("h", 3600.0), ("min", 60.0)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"


def _figure(caption: str, svg: str) -> str:
    return f"<figure>{svg}<figcaption>{html_text(caption)}</figcaption></figure>"


def _health(data: dict[str, Any]) -> str:
    overall = data["health"].extra["health"]
    cards = [_score_card("all Novas", overall["score"], overall["trend"], [])]
    for nova in data["health"].novas:
        h = nova.families["health"]
        cards.append(_score_card(nova.nova, h["score"], h["trend"], h["recommendations"]))
    return lists.section("health", "Health", '<div class="cards">', *cards, "</div>")


def _score_card(name: str, score: float | None, trend: float | None,
                advice: list[str]) -> str:
    trend_text = "" if trend is None else f" ({trend:+g} on the window before)"
    items = "".join(f"<li>{html_text(a)}</li>" for a in advice)
    return (f'<div class="card"><h3>{html_text(name)}</h3>'
            f"{charts.score_gauge(f'health score of {name}', score)}"
            f"<p>score {'-' if score is None else f'{score:g}'}{html_text(trend_text)}</p>"
            + (f"<ul>{items}</ul>" if items else "") + "</div>")


def _timelines(data: dict[str, Any], clock: WallClock) -> str:
    """One full-width timeline per Nova, one under the other, over the one time axis."""
    b: Buckets = data["buckets"]
    ticks, step = clock.ticks(b.start, b.end)
    parts = [f'<p class="legend">{charts.state_legend()}</p>']
    for name, series in data["novas"].items():
        bands, exact = series["bands"]
        parts.append(f'<div class="lane"><h3>{html_text(name)}'
                     + ("" if exact else " (one band per slot: many transitions)") + "</h3>"
                     + charts.state_timeline(f"states of {name}", b.start, b.end, bands, exact,
                                             ticks) + "</div>")
    marks = [(t, clock.tick_label(t, step), clock.ago(t)) for t in ticks]
    parts.append(charts.time_axis(f"time, {clock.zone()}", b.start, b.end, marks))
    return lists.section("states", "States", *parts)


def _sum(series: list[list[float]]) -> list[float]:
    return [sum(values) for values in zip(*series)] if series else []


def _activity(data: dict[str, Any], clock: WallClock) -> str:
    b: Buckets = data["buckets"]
    novas, queue = data["novas"], data["queue"]
    labels = [clock.tick_label(t, b.size) for t in b.starts()]
    per = _duration(b.size)
    return lists.section(
        "activity", "Activity", '<div class="charts">',
        _figure(f"work items created and finished per {per}",
                charts.stacked_bars("items", f"work items per {per}", labels, {
                    "created": queue["created"], "finished": queue["finished"]}, " items")),
        _figure(f"open work items at the end of each bucket (now {queue['depth']})",
                charts.line_chart("queue-depth", "queue depth", labels,
                                  {"open items": queue["depth_series"]})),
        _figure("open work items by age, now",
                charts.bar_chart("queue-age", "open items by age",
                                 [label for _, label in AGE_BINS], queue["ages"], " items")),
        _figure(f"hook runs per {per}",
                charts.stacked_bars("hooks", f"hook runs per {per}", labels,
                                    {n: s["hooks"] for n, s in novas.items()}, " runs")),
        _figure(f"sessions started per {per}, all Novas",
                charts.bar_chart("sessions", f"sessions per {per}", labels,
                                 _sum([s["sessions"] for s in novas.values()]), " sessions")),
        _figure(f"cost per {per} (USD)",
                charts.line_chart("cost", f"cost per {per}", labels,
                                  {n: s["cost"] for n, s in novas.items()})),
        _figure(f"cooldowns and meditations per {per}, all Novas",
                charts.stacked_bars("cooldowns", f"cooldowns per {per}", labels, {
                    "cooldowns": _sum([s["cooldowns"] for s in novas.values()]),
                    "meditations": _sum([s["meditations"] for s in novas.values()])})),
        "</div>")


def _usage(windows: list[tuple], clock: WallClock) -> str:
    rows = [(f"{account} {window}", utilization or 0.0,
             f"{status or ''} resets {clock.ago(resets) if resets else '?'}")
            for account, window, utilization, status, resets in windows]
    return lists.section("usage", "Usage windows", _figure(
        "utilization as last reported", charts.meter_chart("usage", "usage windows", rows)))


CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:0 auto;max-width:1340px;padding:0 16px;
color:#1d2733;background:#f7f8fa}
header h1{margin:12px 0 0;font-size:20px}header p{margin:2px 0 8px;color:#5a6776;
overflow-wrap:anywhere}
section{background:#fff;border:1px solid #dde3ea;border-radius:6px;margin:10px 0;
padding:8px 14px}
h2{font-size:16px;margin:4px 0 8px}h3{font-size:14px;margin:0}
figure{display:inline-block;margin:4px 8px 8px 0;vertical-align:top}
figcaption{font-size:12px;color:#5a6776}
svg.chart{max-width:100%;height:auto}svg.wide{display:block;width:100%;height:auto}
.lane h3{font-size:12px;font-weight:600;margin:6px 0 0}.grid{stroke:#fff;stroke-opacity:.5}
.tick.sub{fill:#8a96a3}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,420px),1fr));gap:8px}
.charts figure{margin:0}.charts svg.chart{width:100%}.scroll{overflow-x:auto}
pre{background:#f3f5f8;padding:6px 8px;margin:4px 0 8px;font-size:12px;white-space:pre-wrap;
overflow-wrap:anywhere}
.tick{font-size:10px;fill:#5a6776}.axis{stroke:#c4ccd6}.empty{fill:#8a96a3;font-size:12px}
.score{font-size:18px;font-weight:600;fill:#1d2733}
.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{border:1px solid #dde3ea;border-radius:6px;padding:6px 10px;min-width:200px;
max-width:420px}
.card ul{margin:4px 0;padding-left:18px;font-size:12px}
table{border-collapse:collapse;font-size:13px}
td,th{border-bottom:1px solid #e7ebf0;padding:3px 10px 3px 0;text-align:left}
.quiet{color:#5a6776}.legend{font-size:12px}
.swatch{display:inline-block;width:10px;height:10px;margin:0 3px 0 8px;border-radius:2px}
@media (max-width:700px){body{padding:0 6px}section{padding:6px 8px}
figure{display:block;margin:4px 0}.card{min-width:0;flex:1 1 100%}}
"""
