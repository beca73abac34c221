"""How soon a rate_limit_event is visible to other processes while the session runs.

A real `torchsm run torch --once` (regular install) runs an agent that prints a
rate_limit_event line with a new utilization, notes the time, and polls the database
from its own process until the account's window shows that value: the delay from the
child writing the line to the row being visible to another process. Against it, in the
same run: the whole-process time of a hook (`torchsm hook notification`), the least any
hook that could decide on the row takes to start and finish.

    .venv/bin/python bench/bench_live_usage.py [--rounds 200]

Prints Markdown for BENCHMARKS.md.
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bench_setup, interleaved, machine  # noqa: E402

AGENT = textwrap.dedent("""
    import json, os, sqlite3, sys, time
    rounds, out = int(sys.argv[1]), sys.argv[2]
    db = sqlite3.connect(os.path.join(os.environ["TORCHSM_HOME"], "torchsm.db"))
    delays = []
    for n in range(1, rounds + 1):
        used = n / (rounds + 1)
        line = json.dumps({"type": "rate_limit_event", "rate_limit_info": {
            "status": "allowed", "resetsAt": int(time.time()) + 3600,
            "rateLimitType": "five_hour", "unifiedWindows": {"five_hour": {
                "utilization": used, "resetsAt": int(time.time()) + 3600,
                "status": "allowed"}}}})
        written = time.perf_counter()
        sys.stdout.write(line + "\\n")
        sys.stdout.flush()
        while True:
            row = db.execute("SELECT utilization FROM account_windows").fetchone()
            if row and abs(row[0] - used) < 1e-12:
                break
            time.sleep(0.0001)
        delays.append(time.perf_counter() - written)
        time.sleep(0.01)
    json.dump(delays, open(out, "w"))
    print(json.dumps({"type": "result", "is_error": False, "result": "Done."}))
""")


def main() -> None:
    args, bin_dir, home, env = bench_setup(__doc__, "torchsm-bench-live-")
    work = Path(tempfile.mkdtemp(prefix="torchsm-bench-live-agent-"))
    agent, out = work / "agent.py", work / "delays.json"
    agent.write_text(AGENT)
    torchsm = str(bin_dir / "torchsm")
    subprocess.run([torchsm, "queue", "add", "measure"], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run([torchsm, "run", "torch", "--once", "--agent-output", "claude-code",
                    "--", str(bin_dir / "python"),
                    str(agent), str(args.rounds), str(out)], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    delays = [d * 1000 for d in json.loads(out.read_text())]
    hook = [torchsm, "hook", "notification", "--nova", "torch"]
    hooks = [t * 1000 for t in interleaved({"hook": hook}, env, min(args.rounds, 40))["hook"]]
    print(f"### Live usage: rate_limit_event to a row other processes see "
          f"({dt.date.today()}, {machine()})\n")
    print("| what | median | p90 | max |\n|---|---|---|---|")
    for name, values in (("event line written -> row visible (ms)", delays),
                         ("one hook process, whole (ms)", hooks)):
        ordered = sorted(values)
        p90 = ordered[int(0.9 * (len(ordered) - 1))]
        print(f"| {name} | {statistics.median(values):.2f} | {p90:.2f} | {max(values):.2f} |")
    ratio = statistics.median(hooks) / statistics.median(delays)
    print(f"\n{len(delays)} events, {len(hooks)} hook runs: the row is visible "
          f"{ratio:.0f}x sooner than a hook process could even finish (medians).")


if __name__ == "__main__":
    main()
