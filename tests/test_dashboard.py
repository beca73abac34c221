"""`torchsm dashboard`: one self-contained HTML page whose SVG charts a real browser
(headless Chromium) lays out and draws; an empty home; escaping; no network."""

from __future__ import annotations

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
from torchsm.observe.dashboard import render
from torchsm.observe.series import TRANSITIONS_CAP
from torchsm.storage import store

CONFIG = Config(redis_url="off")
EVIL = "<script>alert('x')</script>"
CHARTS = ("score", "states", "queue-depth", "queue-age", "hooks", "sessions", "cost",
          "cooldowns", "usage")


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
  const shapes = [...svg.querySelectorAll('.bar, .band, .series, .arc')];
  const drawn = shapes.filter(s => { const b = s.getBBox(); return b.width > 0 || b.height > 0; });
  const box = svg.getBoundingClientRect();
  const seen = out[kind] || {charts: 0, drawn: 0, visible: 0};
  seen.charts += 1; seen.drawn += drawn.length;
  seen.visible += (box.width > 0 && box.height > 0) ? 1 : 0;
  out[kind] = seen;
}
const pre = document.createElement('pre'); pre.id = 'drawn';
pre.textContent = JSON.stringify(out); document.body.appendChild(pre);
</script>"""


def drawn_by_chromium(page: str, folder: Path) -> dict:
    """Chromium lays the page out and reports each chart's drawn shapes."""
    path = folder / "probe.html"
    path.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    argv = [chromium(), "--headless=new", "--disable-gpu", "--no-first-run",
            f"--user-data-dir={folder / 'profile'}", "--dump-dom", path.as_uri()]
    if os.geteuid() == 0:
        argv.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-2000:]
    found = re.search(r'<pre id="drawn">(.*?)</pre>', done.stdout, re.S)
    assert found, done.stdout[-2000:]
    return json.loads(found.group(1).replace("&quot;", '"'))


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
    return home


def test_chromium_draws_every_chart(busy, tmp_path):
    page = render(busy, CONFIG, T0)
    drawn = drawn_by_chromium(page, tmp_path)
    assert set(drawn) == set(CHARTS)
    for kind in CHARTS:
        assert drawn[kind]["visible"] == drawn[kind]["charts"], kind
        assert drawn[kind]["drawn"] > 0, (kind, drawn[kind])
    assert drawn["states"]["charts"] == 2  # one timeline per Nova
    assert drawn["score"]["charts"] == 3  # the home's and each Nova's


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
    points = re.findall(r'data-chart="(?!states|score)[a-z-]+" data-points="(\d+)"', page)
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
