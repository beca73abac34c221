"""What migration 0010's wider indexes cost a write on the hook path: `torchsm hook
pre-tool-use` / `post-tool-use` (a `hook_runs` row) and `torchsm transition` (a `history`
row), in one interleaved run over two homes that differ in those indexes only.

Both homes are built alike (schema 0010, then tests/dream_support.fill: HISTORY history
rows among 2.86 times as many rows over 90 days); in the "narrow" one the three widened
indexes are put back to their 0009 columns, under the same names. The same install runs
every case, so the difference is the indexes. Prints a Markdown table for BENCHMARKS.md:
each case's median, its ratio to the baseline of its home, and wide / narrow.

    .venv/bin/python bench/bench_index_writes.py [--history 1000000] [--rounds 40]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from bench_cli import BASELINE  # noqa: E402
from bench_hooks import PAYLOAD, timed  # noqa: E402
from common import machine, median_ms, regular_install  # noqa: E402
from dream_support import T0, fill  # noqa: E402
from torchsm import novas
from torchsm.config import Config, Home  # noqa: E402
from torchsm.storage import database

NARROW = {"ix_history_nova_at": "history (nova_id, at)",
          "ix_sessions_nova_started": "sessions (nova_id, started_at)",
          "ix_hook_runs_nova_event_at": "hook_runs (nova_id, event, at)"}
HISTORY_SHARE = 0.35


def build(folder: Path, rows: int, narrow: bool) -> Home:
    home = Home(folder)
    database.initialise(home)
    if narrow:
        conn = sqlite3.connect(home.db_path)
        for name, columns in NARROW.items():
            conn.execute(f"DROP INDEX {name}")
            conn.execute(f"CREATE INDEX {name} ON {columns}")
        conn.commit()
        conn.close()
    novas.add(home, Config(redis_url="off"), "torch", now=T0 - 400 * 86400)
    fill(home, rows)
    (folder / "torchsm.toml").write_text("[safety]\nhook_burst = 1000000\n"
                                         "[supervisor]\nmax_continuations = 1000000\n")
    return home


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--venv", type=Path,
                        default=Path(tempfile.gettempdir()) / "torchsm-bench-venv")
    args = parser.parse_args()
    bin_dir = regular_install(args.venv)
    torchsm = str(bin_dir / "torchsm")
    folder = Path(tempfile.mkdtemp(prefix="torchsm-bench-index-writes-"))
    stdin = json.dumps(PAYLOAD).encode()
    try:
        homes = {kind: build(folder / kind, round(args.history / HISTORY_SHARE),
                             kind == "narrow") for kind in ("narrow", "wide")}
        cases = {}
        for kind, home in homes.items():
            env = {**os.environ, "TORCHSM_HOME": str(home.path), "TORCHSM_REDIS_URL": "off"}
            cases[(kind, "baseline")] = ([str(bin_dir / "python"), "-c", BASELINE,
                                          str(home.db_path)], env)
            for event in ("pre-tool-use", "post-tool-use"):
                cases[(kind, f"hook {event}")] = ([torchsm, "hook", event, "--nova", "torch"],
                                                  env)
            cases[(kind, "transition torch cool")] = ([torchsm, "transition", "torch", "cool",
                                                       "--for", "1"], env)
        timings: dict[tuple[str, str], list[float]] = {key: [] for key in cases}
        for _ in range(args.rounds):
            for key, (argv, env) in cases.items():
                timings[key].append(timed(argv, env, stdin))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"# index write cost, {time.strftime('%Y-%m-%d')}, {args.rounds} interleaved rounds,"
          f" homes of {args.history:,} history rows")
    print(f"# {machine()}\n")
    print("| process | narrow (0009) median ms | ratio | wide (0010) median ms | ratio |"
          " wide / narrow |")
    print("|---|---|---|---|---|---|")
    names = [name for kind, name in cases if kind == "narrow"]
    base = {kind: median_ms(timings[(kind, "baseline")]) for kind in homes}
    for name in names:
        n, w = median_ms(timings[("narrow", name)]), median_ms(timings[("wide", name)])
        print(f"| {name} | {n:.1f} | {n / base['narrow']:.2f}x | {w:.1f} | "
              f"{w / base['wide']:.2f}x | {w / n:.3f} |")


if __name__ == "__main__":
    main()
