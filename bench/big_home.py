"""A home of a million history rows for the benchmarks of issue 16 (metrics, dashboard):
the command line they share, the home (tests/dream_support.fill: 90 days of two Novas,
`history` about 35 % of the rows), and its description for BENCHMARKS.md."""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from common import regular_install  # noqa: E402
from dream_support import T0, fill  # noqa: E402
from torchsm import novas
from torchsm.config import Config, Home  # noqa: E402
from torchsm.storage import database

TABLES = ("history", "sessions", "hook_runs", "work_items", "wake_signals", "messages")
HISTORY_SHARE = 0.35  # of the rows dream_support.fill writes
BASE = "baseline: python + sqlite3 + one UPDATE"
DAY = 86400.0


def arguments(description: str) -> tuple[argparse.Namespace, Path]:
    """--history, --rounds, --venv; and the bin/ folder of the regular install."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--history", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--venv", type=Path,
                        default=Path(tempfile.gettempdir()) / "torchsm-bench-venv")
    args = parser.parse_args()
    return args, regular_install(args.venv)


def build(folder: Path, history: int) -> tuple[Home, Config, float]:
    """The home in `folder`, with about `history` rows of `history`; seconds it took."""
    config = Config(redis_url="off")
    home = Home(folder / "home")
    database.initialise(home)
    novas.add(home, config, "torch", now=T0 - 400 * DAY)
    started = time.perf_counter()
    fill(home, round(history / HISTORY_SHARE))
    return home, config, time.perf_counter() - started


def described(home: Home, built_s: float) -> str:
    conn = sqlite3.connect(home.db_path)
    try:
        counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
    finally:
        conn.close()
    return (f"home: {sum(counts.values()):,} rows "
            f"({', '.join(f'{t} {n:,}' for t, n in counts.items())}), built in {built_s:.1f}s")
