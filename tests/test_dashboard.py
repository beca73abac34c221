"""`torchsm dashboard`: one self-contained HTML page whose SVG charts a real browser
(headless Chromium) lays out and draws; an empty home; escaping; no network."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from dream_support import DAY, T0, History
from torchsm import novas
from torchsm.alerts import account_alert
from torchsm.config import Config
from torchsm.agent.log import log_path
from torchsm.observe.dashboard import render
from torchsm.observe.series import TRANSITIONS_CAP
from torchsm.storage import store

CONFIG = Config(redis_url="off")
EVIL = "<script>alert('x')</script>"
CHARTS = ("score", "states", "time-axis", "queue-depth", "queue-age", "items", "hooks",
          "sessions", "cost", "cooldowns", "usage")
COUNTS = ("items", "hooks", "sessions", "cooldowns")  # counts per bucket: drawn as bars
SECTIONS = ("health", "novas", "alerts", "states", "activity", "sessions", "queue", "logs",
            "usage")
HOSTILE_LOG = "<script>alert(1)</script>"


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing (scripts/test installs it)")
        pytest.skip("chromium is not installed (scripts/test installs it)")
    return found


# Appended to a copy of the page (the page itself has no script): what the browser drew,
# per chart, as the boxes of its shapes after layout.
PROBE = """<script>
const out = {};
for (const svg of document.querySelectorAll('svg[data-chart]')) {
  const kind = svg.dataset.chart;
  const shapes = [...svg.querySelectorAll('.bar, .band, .series, .arc, .mark')];
  const drawn = shapes.filter(s => { const b = s.getBBox(); return b.width > 0 || b.height > 0; });
  const box = svg.getBoundingClientRect();
  const seen = out[kind] || {charts: 0, drawn: 0, visible: 0};
  seen.charts += 1; seen.drawn += drawn.length;
  seen.visible += (box.width > 0 && box.height > 0) ? 1 : 0;
  out[kind] = seen;
}
const boxes = sel => [...document.querySelectorAll(sel)].map(e => {
  const b = e.getBoundingClientRect(); return [Math.round(b.left), Math.round(b.width)]; });
out.__page = {
  sections: [...document.querySelectorAll('section[id]')].map(s => s.id),
  timelines: boxes('svg[data-chart="states"]'), axis: boxes('svg[data-chart="time-axis"]'),
  ticks: [...document.querySelectorAll('svg[data-chart="time-axis"] text.tick')].map(
    t => t.textContent),
  counts: Object.fromEntries(['items', 'hooks', 'sessions', 'cooldowns'].map(k => [k, {
    bars: document.querySelectorAll(`svg[data-chart="${k}"] rect.bar`).length,
    paths: document.querySelectorAll(`svg[data-chart="${k}"] path`).length}])),
  log: [...document.querySelectorAll('#logs pre')].map(p => p.textContent).join(' '),
  scripts: document.scripts.length,
  width: document.documentElement.scrollWidth, viewport: window.innerWidth};
const pre = document.createElement('pre'); pre.id = 'drawn';
pre.textContent = JSON.stringify(out); document.body.appendChild(pre);
</script>"""


def headless(folder: Path, *args: str) -> subprocess.CompletedProcess:
    argv = [chromium(), "--headless=new", "--disable-gpu", "--no-first-run",
            "--hide-scrollbars", f"--user-data-dir={folder / 'profile'}", *args]
    if os.geteuid() == 0:
        argv.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def drawn_by_chromium(page: str, folder: Path, width: int = 1280) -> dict:
    """Chromium lays the page out (`width` CSS pixels wide) and reports each chart's
    drawn shapes, and under `__page` the page's structure as laid out."""
    path = folder / "probe.html"
    path.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    done = headless(folder, f"--window-size={width},2000", "--dump-dom", path.as_uri())
    found = re.search(r'<pre id="drawn">(.*?)</pre>', done.stdout, re.S)
    assert found, done.stdout[-2000:]
    return json.loads(html.unescape(found.group(1)))


