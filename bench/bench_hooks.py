"""Whole-process cost of `torchsm hook EVENT` as a ratio to the foundation's baseline
(a process that imports sqlite3 and does one UPDATE on the same database).

    .venv/bin/python bench/bench_hooks.py [--rounds 40]

Targets: pre-tool-use <= 2x (issue 21), post-tool-use, notification <= 3x; stop <= 5x. Cases run
interleaved in one run (medians), from a regular (non-editable) install.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess

from common import bench_setup, machine, median_ms
from bench_cli import BASELINE

PAYLOAD = {"session_id": "bench", "transcript_path": "/tmp/t.jsonl", "cwd": "/tmp",
           "hook_event_name": "PreToolUse", "tool_name": "Bash",
           "tool_input": {"command": "echo hi"}, "stop_hook_active": True}


def timed(argv: list[str], env: dict[str, str], stdin: bytes) -> float:
    import time

    started = time.perf_counter()
    subprocess.run(argv, env=env, input=stdin, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    args, bin_dir, home, env = bench_setup(__doc__.split("\n\n")[0], "torchsm-bench-hooks-")
    torchsm = str(bin_dir / "torchsm")
    # no bangs and no continuation cap during the benchmark: measure the handlers' cost
    (home / "torchsm.toml").write_text("[safety]\nhook_burst = 1000000\n"
                                       "[supervisor]\nmax_continuations = 1000000\n")
    items = home / "items.txt"
    items.write_text("".join(f"bench item {n}\n" for n in range(args.rounds + 10)))
    subprocess.run([torchsm, "queue", "import", str(items)], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    stdin = json.dumps(PAYLOAD).encode()
    cases = {
        "baseline: python + sqlite3 + one UPDATE": [str(bin_dir / "python"), "-c", BASELINE,
                                                    str(home / "torchsm.db")],
        "hook pre-tool-use": [torchsm, "hook", "pre-tool-use", "--nova", "torch"],
        "hook post-tool-use": [torchsm, "hook", "post-tool-use", "--nova", "torch"],
        "hook notification": [torchsm, "hook", "notification", "--nova", "torch"],
        "hook stop (continues: claims the next item)": [torchsm, "hook", "stop", "--nova", "torch"],
    }
    timings: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, argv in cases.items():
            timings[name].append(timed(argv, env, stdin))
    base = median_ms(timings[next(iter(cases))])
    print(f"# torchsm hook latency, {dt.date.today()}, {args.rounds} interleaved rounds")
    print(f"# {machine()}\n")
    print("| process | median ms | ratio to baseline | target |")
    print("|---|---|---|---|")
    targets = {"hook stop": "<= 5x", "hook pre-tool-use": "<= 2x", "hook": "<= 3x"}
    for name, values in timings.items():
        target = next((t for prefix, t in targets.items() if name.startswith(prefix)), "")
        print(f"| {name} | {median_ms(values):.1f} | {median_ms(values) / base:.2f}x | {target} |")


if __name__ == "__main__":
    main()
