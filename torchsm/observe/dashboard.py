"""`torchsm dashboard`: one self-contained HTML page (inline CSS and SVG, no script, no
network) of a home over a window [now - since, now).

What it shows, and where each part comes from (every series is read by
torchsm.observe.series, the dashboard's query module):
  status      each Nova's state, since, until (its cooldown), limit hold and the
              supervisor's next start (novas.status + run_files.with_plans)
  states      per Nova, bands of its states over the window: the state before the
              window, then its transitions in it (at most TRANSITIONS_CAP; beyond that
              the last state of each of TIMELINE_SLOTS slots, marked data-exact="0")
  queue       open items now (depth) and, per bucket, the depth rebuilt backwards from
              it with the items created and finished in each bucket; open items by age
  hooks       hook runs per bucket, per Nova
  sessions    sessions started per bucket (all Novas) and their cost per bucket, per Nova
  cooldowns   cooldowns and meditations per bucket (history)
  usage       each account's usage windows as last reported (utilization, reset)
  health      the score (torchsm.observe.health) per Nova and overall, its trend against the
              window before, the recommendations; and the open alerts (torchsm.alerts.conditions)
"""

from __future__ import annotations

from typing import Any

from torchsm.alerts import conditions
from torchsm.clock import format_time
from torchsm.config import Config, Home
from torchsm.novas import status
from torchsm.observe import charts
from torchsm.observe.health import measure
from torchsm.observe.series import AGE_BINS, DAY_S, Buckets, buckets_for, read_charts
from torchsm.storage import store
from torchsm.storage.run_files import with_plans
from torchsm.terminal import html_text

def collect(home: Home, config: Config, now: float, since_s: float) -> dict[str, Any]:
    """Everything the page shows, as plain data."""
    b = buckets_for(now - since_s, now)
    health = measure(home, config, None, since_s, now)
    with store.open_store(home, config.db.lock_timeout_s) as db:
        rows = db.read(store.load_novas)
        data = db.read(lambda conn: read_charts(conn, rows, b, now))
    return {"buckets": b, "health": health, "novas": rows, **data,
            "status": with_plans(home, status(home, config)),
            "alerts": conditions.list_alerts(home, config)}


# --- rendering ------------------------------------------------------------------------------

def render(home: Home, config: Config, now: float, since_s: float = DAY_S,
           refresh_s: float | None = None) -> str:
    """The page: one HTML document. `refresh_s` adds a refresh meta (when served)."""
    return page(collect(home, config, now, since_s), home, now, refresh_s)


def page(data: dict[str, Any], home: Home, now: float, refresh_s: float | None) -> str:
    b: Buckets = data["buckets"]
    refresh = (f'<meta http-equiv="refresh" content="{int(refresh_s)}">'
               if refresh_s else "")
    head = (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">{refresh}"
            f"<title>torchsm dashboard</title><style>{CSS}</style></head><body>"
            f"<header><h1>torchsm</h1><p>{html_text(str(home.path))}: "
            f"{html_text(format_time(b.start))} .. {html_text(format_time(b.end))} "
            f"(buckets of {_duration(b.size)}), drawn {html_text(format_time(now))}</p></header>")
    if not data["novas"]:
        body = ('<section class="empty-state"><h2>No Novas yet</h2><p>Add one with '
                "<code>torchsm nova add NAME</code>; its history will show here.</p></section>")
    else:
        body = "".join([_health(data), _status(data["status"]), _alerts(data["alerts"]),
                        _timelines(data), _activity(data), _usage(data["windows"])])
    return head + body + "</body></html>\n"