def screenshot(page: str, folder: Path, width: int) -> Path:
    """A PNG of the page as Chromium draws it `width` pixels wide (kept in the test's tmp
    folder, for a person to look at; never committed)."""
    path, shot = folder / f"page-{width}.html", folder / f"dashboard-{width}.png"
    path.write_text(page, encoding="utf-8")
    headless(folder, f"--window-size={width},3000", f"--screenshot={shot}", path.as_uri())
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    return shot


@pytest.fixture
def busy(home):
    """Two Novas a day into their work: transitions, items, hooks, sessions, a usage
    window and an open alert."""
    novas.add(home, CONFIG, "torch", now=T0 - 2 * DAY)
    novas.add(home, CONFIG, "echo", now=T0 - 2 * DAY)
    h = History(home)
    for i in range(12):
        at = T0 - DAY + 600 + i * 7000
        h.transition(at, ("cool", "work", "dream", "work")[i % 4], reason=f"step {i}")
        h.hook_run(at + 5)
        h.hook_run(at + 6, event="pre-tool-use")
        h.session(at + 10, cost=0.05 * (i + 1))
        h.item(at, status="done" if i % 3 else "pending", finished=at + 900 if i % 3 else None,
               attempts=1 if i % 3 else 0)
    h.transition(T0 - 60, "meditate", reason=EVIL, until=T0 + 1800)
    h.conn.execute("UPDATE novas SET state = 'meditating', reason = ? WHERE name = 'torch'",
                   (EVIL,))
    h.window("five_hour", utilization=0.9, resets_at=T0 + 3600, at=T0 - 10)
    h.window(EVIL, utilization=0.3, resets_at=T0 + 7 * DAY, at=T0 - 10)
    h.close()
    with store.open_store(home) as db:
        db.write(lambda conn: account_alert.raise_for(conn, nova="torch", at=T0 - 30, kind="account",
                                               message=f"billing failed {EVIL}"))
        db.write(lambda conn: account_alert.raise_for(conn, nova="echo", at=T0 - 9000,
                                                      kind="account", message="was down"))
        db.write(lambda conn: conn.execute("UPDATE alerts SET resolved_at = ? WHERE nova = 'echo'",
                                           (T0 - 8000,)))
    write_log(home, "torch", [f"line {i}" for i in range(40)] + [HOSTILE_LOG, "cls \x1b[2J"])
    return home


def write_log(home, name: str, lines: list[str]) -> None:
    home.log_dir.mkdir(exist_ok=True)
    log_path(home, name).write_text("".join(f"{line}\n" for line in lines))


def test_chromium_draws_every_chart(busy, tmp_path):
    page = render(busy, CONFIG, T0)
    drawn = drawn_by_chromium(page, tmp_path)
    drawn.pop("__page")
    assert set(drawn) == set(CHARTS)
    for kind in CHARTS:
        assert drawn[kind]["visible"] == drawn[kind]["charts"], kind
        assert drawn[kind]["drawn"] > 0, (kind, drawn[kind])
    assert drawn["states"]["charts"] == 2  # one timeline per Nova
    assert drawn["score"]["charts"] == 3  # the home's and each Nova's
    assert drawn["time-axis"]["charts"] == 1


def test_chromium_lays_out_the_sections_a_timeline_per_nova_and_bars(busy, tmp_path):
    """The structure as Chromium lays it out: every section, one full-width timeline per
    Nova over the one time axis (same left edge, same width), counts drawn as bars (no
    path), the log tail shown as text (no script ran from it); and screenshots."""
    page = render(busy, CONFIG, T0)
    laid_out = drawn_by_chromium(page, tmp_path)["__page"]
    assert laid_out["sections"] == list(SECTIONS)
    assert len(laid_out["timelines"]) == 2 and len(laid_out["axis"]) == 1
    assert {tuple(box) for box in laid_out["timelines"]} == {tuple(laid_out["axis"][0])}
    assert laid_out["axis"][0][1] > 1000  # full width of a 1280-pixel window
    assert len(laid_out["ticks"]) >= 4
    for kind in COUNTS:
        assert laid_out["counts"][kind]["paths"] == 0, kind
        assert laid_out["counts"][kind]["bars"] > 0, kind
    assert HOSTILE_LOG in laid_out["log"] and "\\x1b[2J" in laid_out["log"]
    assert laid_out["scripts"] == 1  # the probe's own
    screenshot(page, tmp_path, 1280)


