"""Inline SVG charts for the dashboard (torchsm.observe.dashboard), stdlib only, no script.

Each function returns one `<svg>` element with a `<title>`, an `aria-label` and data-*
attributes that say what it holds (`data-chart`, the kind; `data-points`, how many values
it drew), so a reader, a screen reader and a test can tell it was drawn. Every text that
reaches the page goes through `html_text` here (escaped, its controls and bidi
characters shown); callers pass plain strings.
"""

from __future__ import annotations

import math
from itertools import cycle
from typing import Iterable, Sequence

from torchsm.terminal import html_text

WIDTH, HEIGHT = 640, 160
WIDE = 1280  # the state timelines and their time axis: the page's whole width
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 10, 22  # the plot area's margins
PALETTE = ("#2a6fdb", "#d9822b", "#2e9e5b", "#b8475f", "#7a5cc4", "#6b7a8f")
STATE_COLOURS = {"working": "#2e9e5b", "cooling": "#2a6fdb", "meditating": "#7a5cc4",
                 "dreaming": "#d9a62b", "compacting": "#b8475f"}


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _open(kind: str, title: str, points: int, width: int = WIDTH, height: int = HEIGHT,
          klass: str = "chart", **data: str) -> str:
    extra = "".join(f' data-{k.replace("_", "-")}="{html_text(str(v))}"' for k, v in data.items())
    return (f'<svg class="{klass}" viewBox="0 0 {width} {height}" width="{width}" '
            f'height="{height}" role="img" aria-label="{html_text(title)}" '
            f'data-chart="{html_text(kind)}" data-points="{points}"{extra}>'
            f"<title>{html_text(title)}</title>")


def _empty(kind: str, title: str, height: int = HEIGHT, width: int = WIDTH,
           **data: str) -> str:
    return (_open(kind, title, 0, width=width, height=height, **data)
            + f'<text class="empty" x="{width / 2}" y="{height / 2}" text-anchor="middle">'
            "nothing in the window</text></svg>")


