"""`torchsm dashboard` over a large home (issue 16; target: under two seconds over a home
of 1,000,000 history rows).

Builds a home whose `history` table holds HISTORY rows over 90 days, with the other
tables in the proportions of tests/dream_support.fill (sessions, hook runs, work items,
wake signals and messages of two Novas), then times, interleaved with the foundation's
baseline (python + sqlite3 + one UPDATE), whole processes from a regular install:
`torchsm dashboard --out FILE` over 24 hours (the default), 7 and 30 days. Also, in-process,
the dashboard's own chart queries (`series.read_charts`, without the health score that
`torchsm metrics` measures) over 24 hours, 7 and 30 days. Prints Markdown tables for
BENCHMARKS.md.

    .venv/bin/python bench/bench_dashboard.py [--history 1000000] [--rounds 7]
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from bench_cli import BASELINE  # noqa: E402
from big_home import BASE, DAY, arguments, build, described  # noqa: E402
from common import interleaved, machine, median_ms  # noqa: E402
from dream_support import T0  # noqa: E402
from torchsm.config import Config, Home  # noqa: E402
from torchsm.observe import series  # noqa: E402
from torchsm.storage import store  # noqa: E402


def main() -> None:
    args, bin_dir = arguments(__doc__.splitlines()[0])
    folder = Path(tempfile.mkdtemp(prefix="torchsm-bench-dashboard-"))
    try:
        home, config, built = build(folder, args.history)
        charts = {days: in_process(home, config, days, args.rounds) for days in (1, 7, 30)}
        whole = whole_processes(home, bin_dir, folder, args.rounds)
        home_is = described(home, built)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"# {machine()}")
    print(f"{home_is}\n")
    print("| in-process `series.read_charts`, two Novas | median ms | max ms |")
    print("|---|---|---|")
    for days, took in charts.items():
        print(f"| {days} day{'s' if days > 1 else ''} | {statistics.median(took) * 1000:.0f} |"
              f" {max(took) * 1000:.0f} |")
    base = median_ms(whole[BASE])
    print("\n| process | median ms | max ms | ratio to baseline | target |")
    print("|---|---|---|---|---|")
    for name, values in whole.items():
        print(f"| {name} | {median_ms(values):.1f} | {max(values) * 1000:.1f} | "
              f"{median_ms(values) / base:.2f}x | {'' if name == BASE else '< 2000 ms'} |")


def in_process(home: Home, config: Config, days: int, rounds: int) -> list[float]:
    """The chart queries alone, in the middle of the filled 90 days."""
    now = T0 - 30 * DAY
    b = series.buckets_for(now - days * DAY, now)
    took = []
    with store.open_store(home) as s:
        rows = s.read(store.load_novas)
        for _ in range(rounds):
            started = time.perf_counter()
            s.read(lambda conn: series.read_charts(conn, rows, b, now))
            took.append(time.perf_counter() - started)
    return took


def whole_processes(home: Home, bin_dir: Path, folder: Path,
                    rounds: int) -> dict[str, list[float]]:
    # the processes run at the real time, which lies inside the filled 90 days
    torchsm = str(bin_dir / "torchsm")
    env = {**os.environ, "TORCHSM_HOME": str(home.path), "TORCHSM_REDIS_URL": "off"}
    page = str(folder / "dashboard.html")
    cases = {
        BASE: [str(bin_dir / "python"), "-c", BASELINE, str(home.db_path)],
        "torchsm dashboard --out FILE (24 h)": [torchsm, "dashboard", "--out", page],
        "torchsm dashboard --out FILE --since 7d": [torchsm, "dashboard", "--out", page,
                                                    "--since", "7d"],
        "torchsm dashboard --out FILE --since 30d": [torchsm, "dashboard", "--out", page,
                                                     "--since", "30d"],
    }
    timings = interleaved(cases, env, rounds)
    if not Path(page).stat().st_size:
        raise SystemExit("bench_dashboard: the page is empty")
    return timings


if __name__ == "__main__":
    main()