def test_chromium_fits_the_page_to_a_phone(busy, tmp_path):
    """Narrow: the page's own layout (headless Chromium lays out at least 500 pixels)."""
    page = render(busy, CONFIG, T0)
    laid_out = drawn_by_chromium(page, tmp_path, width=390)["__page"]
    assert laid_out["viewport"] < 700  # the narrow layout's media query applies
    assert laid_out["width"] <= laid_out["viewport"]  # no sideways scrolling of the page
    assert laid_out["axis"][0][1] < laid_out["viewport"]
    screenshot(page, tmp_path, 390)


def test_every_chart_says_what_it_holds(busy):
    page = render(busy, CONFIG, T0)
    svgs = re.findall(r"<svg [^>]*>", page)
    assert len(svgs) >= len(CHARTS)
    for tag in svgs:
        assert 'role="img"' in tag and "aria-label=" in tag and "data-points=" in tag
    assert page.count("<title>") > len(svgs)
    points = dict(re.findall(r'data-chart="(hooks|sessions)" data-points="(\d+)"', page))
    assert int(points["sessions"]) == 12  # 12 sessions in 12 different hours
    assert 'data-state="meditating"' in page and 'data-state="dreaming"' in page


def svg_tag(page: str, kind: str) -> list[str]:
    return re.findall(rf'<svg [^>]*data-chart="{kind}"[^>]*>', page)


def section(page: str, name: str) -> str:
    found = re.search(rf'<section id="{name}">(.*?)</section>', page, re.S)
    assert found, name
    return found.group(1)


@pytest.mark.parametrize(("age_s", "drawn_s", "words"), [
    (3 * 3600, 3 * 3600, "the last 3 h (the home's age)"),
    (600, 3600, "the last 1 h"),
    (3 * DAY, DAY, "the last 24 h"),
])
def test_the_window_is_the_homes_age_between_one_hour_and_a_day(home, age_s, drawn_s, words):
    """A home younger than a day is drawn over its age, not as a sliver at the right edge
    of 24 hours; never less than an hour; the header says which window it is."""
    novas.add(home, CONFIG, "torch", now=T0 - age_s)
    page = render(home, CONFIG, T0)
    axis = svg_tag(page, "time-axis")[0]
    assert f'data-start="{T0 - drawn_s:.0f}"' in axis and f'data-end="{T0:.0f}"' in axis
    assert words in re.search(r"<header>.*?</header>", page, re.S).group()


def test_the_window_counts_history_and_sessions_older_than_the_nova_row(home):
    """A Nova re-added keeps nothing, but an imported history or session may be older than
    the row: the home's age is the oldest of the three."""
    novas.add(home, CONFIG, "torch", now=T0 - 3600)
    h = History(home)
    h.session(T0 - 5 * 3600)
    h.transition(T0 - 4 * 3600, "cool")
    h.close()
    assert f'data-start="{T0 - 5 * 3600:.0f}"' in svg_tag(render(home, CONFIG, T0), "time-axis")[0]


def test_a_window_given_is_drawn_as_given(home):
    novas.add(home, CONFIG, "torch", now=T0 - 600)
    page = render(home, CONFIG, T0, 7 * DAY)
    assert f'data-start="{T0 - 7 * DAY:.0f}"' in svg_tag(page, "time-axis")[0]
    assert "the last 7 d" in page


def test_counts_per_bucket_are_bars(busy):
    page = render(busy, CONFIG, T0)
    for kind in COUNTS:
        chart = re.search(rf'<svg [^>]*data-chart="{kind}".*?</svg>', page, re.S).group()
        assert 'class="bar"' in chart and "<path" not in chart, kind


