"""The Jepsen-style run of issue 23 (tests/cluster_jepsen.py) several times; prints a
Markdown table for BENCHMARKS.md (Reliability).

    .venv/bin/python bench/bench_cluster_jepsen.py [--runs 3] [--items 200] [--seed N]

Each run: a persistent redis-server on a free loopback port, hosts a, b, c (two
supervised Novas each, each host behind a TCP proxy of its own), the items, and a
nemesis that cuts b off and pauses c's supervisors past the lease, restarts the server
and kills a with -9. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

import cluster_jepsen  # noqa: E402

COLUMNS = ["run", "items", "runs", "stopped", "ran again after a done refused or never told",
           "takeovers after the kill (s)", "wall (s)", "problems"]


def row(number: int, outcome: cluster_jepsen.Outcome) -> list[str]:
    v = outcome.verdict
    takeovers = ", ".join(f"{s:.2f}" for s in v.takeovers.values()) or "none"
    problems = "; ".join(v.problems(outcome.final)) or "none"
    return [str(number), str(v.items), str(v.runs), str(sum(v.stopped.values())),
            str(sum(v.ran_again.values())), takeovers, f"{outcome.duration_s:.1f}", problems]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for number in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory(prefix="torchsm-jepsen-") as root:
            options = cluster_jepsen.Options(
                items=args.items, up_front=args.items * 17 // 20,
                seed=None if args.seed is None else args.seed + number)
            outcome = cluster_jepsen.run(Path(root), options)
        print("| " + " | ".join(row(number, outcome)) + " |", flush=True)


if __name__ == "__main__":
    main()
