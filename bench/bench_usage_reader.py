"""What the supervisor's line-by-line reader costs: a child printing 100,000 stream-json
lines through `session.run_session` (every line seen by SessionOutput), and the same
with the supervisor's per-line agent log, against the same child writing to /dev/null.

    .venv/bin/python bench/bench_usage_reader.py [--rounds 5] [--lines 100000]

Cases run interleaved in one run; medians of wall time; prints Markdown.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

from torchsm.agent import session

CHILD = textwrap.dedent("""
    import json, sys
    n = int(sys.argv[1])
    assistant = json.dumps({"type": "assistant", "message": {"content": [
        {"type": "text", "text": "Working on the item; the tests pass so far."}]}})
    event = json.dumps({"type": "rate_limit_event", "rate_limit_info": {
        "status": "allowed", "resetsAt": 1795683600, "rateLimitType": "five_hour",
        "unifiedWindows": {"five_hour": {"utilization": 0.5, "resetsAt": 1795683600,
                                         "status": "allowed"}}}})
    out = sys.stdout
    for i in range(n - 1):
        out.write((event if i % 1000 == 0 else assistant) + "\\n")
    out.write(json.dumps({"type": "result", "is_error": False, "result": "Done.",
                          "num_turns": 1, "total_cost_usd": 0.01}) + "\\n")
""")


def through_run_session(argv: list[str], log_path: Path | None) -> float:
    log = open(log_path, "a", encoding="utf-8") if log_path else None
    started = time.perf_counter()
    run = session.run_session(argv, env=dict(os.environ), claude_code=True,
                             on_line=log.write if log else None)
    elapsed = time.perf_counter() - started
    if log:
        log.close()
    assert run.exit_status == 0 and run.output.result is not None, run.stderr_tail
    return elapsed


def to_dev_null(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def raw_pipe(argv: list[str]) -> float:
    """The pipe alone: read every byte in large chunks, understand nothing."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, bufsize=0)
    while os.read(proc.stdout.fileno(), 1 << 16):
        pass
    proc.wait()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--lines", type=int, default=100_000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="torchsm-bench-reader-"))
    child = folder / "child.py"
    child.write_text(CHILD)
    argv = [sys.executable, str(child), str(args.lines)]
    cases = {
        "child > /dev/null (baseline)": lambda: to_dev_null(argv),
        "child to a pipe, raw chunked reader (no parsing)": lambda: raw_pipe(argv),
        "session.run_session (reads every line)": lambda: through_run_session(argv, None),
        "run_session + per-line agent log (as the supervisor)":
            lambda: through_run_session(argv, folder / "agent.log"),
    }
    timings: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, case in cases.items():
            timings[name].append(case())
    base = statistics.median(timings[next(iter(cases))])
    print(f"# Line-by-line reader, {dt.date.today()}: {args.lines:,} stream-json lines, "
          f"{args.rounds} interleaved rounds")
    print(f"# {machine()}\n")
    print("| case | median s | ratio to baseline |")
    print("|---|---|---|")
    for name, values in timings.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.3f} | {median / base:.2f} |")


if __name__ == "__main__":
    main()
