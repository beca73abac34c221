"""Inline SVG charts for the dashboard (torchsm.observe.dashboard), stdlib only, no script.

Each function returns one `<svg>` element with a `<title>`, an `aria-label` and data-*
attributes that say what it holds (`data-chart`, the kind; `data-points`, how many values
it drew), so a reader, a screen reader and a test can tell it was drawn. Every text that
reaches the page goes through `html_text` here (escaped, its controls and bidi
characters shown); callers pass plain strings.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

from torchsm.terminal import html_text

WIDTH, HEIGHT = 640, 160
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 10, 22  # the plot area's margins
PALETTE = ("#2a6fdb", "#d9822b", "#2e9e5b", "#b8475f", "#7a5cc4", "#6b7a8f")
STATE_COLOURS = {"working": "#2e9e5b", "cooling": "#2a6fdb", "meditating": "#7a5cc4",
                 "dreaming": "#d9a62b", "compacting": "#b8475f"}


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _open(kind: str, title: str, points: int, width: int = WIDTH, height: int = HEIGHT,
          **data: str) -> str:
    extra = "".join(f' data-{k.replace("_", "-")}="{html_text(str(v))}"' for k, v in data.items())
    return (f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" '
            f'height="{height}" role="img" aria-label="{html_text(title)}" '
            f'data-chart="{html_text(kind)}" data-points="{points}"{extra}>'
            f"<title>{html_text(title)}</title>")


def _empty(kind: str, title: str, height: int = HEIGHT, **data: str) -> str:
    return (_open(kind, title, 0, height=height, **data)
            + f'<text class="empty" x="{WIDTH / 2}" y="{height / 2}" text-anchor="middle">'
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
    values = _drawable(values)
    if not labels or not any(values):
        return _empty(kind, title)
    top = max(values) or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / len(labels)
    parts = [_open(kind, title, sum(1 for v in values if v)), _y_axis(top), _x_axis(labels)]
    for i, (label, value) in enumerate(zip(labels, values)):
        if not value:
            continue
        h = max(1.0, plot_h * value / top)
        parts.append(f'<rect class="bar" x="{_num(LEFT + slot * i + slot * 0.1)}" '
                     f'y="{_num(TOP + plot_h - h)}" width="{_num(max(1.0, slot * 0.8))}" '
                     f'height="{_num(h)}" fill="{PALETTE[0]}"><title>{html_text(label)}: '
                     f"{html_text(_short(value))}{html_text(unit)}</title></rect>")
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
                   bands: Sequence[tuple[float, float, str]], exact: bool) -> str:
    """A Nova's states over [start, end): one coloured band per (from, to, state)."""
    height = 34
    if not bands or end <= start:
        return _empty("states", title, height=height)
    plot_w = WIDTH - LEFT - RIGHT
    parts = [_open("states", title, len(bands), height=height, exact=int(exact))]
    for t0, t1, state in bands:
        x0 = LEFT + plot_w * (max(t0, start) - start) / (end - start)
        x1 = LEFT + plot_w * (min(t1, end) - start) / (end - start)
        parts.append(f'<rect class="band" data-state="{html_text(state)}" x="{_num(x0)}" y="4" '
                     f'width="{_num(max(0.5, x1 - x0))}" height="18" '
                     f'fill="{STATE_COLOURS.get(state, PALETTE[5])}"><title>'
                     f"{html_text(state)}</title></rect>")
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
