"""Whole-process latency of `torchsm transition` and `torchsm status`, as ratios to a
baseline process that imports sqlite3 and does one UPDATE on the same database.

    .venv/bin/python bench/bench_cli.py [--rounds 40]

Cases run interleaved in one run; medians of every case. Target: transition <= 3x (issue 21; <= 5x before).
"""

from __future__ import annotations

import datetime as dt

from common import bench_setup, interleaved, machine, median_ms

BASELINE = ("import sqlite3, sys\n"
            "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "c.execute('BEGIN IMMEDIATE')\n"
            "c.execute('UPDATE novas SET reason = ? WHERE name = ?', ('bench', 'torch'))\n"
            "c.execute('COMMIT')\n")


def main() -> None:
    args, bin_dir, home, env = bench_setup(__doc__.split("\n\n")[0], "torchsm-bench-")
    torchsm = str(bin_dir / "torchsm")

    cases = {
        "baseline: python + sqlite3 + one UPDATE": [str(bin_dir / "python"), "-c", BASELINE,
                                                    str(home / "torchsm.db")],
        # cool re-arms from any state it reaches, so every run is a real, recorded transition
        "torchsm transition torch cool": [torchsm, "transition", "torch", "cool", "--for", "1"],
        "torchsm status": [torchsm, "status"],
        "torchsm --version (click only)": [torchsm, "--version"],
    }
    timings = interleaved(cases, env, args.rounds)
    base = median_ms(timings[next(iter(cases))])
    print(f"# torchsm CLI latency, {dt.date.today()}, {args.rounds} interleaved rounds")
    print(f"# {machine()}\n")
    print("| process | median ms | ratio to baseline |")
    print("|---|---|---|")
    for name, values in timings.items():
        print(f"| {name} | {median_ms(values):.1f} | {median_ms(values) / base:.2f}x |")


if __name__ == "__main__":
    main()