def _duration(seconds: float) -> str:
    for unit, size in (("d", DAY_S), ("h", 3600.0), ("min", 60.0)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"


def _section(title: str, *parts: str) -> str:
    return f"<section><h2>{html_text(title)}</h2>{''.join(parts)}</section>"


def _figure(caption: str, svg: str) -> str:
    return f"<figure>{svg}<figcaption>{html_text(caption)}</figcaption></figure>"


def _health(data: dict[str, Any]) -> str:
    overall = data["health"].extra["health"]
    cards = [_score_card("all Novas", overall["score"], overall["trend"], [])]
    for nova in data["health"].novas:
        h = nova.families["health"]
        cards.append(_score_card(nova.nova, h["score"], h["trend"], h["recommendations"]))
    return _section("Health", '<div class="cards">', *cards, "</div>")


def _score_card(name: str, score: float | None, trend: float | None,
                advice: list[str]) -> str:
    trend_text = "" if trend is None else f" ({trend:+g} on the window before)"
    items = "".join(f"<li>{html_text(a)}</li>" for a in advice)
    return (f'<div class="card"><h3>{html_text(name)}</h3>'
            f"{charts.score_gauge(f'health score of {name}', score)}"
            f"<p>score {'-' if score is None else f'{score:g}'}{html_text(trend_text)}</p>"
            + (f"<ul>{items}</ul>" if items else "") + "</div>")


def _status(rows: list[dict[str, Any]]) -> str:
    head = ("<tr><th>Nova</th><th>state</th><th>since</th><th>until (cooldown)</th>"
            "<th>limit hold</th><th>next start</th><th>reason</th></tr>")
    body = "".join(
        "<tr>" + "".join(f"<td>{html_text(str(v)) if v is not None else '-'}</td>" for v in (
            r["nova"], r["state"], r["since"], r["until"], r["limit_hold"],
            r["next_start"], r["reason"])) + "</tr>" for r in rows)
    return _section("Novas", f"<table>{head}{body}</table>")


def _alerts(found: list) -> str:
    if not found:
        return _section("Open alerts", '<p class="quiet">none</p>')
    body = "".join(f"<tr><td>{html_text(format_time(a.at))}</td><td>{html_text(a.kind)}</td>"
                   f"<td>{html_text(a.nova or 'all')}</td><td>{html_text(a.message)}</td></tr>"
                   for a in found)
    return _section(f"Open alerts ({len(found)})", '<table class="alerts"><tr><th>since</th>'
                    f"<th>kind</th><th>Nova</th><th>message</th></tr>{body}</table>")


def _timelines(data: dict[str, Any]) -> str:
    b: Buckets = data["buckets"]
    parts = [f'<p class="legend">{charts.state_legend()}</p>']
    for name, series in data["novas"].items():
        bands, exact = series["bands"]
        parts.append(_figure(name + ("" if exact else " (one band per slot: many transitions)"),
                             charts.state_timeline(f"states of {name}", b.start, b.end,
                                                   bands, exact)))
    return _section("States", *parts)


def _sum(series: list[list[float]]) -> list[float]:
    return [sum(values) for values in zip(*series)] if series else []


def _activity(data: dict[str, Any]) -> str:
    b: Buckets = data["buckets"]
    labels, novas, queue = b.labels(), data["novas"], data["queue"]
    per = _duration(b.size)
    return _section(
        "Activity",
        _figure(f"open work items at the end of each bucket (now {queue['depth']})",
                charts.line_chart("queue-depth", "queue depth", labels,
                                  {"open items": queue["depth_series"],
                                   "created": queue["created"]})),
        _figure("open work items by age, now",
                charts.bar_chart("queue-age", "open items by age",
                                 [label for _, label in AGE_BINS], queue["ages"], " items")),
        _figure(f"hook runs per {per}",
                charts.line_chart("hooks", f"hook runs per {per}", labels,
                                  {n: s["hooks"] for n, s in novas.items()})),
        _figure(f"sessions started per {per}, all Novas",
                charts.bar_chart("sessions", f"sessions per {per}", labels,
                                 _sum([s["sessions"] for s in novas.values()]), " sessions")),
        _figure(f"cost per {per} (USD)",
                charts.line_chart("cost", f"cost per {per}", labels,
                                  {n: s["cost"] for n, s in novas.items()})),
        _figure(f"cooldowns and meditations per {per}, all Novas",
                charts.line_chart("cooldowns", f"cooldowns per {per}", labels, {
                    "cooldowns": _sum([s["cooldowns"] for s in novas.values()]),
                    "meditations": _sum([s["meditations"] for s in novas.values()])})))


def _usage(windows: list[tuple]) -> str:
    rows = [(f"{account} {window}", utilization or 0.0,
             f"{status or ''} resets {format_time(resets) or '?'}")
            for account, window, utilization, status, resets in windows]
    return _section("Usage windows", _figure("utilization as last reported",
                                             charts.meter_chart("usage", "usage windows", rows)))


CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:0 auto;max-width:1340px;padding:0 16px;
color:#1d2733;background:#f7f8fa}
header h1{margin:12px 0 0;font-size:20px}header p{margin:2px 0 8px;color:#5a6776}
section{background:#fff;border:1px solid #dde3ea;border-radius:6px;margin:10px 0;
padding:8px 14px}
h2{font-size:16px;margin:4px 0 8px}h3{font-size:14px;margin:0}
figure{display:inline-block;margin:4px 8px 8px 0;vertical-align:top}
figcaption{font-size:12px;color:#5a6776}
svg.chart{max-width:100%;height:auto}
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
"""
