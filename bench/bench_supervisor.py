"""What a waiting supervisor costs, and how fast a critical wake starts a session.

    .venv/bin/python bench/bench_supervisor.py [--idle-s 60] [--rounds 10]

1. Idle CPU: a real `torchsm run` waits (a) idle with an empty queue, (b) cooling, and
   (c) idle while another process commits a transition of another Nova ten times a
   second (every commit wakes the supervisor's change check). CPU time of the supervisor
   process from /proc over `--idle-s` seconds. Target: well under 1% of a core.
2. Critical wake latency: a `torchsm run --max-sessions 1` waits (a) with the Nova cooling for
   600 s, (b) idle in a 600 s rhythm cycle; then `torchsm wake NOVA "... urgent"` is run.
   Latency: from starting the wake command to the agent's first instruction (it writes
   time.time() to a file). Target: within 2 s.

torchsm runs from a regular (non-editable) install in a fresh venv.
It prints a Markdown section for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import machine, regular_install, wait_until

AGENT = "import sys, time; open(sys.argv[1], 'w').write(repr(time.time()))"
CONFIG = 'redis_url = "off"\n[personalities.torch]\nbase_cycle_s = 600\n'


class Setup:
    def __init__(self, bin_dir: Path):
        self.bin = bin_dir
        self.home = Path(tempfile.mkdtemp(prefix="torchsm-bench-supervisor-"))
        self.env = {**os.environ, "TORCHSM_HOME": str(self.home), "TORCHSM_REDIS_URL": "off"}
        self.torchsm("init")
        (self.home / "torchsm.toml").write_text(CONFIG)
        self.torchsm("nova", "add", "torch")
        self.torchsm("nova", "add", "echo")

    def torchsm(self, *args: str) -> None:
        subprocess.run([str(self.bin / "torchsm"), *args], env=self.env, check=True,
                       stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)

    def start_run(self, name: str, *args: str) -> subprocess.Popen:
        return subprocess.Popen([str(self.bin / "torchsm"), "run", name, *args], env=self.env,
                                stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)

    def plan_ready(self, name: str = "torch") -> bool:
        return (self.home / "run" / f"{name}.json").exists()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)


def idle_cpu(setup: Setup, seconds: float, scenario: str) -> float:
    """Percent of one core the waiting supervisor used."""
    if scenario == "cooling":
        setup.torchsm("transition", "torch", "cool", "--for", "3600")
    run = setup.start_run("torch", "--", "true")
    writer = None
    try:
        wait_until(setup.plan_ready)
        time.sleep(2)  # start-up is not waiting
        if scenario == "busy neighbour":
            writer = subprocess.Popen([str(setup.bin / "python"), "-c", _WRITER,
                                       str(setup.home)], env=setup.env)
        before, started = cpu_seconds(run.pid), time.monotonic()
        time.sleep(seconds)
        used = cpu_seconds(run.pid) - before
        elapsed = time.monotonic() - started
    finally:
        if writer:
            writer.terminate()
            writer.wait()
        stop(run)
        if scenario == "cooling":
            setup.torchsm("transition", "torch", "work", "--force")
    return 100 * used / elapsed


# Another Nova's transitions, ten a second, from one long-lived process (its own cost is
# not the supervisor's).
_WRITER = """
import pathlib, sys, time
from torchsm import novas
from torchsm.config import Home, load_config
home = Home(pathlib.Path(sys.argv[1]))
config = load_config(home)
while True:
    novas.transition(home, config, "echo", "cool", for_s=1)
    time.sleep(0.1)
