"""`torchsm metrics` over a large home (issue 16; target: under one second over a home of
1,000,000 history rows).

Builds a home whose `history` table holds HISTORY rows over 90 days, with the other
tables in the proportions of tests/dream_support.fill (sessions, hook runs, work items,
wake signals and messages of two Novas), then times, interleaved with the foundation's
baseline (python + sqlite3 + one UPDATE), whole processes from a regular install:
`torchsm metrics` in each format over 24 hours, and over 30 days (the window and the
window before it: 60 of the 90 days). Also the in-process `health.measure` over 30 days.
Prints Markdown tables for BENCHMARKS.md.

    .venv/bin/python bench/bench_metrics.py [--history 1000000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from bench_cli import BASELINE  # noqa: E402
from common import interleaved, machine, median_ms, regular_install  # noqa: E402
from dream_support import T0, fill  # noqa: E402
from torchsm import db, health, novas  # noqa: E402
from torchsm.config import Config, Home  # noqa: E402

TABLES = ("history", "sessions", "hook_runs", "work_items", "wake_signals", "messages")
HISTORY_SHARE = 0.35  # of the rows dream_support.fill writes
BASE = "baseline: python + sqlite3 + one UPDATE"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--venv", type=Path,
                        default=Path(tempfile.gettempdir()) / "torchsm-bench-venv")
    args = parser.parse_args()
    bin_dir = regular_install(args.venv)
    config = Config(redis_url="off")
    folder = Path(tempfile.mkdtemp(prefix="torchsm-bench-metrics-"))
    try:
        home = Home(folder / "home")
        db.initialise(home)
        novas.add(home, config, "torch", now=T0 - 400 * 86400)
        started = time.perf_counter()
        fill(home, round(args.history / HISTORY_SHARE))
        built = time.perf_counter() - started
        now = T0 - 30 * 86400  # the middle of the filled 90 days
        took = []
        for _ in range(args.rounds):
            started = time.perf_counter()
            health.measure(home, config, None, 30 * 86400, now)
            took.append(time.perf_counter() - started)
        whole = whole_processes(home, bin_dir, args.rounds)
        counts = _counts(home)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"# {machine()}")
    print(f"home: {sum(counts.values()):,} rows ({', '.join(f'{t} {n:,}' for t, n in counts.items())}),"
          f" built in {built:.1f}s\n")
    print("| in-process `health.measure`, all Novas, 30 days | median ms | max ms |")
    print("|---|---|---|")
    print(f"| {args.rounds} rounds | {statistics.median(took) * 1000:.0f} | "
          f"{max(took) * 1000:.0f} |\n")
    base = median_ms(whole[BASE])
    print("| process | median ms | max ms | ratio to baseline | target |")
    print("|---|---|---|---|---|")
    for name, values in whole.items():
        print(f"| {name} | {median_ms(values):.1f} | {max(values) * 1000:.1f} | "
              f"{median_ms(values) / base:.2f}x | {'' if name == BASE else '< 1000 ms'} |")


def whole_processes(home: Home, bin_dir: Path, rounds: int) -> dict[str, list[float]]:
    torchsm = str(bin_dir / "torchsm")
    env = {**os.environ, "TORCHSM_HOME": str(home.path), "TORCHSM_REDIS_URL": "off"}
    cases = {
        BASE: [str(bin_dir / "python"), "-c", BASELINE, str(home.db_path)],
        "torchsm metrics (text, 24 h)": [torchsm, "metrics"],
        "torchsm metrics --json (24 h)": [torchsm, "metrics", "--json"],
        "torchsm metrics --format prometheus (24 h)": [torchsm, "metrics", "--format",
                                                       "prometheus"],
        "torchsm metrics --since 30d (60 of 90 days read)": [torchsm, "metrics", "--since",
                                                             "30d"],
    }
    return interleaved(cases, env, rounds)


def _counts(home: Home) -> dict[str, int]:
    conn = sqlite3.connect(home.db_path)
    try:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
    finally:
        conn.close()


if __name__ == "__main__":
    main()