def test_every_timeline_shares_the_one_time_axis(busy):
    page = render(busy, CONFIG, T0)
    lines, axis = svg_tag(page, "states"), svg_tag(page, "time-axis")
    assert len(lines) == 2 and len(axis) == 1
    frame = re.compile(r'viewBox="0 0 \d+|data-start="[^"]*"|data-end="[^"]*"')
    assert {tuple(frame.findall(tag)) for tag in lines} == {tuple(frame.findall(axis[0]))}
    axis_svg = re.search(r'<svg [^>]*data-chart="time-axis".*?</svg>', page, re.S).group()
    assert re.search(r">\d\d:\d\d<", axis_svg) and "h ago<" in axis_svg


def test_recent_sessions_are_listed_newest_first(busy):
    with store.open_store(busy) as db:
        db.write(lambda conn: conn.execute(
            "UPDATE sessions SET item_id = 77, input_tokens = 1234, output_tokens = 56"
            " WHERE id = (SELECT max(id) FROM sessions)"))
    h = History(busy, "echo")
    for i in range(25):  # echo's older sessions, and its one newest of all
        h.session(T0 - 3 * DAY + i, cost=0.01)
    h.session(T0 - 30, cost=0.01)
    h.close()
    rows = re.findall(r"<tr>(.*?)</tr>", section(render(busy, CONFIG, T0), "sessions"))
    assert len(rows) == 1 + 20  # the header and the latest 20 of every Nova's
    assert ">echo<" in rows[1] and all(">torch<" in row for row in rows[2:14])
    assert all(">echo<" in row for row in rows[14:])
    newest = rows[2]
    assert ">torch<" in newest and ">77<" in newest and ">ok<" in newest
    assert ">1 min<" in newest and "$0.6" in newest and "1234 in / 56 out" in newest


def test_the_queue_lists_open_items_oldest_first_with_tier_and_age(home):
    novas.add(home, CONFIG, "torch", now=T0 - DAY)
    h = History(home)
    h.item(T0 - 3 * 3600, text="older", priority="low")
    h.item(T0 - 600, text="newer", priority="critical")
    h.item(T0 - 7200, text="finished", status="done", finished=T0 - 60, attempts=1)
    h.close()
    queue = section(render(home, CONFIG, T0), "queue")
    assert queue.index("older") < queue.index("newer") and "finished" not in queue
    assert ">low<" in queue and ">critical<" in queue
    assert ">3 h<" in queue and ">10 min<" in queue


def test_each_novas_log_tail_is_shown_escaped(busy):
    logs = section(render(busy, CONFIG, T0), "logs")
    assert HOSTILE_LOG not in logs and "&lt;script&gt;alert(1)&lt;/script&gt;" in logs
    assert "\x1b" not in logs and "cls \\x1b[2J" in logs
    assert "line 39" in logs and "line 21" not in logs  # the last 20 lines
    assert "<h3>echo</h3>" in logs and "no log yet" in logs


def test_alerts_open_and_resolved_are_listed(busy):
    alerts = section(render(busy, CONFIG, T0), "alerts")
    assert "billing failed" in alerts and "was down" in alerts
    assert ">open<" in alerts and ">resolved" in alerts


def test_each_status_row_says_what_status_says(busy):
    from torchsm.observe.nova_status import status_rows

    novas_part = section(render(busy, CONFIG, T0), "novas")
    for row in status_rows(busy, CONFIG, now=T0):
        assert html.escape(row["why"]) in novas_part


def test_the_page_needs_no_network(busy):
    page = render(busy, CONFIG, T0)
    assert not re.search(r"https?://|(?:src|href)\s*=\s*[\"']?//", page, re.I)
    assert "<script" not in page.lower() and "@import" not in page
    assert '<meta http-equiv="refresh"' not in page  # only when served
    assert '<meta http-equiv="refresh" content="30">' in render(busy, CONFIG, T0, refresh_s=30)


def test_stored_texts_are_escaped(busy):
    page = render(busy, CONFIG, T0)
    assert EVIL not in page
    escaped = "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;"
    assert page.count(escaped) >= 3  # the Nova's reason, the alert, the window's name