"""


def wake_latency(setup: Setup, scenario: str, tmp: Path, round_no: int) -> float:
    # A new Nova each round: a critical wake still waits for the floor of the rhythm
    # after a Nova's last session, which is not what this measures.
    name = f"{scenario[:4]}{round_no}"
    setup.torchsm("nova", "add", name, "--personality", "torch")
    if scenario == "cooling":
        setup.torchsm("transition", name, "cool", "--for", "600")
    marker = tmp / f"started-{name}"
    run = setup.start_run(name, "--max-sessions", "1", "--", sys.executable, "-c", AGENT,
                          str(marker))
    try:
        wait_until(lambda: setup.plan_ready(name))
        time.sleep(0.5)  # well inside the wait
        sent = time.time()
        setup.torchsm("wake", name, f"production is down, urgent ({scenario} {round_no})")
        run.wait(30)
    finally:
        if run.poll() is None:
            stop(run)
    return float(marker.read_text()) - sent


def summarise(values: list[float]) -> str:
    return (f"median {statistics.median(values) * 1000:.0f} ms, "
            f"max {max(values) * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--idle-s", type=float, default=60)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--venv", type=Path,
                        default=Path(tempfile.mkdtemp(prefix="torchsm-bench-venv-")))
    args = parser.parse_args()

    setup = Setup(regular_install(args.venv))
    tmp = Path(tempfile.mkdtemp(prefix="torchsm-bench-markers-"))
    cpu = {s: idle_cpu(setup, args.idle_s, s) for s in ("idle", "cooling", "busy neighbour")}
    latency = {s: [wake_latency(setup, s, tmp, n) for n in range(args.rounds)]
               for s in ("cooling", "idle")}
    report = render(args, cpu, latency)
    print(report)


def render(args, cpu: dict[str, float], latency: dict[str, list[float]]) -> str:
    cpu_ok = all(value < 1 for value in cpu.values())
    wake_ok = all(max(values) < 2 for values in latency.values())
    lines = [
        "# Supervisor benchmark: idle cost and critical-wake latency",
        "",
        f"Machine: {machine()} (`nproc` {os.cpu_count()}). Date: {dt.date.today()}.",
        "",
        f"Produced by `.venv/bin/python bench/bench_supervisor.py --idle-s {args.idle_s:g} "
        f"--rounds {args.rounds} --write` (torchsm from a regular install in a fresh venv).",
        "",
        "Targets (issue 6): a waiting supervisor uses well under 1% of a core "
        f"({'met' if cpu_ok else 'NOT met'}); a critical wake starts the next session within "
        f"2 s ({'met' if wake_ok else 'NOT met'}).",
        "",
        "## Idle cost",
        "",
        "| the supervisor waits ... | CPU, % of one core |",
        "|---|---|",
    ]
    descriptions = {
        "idle": f"idle, empty queue, 600 s rhythm cycle ({args.idle_s:g} s measured)",
        "cooling": f"with the Nova cooling for an hour ({args.idle_s:g} s measured)",
        "busy neighbour": "idle, while another process commits 10 transitions/s of another "
                          f"Nova ({args.idle_s:g} s measured)",
    }
    lines += [f"| {descriptions[k]} | {v:.3f} |" for k, v in cpu.items()]
    lines += [
        "",
        "## Critical wake to session start",
        "",
        "| the supervisor waits ... | latency over "
        f"{args.rounds} rounds | each round, ms |",
        "|---|---|---|",
    ]
    lines += [f"| {'with the Nova cooling for 600 s' if k == 'cooling' else 'idle, in a 600 s rhythm cycle'} "
              f"| {summarise(v)} | {', '.join(f'{x * 1000:.0f}' for x in v)} |"
              for k, v in latency.items()]
    lines += [
        "",
        "- Latency runs from starting `torchsm wake NOVA \"production is down, urgent\"` "
        "(a whole CLI process: it classifies, stores and, for a cooling Nova, forces `work`) "
        "to the first instruction of the agent the supervisor started (a Python process "
        "that writes `time.time()`): the wake command, the supervisor noticing it, the "
        "session's bookkeeping and the agent's own start-up are all inside. Each round "
        "uses a new Nova: after a Nova's session, a critical wake still waits for the floor "
        "of its rhythm (here 600 s), which is policy, not latency.",
        "- How the supervisor waits: it sleeps in slices of 0.25 s and asks SQLite "
        "`PRAGMA data_version` on one open connection (microseconds); only when another "
        "connection has committed does it look at the Nova and its wake signals. The busy "
        "neighbour row is the price of those looks under a steady stream of unrelated "
        "commits.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
