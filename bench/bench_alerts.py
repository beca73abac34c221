"""What `[alerts] command` costs a supervisor when it never returns, and what endless
stderr costs `torchsm alerts` (issue 20).

    .venv/bin/python bench/bench_alerts.py [--rounds 10] [--before REV [--before-rounds 2]]

Side by side, rounds interleaved, two homes alike but for `[alerts] command`: none, and
one that never returns (`sleep 1000`, `command_timeout_s = 30`), each with an alert open
(a dead work item) and the delivery under way before anything is measured.

1. Critical wake to session start: a new Nova per round, cooling for 600 s, under
   `torchsm run NAME --max-sessions 1`; from starting `torchsm wake NAME "... urgent"`
   to the agent's first instruction (it writes time.time()). Target: about a second.
2. SIGTERM to exit: a supervisor waiting (its Nova cooling) gets SIGTERM; until its
   process has exited, and whether the command's processes outlived it. Target: within
   `stop_grace_s` (10 s).
3. `torchsm alerts` with `command = "yes >&2"` (`command_timeout_s = 5`) against no
   command: its maximum RSS (wait4), and its wall time. Target: flat.

torchsm runs from a regular (non-editable) install of this checkout in a fresh venv;
`--before REV` also runs torchsm as committed at REV (git archive on PYTHONPATH, with
that venv's Python) with `--before-rounds` rounds. Prints a Markdown section for
BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, machine, regular_install, wait_until
from torchsm.agent.orphans import start_ticks

AGENT = "import sys, time; open(sys.argv[1], 'w').write(repr(time.time()))"
HANGING = "sleep 1000 & echo $$ $! > '{pids}'; wait"
BASE = 'redis_url = "off"\n[personalities.torch]\nbase_cycle_s = 600\n'
CAP_S = 120.0  # a measure that takes longer is reported as "> CAP_S"


class Torchsm:
    """One way of running torchsm: a command prefix and the environment it needs."""

    def __init__(self, argv: list[str], env: dict[str, str], label: str):
        self.argv, self.env, self.label = argv, env, label


class Home:
    """A home with an alert open and `[alerts] command` as given ("" for none)."""

    def __init__(self, torchsm: Torchsm, command: str, timeout_s: float = 30):
        self.torchsm = torchsm
        self.path = Path(tempfile.mkdtemp(prefix="torchsm-bench-alerts-"))
        self.pids = self.path / "delivery.pids"
        self.env = {**torchsm.env, "TORCHSM_HOME": str(self.path), "TORCHSM_REDIS_URL": "off"}
        self.hanging = bool(command)
        self.cli("init")
        (self.path / "torchsm.toml").write_text(
            BASE + f"[alerts]\ncommand = {command.format(pids=self.pids)!r}\n"
            f"command_timeout_s = {timeout_s}\ncommand_attempts = 100\n"
            "evaluate_every_s = 0.2\n")
        dead_item(self.path / "torchsm.db")

    def cli(self, *args: str) -> None:
        subprocess.run([*self.torchsm.argv, *args], env=self.env, check=True,
                       stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)

    def start_run(self, name: str, *args: str) -> subprocess.Popen:
        self.pids.unlink(missing_ok=True)
        return subprocess.Popen([*self.torchsm.argv, "run", name, *args], env=self.env,
                                stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)

    def ready(self, name: str) -> None:
        """The supervisor waits, and (with a command) its delivery is under way."""
        wait_until(lambda: (self.path / "run" / f"{name}.json").exists())
        if self.hanging:
            wait_until(lambda: self.pids.exists() and self.pids.read_text().strip())
        else:
            time.sleep(0.5)  # as long as a delivery takes to start, about

    def delivery_pids(self) -> list[int]:
        return [int(p) for p in self.pids.read_text().split()] if self.hanging else []


def dead_item(db: Path) -> None:
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("INSERT INTO work_items (text, priority, priority_rank, status, attempts,"
                     " max_attempts, created_at, updated_at) VALUES ('x', 'low', 3, 'dead',"
                     " 3, 3, ?, ?)", (time.time(), time.time()))
    conn.close()


def running(pid: int) -> bool:
    return start_ticks(pid) is not None  # None: gone, or a zombie


def wake_latency(home: Home, name: str, marker: Path) -> float:
    home.cli("nova", "add", name, "--personality", "torch")
    home.cli("transition", name, "cool", "--for", "600")
    run = home.start_run(name, "--max-sessions", "1", "--", sys.executable, "-c", AGENT,
                         str(marker))
    try:
        home.ready(name)
        sent = time.time()
        home.cli("wake", name, f"production is down, urgent ({name})")
        try:
            wait_until(lambda: marker.exists() and marker.read_text(), CAP_S)
        except TimeoutError:
            return float("inf")
        return float(marker.read_text()) - sent
    finally:
        end(run)


def sigterm_to_exit(home: Home, name: str) -> tuple[float, int]:
    """Seconds from SIGTERM to the supervisor's exit, and how many of the command's
    processes were still running after it."""
    run = home.start_run(name, "--", "true")
    try:
        home.ready(name)
        started = time.monotonic()
        run.send_signal(signal.SIGTERM)
        try:
            run.wait(CAP_S)
        except subprocess.TimeoutExpired:
            return float("inf"), 0
        return time.monotonic() - started, sum(map(running, home.delivery_pids()))
    finally:
        end(run)


def end(run: subprocess.Popen) -> None:
    if run.poll() is None:
        run.send_signal(signal.SIGTERM)
        try:
            run.wait(CAP_S)
        except subprocess.TimeoutExpired:
            run.kill()
            run.wait()


def alerts_rss(torchsm: Torchsm, command: str) -> tuple[float, float]:
    """Max RSS (MB) and wall time (s) of one `torchsm alerts` in a new home."""
    home = Home(torchsm, command, timeout_s=5)
    started = time.monotonic()
    proc = subprocess.Popen([*torchsm.argv, "alerts"], env=home.env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, for Popen to know
    return usage.ru_maxrss / 1024, time.monotonic() - started


def measure(torchsm: Torchsm, rounds: int, tmp: Path) -> dict[str, dict[str, list]]:
    homes = {"no command": Home(torchsm, ""), "never returns": Home(torchsm, HANGING)}
    for name, home in homes.items():
        home.cli("nova", "add", "torch")
        home.cli("transition", "torch", "cool", "--for", "3600")
    results = {case: {"wake": [], "stop": [], "left": [], "rss": [], "rss_wall": []}
               for case in homes}
    for n in range(rounds):
        for case, home in homes.items():
            marker = tmp / f"started-{torchsm.label}-{case[:2]}-{n}"
            results[case]["wake"].append(wake_latency(home, f"w{n}", marker))
            stop_s, left = sigterm_to_exit(home, "torch")
            results[case]["stop"].append(stop_s)
            results[case]["left"].append(left)
    for _ in range(min(rounds, 3)):
        for case, command in (("no command", ""), ("never returns", "yes >&2")):
            rss, wall = alerts_rss(torchsm, command)
            results[case]["rss"].append(rss)
            results[case]["rss_wall"].append(wall)
    return results


def snapshot(rev: str, where: Path, python: Path) -> Torchsm:
    """torchsm as committed at `rev`, run from a git archive on PYTHONPATH by `python`
    (of a regular install: an editable one's path finder would win over PYTHONPATH)."""
    commit = subprocess.run(["git", "rev-parse", "--short", f"{rev}^{{commit}}"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout.strip()
    archive = subprocess.run(["git", "archive", commit, "torchsm", "migrations", "alembic.ini"],
                             cwd=REPO, capture_output=True, check=True).stdout
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", str(where)], input=archive, check=True)
    return Torchsm([str(python), "-P", "-m", "torchsm"],  # -P: not this checkout's torchsm
                   {**os.environ, "PYTHONPATH": str(where)}, f"before ({commit})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--before", metavar="REV", default=None)
    parser.add_argument("--before-rounds", type=int, default=2)
    parser.add_argument("--venv", type=Path, help="default: a new temporary folder")
    args = parser.parse_args()
    bin_dir = regular_install(args.venv or Path(tempfile.mkdtemp(prefix="torchsm-bench-venv-")))
    tmp = Path(tempfile.mkdtemp(prefix="torchsm-bench-alerts-markers-"))
    now = Torchsm([str(bin_dir / "torchsm")], dict(os.environ), "now")
    runs = [(now, measure(now, args.rounds, tmp))]
    if args.before:
        before = snapshot(args.before, tmp / "before-src", bin_dir / "python")
        runs.append((before, measure(before, args.before_rounds, tmp)))
    print(render(args, runs))


def ms(values: list[float]) -> str:
    shown = [f"> {CAP_S:.0f} s" if v == float("inf") else f"{v * 1000:.0f}" for v in values]
    return ", ".join(shown)


def summary(values: list[float]) -> str:
    finite = [v for v in values if v != float("inf")]
    if len(finite) < len(values):
        return f"{len(values) - len(finite)} of {len(values)} over {CAP_S:.0f} s"
    unit = (lambda v: f"{v:.1f} s") if max(values) >= 10 else (lambda v: f"{v * 1000:.0f} ms")
    return f"median {unit(statistics.median(values))}, max {unit(max(values))}"


def render(args, runs) -> str:
    command = f".venv/bin/python bench/bench_alerts.py --rounds {args.rounds}" + (
        f" --before {args.before} --before-rounds {args.before_rounds}" if args.before else "")
    lines = [f"`{command}` ({dt.date.today()}, {machine()}).", "",
             "| torchsm | `[alerts] command` | critical wake to session start | each round, ms "
             "| SIGTERM to exit | each round, ms | command processes left after exit |",
             "|---|---|---|---|---|---|---|"]
    for torchsm, results in runs:
        for case, r in results.items():
            lines.append(f"| {torchsm.label} | {case} | {summary(r['wake'])} | {ms(r['wake'])} "
                         f"| {summary(r['stop'])} | {ms(r['stop'])} | {sum(r['left'])} |")
    lines += ["", "| torchsm | `[alerts] command` | `torchsm alerts`: max RSS, MB | wall, s |",
              "|---|---|---|---|"]
    for torchsm, results in runs:
        for case, r in results.items():
            shown = "no command" if case == "no command" else "`yes >&2` (5 s timeout)"
            lines.append(f"| {torchsm.label} | {shown} | "
                         f"{', '.join(f'{v:.0f}' for v in r['rss'])} | "
                         f"{', '.join(f'{v:.1f}' for v in r['rss_wall'])} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