def test_stored_texts_cannot_reorder_or_hide_the_page(busy):
    """A bidi override or a zero-width character in stored text reorders or hides a page
    as it does a terminal: shown as an escape, like the CLI shows it (issue 20)."""
    with store.open_store(busy) as db:
        db.write(lambda conn: account_alert.raise_for(conn, nova="echo", at=T0 - 20, kind="account",
                                               message="ok\u202egnp.exe\u200b \x1b[2J"))
    page = render(busy, CONFIG, T0)
    assert not any(c in page for c in "\u202e\u200b\x1b"), "raw"
    assert "ok\\u202egnp.exe\\u200b \\x1b[2J" in page


def test_a_home_without_novas_is_an_empty_state(home):
    page = render(home, CONFIG, T0)
    assert "No Novas yet" in page and page.rstrip().endswith("</html>")


def test_novas_without_history_draw_empty_charts(home, tmp_path):
    novas.add(home, CONFIG, "torch", now=T0 - 3 * DAY)
    page = render(home, CONFIG, T0)
    assert page.count("nothing in the window") >= 5
    points = re.findall(r'data-chart="(?!states|score|time-axis)[a-z-]+" data-points="(\d+)"', page)
    assert points and set(points) == {"0"}
    # the state timeline still shows the one state the Nova has been in all along
    assert re.search(r'data-chart="states" data-points="1"', page)


def test_many_transitions_are_drawn_per_slot(home):
    novas.add(home, CONFIG, "torch", now=T0 - 3 * DAY)
    h = History(home)
    h.conn.executemany(
        "INSERT INTO history (nova_id, from_state, to_state, event, at, forced, limit_hold)"
        " VALUES (?, 'working', ?, 'cool', ?, 0, 0)",
        [(h.nova_id, ("cooling", "working")[i % 2], T0 - DAY + i * 10)
         for i in range(TRANSITIONS_CAP + 500)])
    h.close()
    page = render(home, CONFIG, T0)
    tag = re.search(r'<svg [^>]*data-chart="states"[^>]*>', page).group()
    assert 'data-exact="0"' in tag
    assert 0 < int(re.search(r'data-points="(\d+)"', tag).group(1)) <= 320


def test_cli_writes_the_page_atomically_and_prints_its_path(cli, busy, tmp_path):
    out = tmp_path / "page.html"
    result = cli("dashboard", "--out", str(out))
    assert result.out == f"{out}\n"
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    assert cli("dashboard", "--out", str(out), "--json").json() == {"path": str(out)}
    assert cli("dashboard", "--out", "-", "--since", "2d").out.startswith("<!DOCTYPE html>")


def test_cli_draws_local_time_unless_utc(cli, busy):
    local = cli("dashboard", "--out", "-", TZ="Asia/Kolkata").out
    assert "+0530" in local and "UTC" not in re.search(r"<header>.*?</header>", local, re.S).group()
    utc = cli("dashboard", "--out", "-", "--utc", TZ="Asia/Kolkata").out
    assert "UTC" in re.search(r"<header>.*?</header>", utc, re.S).group() and "+0530" not in utc


def test_cli_without_a_home_is_one_line(bare_cli, tmp_path):
    assert bare_cli.fails("dashboard", "--out", str(tmp_path / "p.html")).err == (
        f"torchsm: error: no torchsm home at {bare_cli.home}: run `torchsm init`\n")
    assert not (tmp_path / "p.html").exists()


def test_cli_bad_input_is_one_line(cli, tmp_path):
    assert cli.fails("dashboard", "--since", "soon", code=2).err.endswith(
        "Error: Invalid value for '--since': bad duration 'soon': use a positive number with s,"
        " m, h or d (e.g. 30m, 6h, 2d), at most 3650d\n")
    err = cli.fails("dashboard", "--out", str(tmp_path / "missing" / "p.html")).err
    assert err.startswith("torchsm: error: cannot write ") and err.count("\n") == 1