def _x_axis(labels: Sequence[str], height: int = HEIGHT) -> str:
    """Up to six evenly spaced labels under the plot area."""
    if not labels:
        return ""
    plot_w = WIDTH - LEFT - RIGHT
    step = max(1, len(labels) // 6)
    out = [f'<line class="axis" x1="{LEFT}" y1="{height - BOTTOM}" x2="{WIDTH - RIGHT}" '
           f'y2="{height - BOTTOM}"/>']
    for i in range(0, len(labels), step):
        x = LEFT + plot_w * (i + 0.5) / len(labels)
        out.append(f'<text class="tick" x="{_num(x)}" y="{height - 6}" '
                   f'text-anchor="middle">{html_text(labels[i])}</text>')
    return "".join(out)


def _y_axis(top: float, height: int = HEIGHT) -> str:
    return (f'<text class="tick" x="{LEFT - 4}" y="{TOP + 8}" text-anchor="end">'
            f'{html_text(_short(top))}</text><text class="tick" x="{LEFT - 4}" '
            f'y="{height - BOTTOM}" text-anchor="end">0</text>')


def _short(value: float) -> str:
    if value >= 1000:
        return f"{value / 1000:.3g}k"
    return f"{value:.3g}"


def _legend(names: Iterable[str]) -> str:
    out, x = [], LEFT
    for i, name in enumerate(names):
        colour = PALETTE[i % len(PALETTE)]
        out.append(f'<rect x="{x}" y="1" width="8" height="8" fill="{colour}"/>'
                   f'<text class="tick" x="{x + 11}" y="9">{html_text(name)}</text>')
        x += 16 + 7 * len(name)
    return "".join(out)


def _drawable(values: Sequence[float]) -> list[float]:
    """The values with any that is not finite (a cost an older torchsm stored, summed
    past a float) drawn as 0: one such value would make every coordinate `nan`."""
    return [v if math.isfinite(v) else 0.0 for v in values]


def line_chart(kind: str, title: str, labels: Sequence[str],
               series: dict[str, Sequence[float]]) -> str:
    """One polyline per series over the same buckets (`labels`), from zero up."""
    series = {name: _drawable(points) for name, points in series.items()}
    values = [v for s in series.values() for v in s]
    if not labels or not any(values):
        return _empty(kind, title, series=",".join(series))
    top = max(values) or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = [_open(kind, title, len(values), series=",".join(series)), _legend(series),
             _y_axis(top), _x_axis(labels)]
    for i, (name, points) in enumerate(series.items()):
        coords = " ".join(
            f"{_num(LEFT + plot_w * (j + 0.5) / len(labels))},"
            f"{_num(TOP + plot_h * (1 - v / top))}" for j, v in enumerate(points))
        parts.append(f'<path class="series" d="M{coords.replace(" ", " L")}" fill="none" '
                     f'stroke="{PALETTE[i % len(PALETTE)]}" stroke-width="1.6">'
                     f"<title>{html_text(name)}</title></path>")
    return "".join(parts) + "</svg>"


def bar_chart(kind: str, title: str, labels: Sequence[str], values: Sequence[float],
              unit: str = "") -> str:
    """One bar per bucket; each bar's tooltip gives its label and value."""
    return stacked_bars(kind, title, labels, {title: values}, unit)


def stacked_bars(kind: str, title: str, labels: Sequence[str],
                 series: dict[str, Sequence[float]], unit: str = "") -> str:
    """Counts per bucket: one bar per bucket, the series stacked in it (a legend when
    more than one); each part's tooltip gives its series, label and value."""
    series = {name: _drawable(values) for name, values in series.items()}
    totals = [sum(column) for column in zip(*series.values())] if series else []
    if not labels or not any(totals):
        return _empty(kind, title, series=",".join(series))
    top = max(totals) or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / len(labels)
    drawn = sum(1 for values in series.values() for v in values if v)
    parts = [_open(kind, title, drawn, series=",".join(series)),
             _legend(series) if len(series) > 1 else "", _y_axis(top), _x_axis(labels)]
    base = [0.0] * len(labels)
    for colour, (name, values) in zip(cycle(PALETTE), series.items()):
        for i, value in enumerate(values):
            if value:
                h = max(1.0, plot_h * value / top)
                base[i] += h
                what = f"{name}, " if len(series) > 1 else ""
                parts.append(
                    f'<rect class="bar" x="{_num(LEFT + slot * i + slot * 0.1)}" '
                    f'y="{_num(TOP + plot_h - base[i])}" width="{_num(max(1.0, slot * 0.8))}" '
                    f'height="{_num(h)}" fill="{colour}"><title>{html_text(what)}'
                    f"{html_text(labels[i])}: {html_text(_short(value))}{html_text(unit)}"
                    "</title></rect>")
    return "".join(parts) + "</svg>"


def meter_chart(kind: str, title: str, rows: Sequence[tuple[str, float, str]]) -> str:
    """Horizontal bars of a fraction (0..1) each: (label, fraction, note)."""
    if not rows:
        return _empty(kind, title, height=60)
    height = 14 + 22 * len(rows)
    track = WIDTH - 180 - 150
    parts = [_open(kind, title, len(rows), height=height)]
    for i, (label, fraction, note) in enumerate(rows):
        y = 6 + 22 * i
        share = min(1.0, max(0.0, fraction))
        colour = "#b8475f" if share >= 0.95 else "#d9822b" if share >= 0.8 else PALETTE[2]
        parts.append(
            f'<text class="tick" x="174" y="{y + 12}" text-anchor="end">{html_text(label)}</text>'
            f'<rect class="track" x="180" y="{y}" width="{track}" height="16" fill="#e7ebf0"/>'
            f'<rect class="bar" x="180" y="{y}" width="{_num(max(1.0, track * share))}" '
            f'height="16" fill="{colour}"><title>{html_text(label)}: {share * 100:.0f}%'
            f"</title></rect>"
            f'<text class="tick" x="{186 + track}" y="{y + 12}">{share * 100:.0f}% '
            f"{html_text(note)}</text>")
    return "".join(parts) + "</svg>"


def state_timeline(title: str, start: float, end: float,
                   bands: Sequence[tuple[float, float, str]], exact: bool,
                   ticks: Sequence[float] = ()) -> str:
    """A Nova's states over [start, end), full width: one coloured band per (from, to,
    state), over faint lines at the time axis's `ticks` (time_axis draws their labels
    once, under every Nova's timeline)."""
    height = 26
    if not bands or end <= start:
        return _empty("states", title, height=height, width=WIDE, start=f"{start:.0f}",
                      end=f"{end:.0f}", klass="chart wide")
    parts = [_open("states", title, len(bands), width=WIDE, height=height, exact=int(exact),
                   start=f"{start:.0f}", end=f"{end:.0f}", klass="chart wide")]
    for t0, t1, state in bands:
        x0, x1 = _x_at(max(t0, start), start, end), _x_at(min(t1, end), start, end)
        parts.append(f'<rect class="band" data-state="{html_text(state)}" x="{_num(x0)}" y="4" '
                     f'width="{_num(max(0.5, x1 - x0))}" height="18" '
                     f'fill="{STATE_COLOURS.get(state, PALETTE[5])}"><title>'
                     f"{html_text(state)}</title></rect>")
    parts += [f'<line class="grid" x1="{_num(_x_at(t, start, end))}" y1="2" '
              f'x2="{_num(_x_at(t, start, end))}" y2="{height - 2}"/>' for t in ticks]
    return "".join(parts) + "</svg>"


def _x_at(ts: float, start: float, end: float) -> float:
    """Where time `ts` of [start, end) lies across a full-width chart."""
    return LEFT + (WIDE - LEFT - RIGHT) * (ts - start) / (end - start)


def time_axis(title: str, start: float, end: float,
              ticks: Sequence[tuple[float, str, str]]) -> str:
    """The time axis the state timelines share, as wide as they are: each tick (time,
    label, second line) marked and labelled."""
    height = 34
    parts = [_open("time-axis", title, len(ticks), width=WIDE, height=height,
                   start=f"{start:.0f}", end=f"{end:.0f}", klass="chart wide"),
             f'<line class="axis" x1="{LEFT}" y1="2" x2="{WIDE - RIGHT}" y2="2"/>']
    for ts, label, below in ticks:
        x = _num(_x_at(ts, start, end))
        parts.append(f'<line class="axis mark" x1="{x}" y1="2" x2="{x}" y2="7"/>'
                     f'<text class="tick" x="{x}" y="18" text-anchor="middle">'
                     f'{html_text(label)}</text><text class="tick sub" x="{x}" y="30" '
                     f'text-anchor="middle">{html_text(below)}</text>')
    return "".join(parts) + "</svg>"


def state_legend() -> str:
    return "".join(f'<span class="swatch" style="background:{colour}"></span>'
                   f"{html_text(state)} " for state, colour in STATE_COLOURS.items())


def score_gauge(title: str, score: float | None) -> str:
    """A half ring filled to the score (0-100)."""
    if score is None:
        return _empty("score", title, height=60)
    share = min(1.0, max(0.0, score / 100))
    colour = "#b8475f" if score < 50 else "#d9822b" if score < 80 else PALETTE[2]
    # the arc from the left end of the half ring, clockwise, to the score's angle
    angle = math.pi * (1 - share)
    x, y = 60 + 48 * math.cos(angle), 60 - 48 * math.sin(angle)
    return (_open("score", title, 1, width=120, height=70)
            + '<path class="track" d="M12,60 A48,48 0 0 1 108,60" fill="none" '
            'stroke="#e7ebf0" stroke-width="10"/>'
            f'<path class="arc" d="M12,60 A48,48 0 0 1 {_num(x)},{_num(y)}" fill="none" '
            f'stroke="{colour}" stroke-width="10"/>'
            f'<text class="score" x="60" y="58" text-anchor="middle">{score:g}</text></svg>')
