"""`torchsm metrics` over a large home (issue 16; target: under one second over a home of
1,000,000 history rows).

Builds a home whose `history` table holds HISTORY rows over 90 days, with the other
tables in the proportions of tests/dream_support.fill (sessions, hook runs, work items,
wake signals and messages of two Novas), then times, interleaved with the foundation's
baseline (python + sqlite3 + one UPDATE), whole processes from a regular install:
`torchsm metrics` in each format over 24 hours, and over 30 days (the window and the
window before it, at the real time: the label says how many of the 90 filled days they
hold). Also the in-process `health.measure` over 30 days in the middle of the 90 (60 full
days read: the worst case).
Prints Markdown tables for BENCHMARKS.md.

    .venv/bin/python bench/bench_metrics.py [--history 1000000] [--rounds 7]
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
from big_home import BASE, arguments, build, described  # noqa: E402
from common import interleaved, machine, median_ms  # noqa: E402
from dream_support import T0  # noqa: E402
from torchsm.config import Home  # noqa: E402
from torchsm.observe import health


def main() -> None:
    args, bin_dir = arguments(__doc__.splitlines()[0])
    folder = Path(tempfile.mkdtemp(prefix="torchsm-bench-metrics-"))
    try:
        home, config, built = build(folder, args.history)
        now = T0 - 30 * 86400  # the middle of the filled 90 days
        took = []
        for _ in range(args.rounds):
            started = time.perf_counter()
            health.measure(home, config, None, 30 * 86400, now)
            took.append(time.perf_counter() - started)
        whole = whole_processes(home, bin_dir, args.rounds)
        home_is = described(home, built)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"# {machine()}")
    print(f"{home_is}\n")
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
        f"torchsm metrics --since 30d ({_days_read(time.time()):.0f} of 90 days read)":
            [torchsm, "metrics", "--since", "30d"],
    }
    return interleaved(cases, env, rounds)


def _days_read(now: float) -> float:
    """The filled days a 30-day window and the one before it hold: the process runs at the
    real time, which moves against the filled 90 days (they end at T0)."""
    return max(0.0, min(now, T0) - max(now - 60 * 86400, T0 - 90 * 86400)) / 86400


if __name__ == "__main__":
    main()
