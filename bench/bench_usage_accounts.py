"""How much of each usage window torchsm uses, and how many requests it sends into an
exhausted one: the end-to-end runs of issue 13, repeated.

The real Claude Code (the pinned one scripts/test installs into .e2e/) in subscription
mode, hooks installed, each Nova under its own `torchsm run`, against a stand-in account
whose window lasts W seconds and allows N requests from every client together:
(a) one Nova, W = 15, N = 6; (b) three Novas on one account, W = 15, N = 9; each for 48 s
with 100 items per Nova.

    .venv/bin/python bench/bench_usage_accounts.py [--runs 3] [--seconds 48]

Prints Markdown for BENCHMARKS.md: per run, each whole window's requests used of N, the
requests refused, and how long after a reset the first request came (reset_margin_s = 1).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests" / "e2e")]
from common import machine  # noqa: E402

from account_runs import Plan, play  # noqa: E402

CLAUDE = HERE.parent / ".e2e" / "node_modules" / ".bin" / "claude"
SCENARIOS = {
    "(a) one Nova, W 15 s, N 6": ({"torch": "default"}, 6),
    "(b) three Novas, one account, W 15 s, N 9": (
        {"n1": "default", "n2": "default", "n3": "default"}, 9),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=48)
    args = parser.parse_args()
    version = (HERE.parent / "tests" / "e2e" / "CLAUDE_CODE_VERSION").read_text().strip()
    print(f"### Usage windows used, end to end ({dt.date.today()}, {machine()}, "
          f"Claude Code {version})\n")
    print("| scenario | run | whole windows: requests used of N | share used (min) | refused "
          "| first request after a reset (max) |")
    print("|---|---|---|---|---|---|")
    for name, (novas, allowance) in SCENARIOS.items():
        for run in range(1, args.runs + 1):
            work = Path(tempfile.mkdtemp(prefix="torchsm-bench-accounts-"))
            played = play(Plan(novas, 15, {"default": allowance}, run_s=args.seconds),
                          work / "home", CLAUDE, work)
            whole = played.whole("default")
            used = ", ".join(f"{w['used']}/{allowance}" for w in whole)
            least = min((w["share"] for w in whole), default=0.0)
            restart = max(played.restarts("default"), default=float("nan"))
            print(f"| {name} | {run} | {used} | {least:.0%} | {played.refused('default')} "
                  f"| {restart:.1f} s |", flush=True)


if __name__ == "__main__":
    main()
