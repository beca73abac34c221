"""The chaos run of issue 14 (tests/chaos_run.py), bigger and several times; prints a
Markdown section for BENCHMARKS.md (Reliability).

    .venv/bin/python bench/bench_chaos.py [--runs 3] [--items 100] [--seed N] [--keep]
        [--at REV] [--aim-at-claims SHARE]

Each run: a fresh home and a persistent redis-server on a free loopback port; Novas
`torch` and `echo` each under a `torchsm run` that a service-manager thread starts again
at once whenever it dies; a stand-in agent that logs each run of its item (and half the
time runs a hook and two transitions); a chaos thread that kills supervisors, hook and
transition processes with -9 at random moments, and kills redis-server once for a few
seconds. Then SIGTERM to the supervisors, `torchsm mirror flush`, and the measures.
torchsm runs from this checkout's venv as the checkout is, or with `--at REV` as committed
at REV (a `git archive` on PYTHONPATH, so edits in progress do not move the figures); the
code line says which. `--aim-at-claims SHARE` aims that share of the supervisor kills
between an item's claim and its session's row. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

import chaos_run  # noqa: E402
from common import machine  # noqa: E402
from redis_server import RedisServer  # noqa: E402

COLUMNS = ["run", "seed", "items", "wall (s)",
           "supervisor kills: all / mid-session / just after an agent's end", "hook kills",
           "transition kills: agents' / own", "Redis outage (s)",
           "run to the end twice (after a kill aimed at that end)", "started twice",
           "lost (claimed without a session)",
           "agents that outlived a supervisor: waited for / stopped",
           "orphans", "second agent at once", "transitions committed",
           "stream: missing / duplicated / out of order"]


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout


def code_state() -> str:
    head = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    dirty = git("status", "--porcelain", "--", "torchsm").strip()
    return (f"torchsm of this checkout, commit {head}"
            + (" plus uncommitted changes in torchsm/" if dirty else ""))


def snapshot(rev: str, where: Path) -> tuple[list[str], dict[str, str], str]:
    """torchsm as committed at `rev` (git archive: the checkout is only read), for runs
    unmoved by edits in progress: (command, environment, description)."""
    commit = git("rev-parse", "--short", f"{rev}^{{commit}}").strip()
    if not commit:
        raise SystemExit(f"bench_chaos: no commit {rev!r}")
    archive = subprocess.run(["git", "archive", commit, "torchsm", "migrations", "alembic.ini"],
                             cwd=REPO, capture_output=True, check=True).stdout
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", str(where)], input=archive, check=True)
    return ([sys.executable, "-m", "torchsm"], {"PYTHONPATH": str(where)},
            f"torchsm as committed at {commit} (git archive)")


def row(n: int, r: chaos_run.ChaosResult) -> list[str]:
    k, s = r.kills, r.stream
    return [str(n), str(r.seed), str(r.items) + ("" if r.finished else " (not all done)"),
            f"{r.wall_s:.0f}",
            f"{k['supervisor']} / {k['supervisor mid-session']} / {k[chaos_run.AT_END]}",
            str(k["hook"]), f"{k['agent transition']} / {k['own transition']}",
            ", ".join(f"{d:.1f}" for d in r.outages) or "none",
            f"{len(r.run_twice)} ({len(r.run_twice_after_end_kill)})",
            str(len(r.started_twice)),
            f"{len(r.lost)} ({len(r.claimed_without_session)})",
            f"{r.orphans_waited_for} / {r.orphans_stopped}",
            str(len(r.orphans)), str(len(r.overlaps)), str(s.committed),
            f"{s.missing} / {s.duplicated} / {len(s.out_of_order)}"]


def runs(args: argparse.Namespace, torchsm: list[str] | None,
         env: dict[str, str] | None) -> list[chaos_run.ChaosResult]:
    results = []
    for n in range(1, args.runs + 1):
        root = Path(tempfile.mkdtemp(prefix="torchsm-bench-chaos-"))
        server = RedisServer(root / "redis", persistent=True).start()
        try:
            options = chaos_run.ChaosOptions(
                items=args.items, time_limit_s=args.time_limit_s,
                at_claim_share=args.aim_at_claims,
                seed=None if args.seed is None else args.seed + n - 1)
            result = chaos_run.run(root / "run", server, options, torchsm, env)
        finally:
            server.stop()
        print(f"run {n}:\n{result.summary()}\n", file=sys.stderr)
        results.append(result)
        if args.keep:
            print(f"files: {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description="The chaos run of issue 14, several times; "
                                     "Markdown for BENCHMARKS.md on stdout.")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--seed", type=int, default=None, help="the first run's seed")
    parser.add_argument("--time-limit-s", type=float, default=300)
    parser.add_argument("--keep", action="store_true", help="keep each run's files")
    parser.add_argument("--at", metavar="REV", default=None,
                        help="run torchsm as committed at REV (default: the checkout as it is)")
    parser.add_argument("--aim-at-claims", type=float, default=0.0, metavar="SHARE",
                        help="share of supervisor kills aimed between an item's claim and "
                             "its session's row (default 0)")
    args = parser.parse_args()

    torchsm, env, code = None, None, code_state()
    source = None
    if args.at:
        source = Path(tempfile.mkdtemp(prefix="torchsm-at-"))
        torchsm, env, code = snapshot(args.at, source)
    try:
        results = runs(args, torchsm, env)
    finally:
        if source is not None:
            shutil.rmtree(source, ignore_errors=True)

    command = (f".venv/bin/python bench/bench_chaos.py --runs {args.runs} --items {args.items}"
               + (f" --seed {args.seed}" if args.seed is not None else "")
               + (f" --aim-at-claims {args.aim_at_claims:g}" if args.aim_at_claims else "")
               + (f" --at {args.at}" if args.at else ""))
    print("### Chaos: kill -9 anything, lose nothing, run nothing twice\n")
    print(f"`{command}` ({dt.date.today().isoformat()}, {machine()}; {code}).\n")
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for n, result in enumerate(results, 1):
        print("| " + " | ".join(row(n, result)) + " |")
    twice = "; ".join(
        f"run {n}: " + ", ".join(f"item {item} ({'no kill within 2 s' if ms is None else f'{ms:g} ms'})"
                                 for item, ms in r.kill_after_first_end_ms().items())
        for n, r in enumerate(results, 1) if r.run_twice)
    if twice:
        print(f"\nItems run to the end twice, and how long after the first of those ends the "
              f"supervisor of that Nova was killed: {twice}.")
    if args.aim_at_claims:
        print("\nSupervisor kills aimed between a claim and its session's row: "
              + ", ".join(f"run {n}: {r.kills['supervisor at a claim']}"
                          for n, r in enumerate(results, 1)) + ".")
    total_kills = sum(r.kills["supervisor"] for r in results)
    at_end = sum(r.kills[chaos_run.AT_END] for r in results)
    total_process = sum(r.process_kills for r in results)
    print(f"\nIn all: {sum(r.items for r in results)} items, {total_kills} supervisor kills "
          f"({at_end} just after an agent's end), "
          f"{total_process} hook/transition kills, {sum(len(r.outages) for r in results)} "
          f"Redis outages; {sum(len(r.run_twice) for r in results)} items run to the end "
          f"twice ({sum(len(r.run_twice_after_end_kill) for r in results)} after a kill "
          f"aimed at that end), {sum(len(r.lost) for r in results)} lost "
          f"({sum(len(r.claimed_without_session) for r in results)} of them claimed without a "
          f"session), "
          f"{sum(len(r.orphans) for r in results)} orphans, "
          f"{sum(r.stream.missing + r.stream.duplicated for r in results)} stream entries "
          f"missing or duplicated.")
    print(f"The supervisor's own entries (not history rows; informative): of "
          f"{sum(r.stream.sessions for r in results)} sessions, "
          f"{sum(len(r.stream.without_started) for r in results)} without a "
          f"`session.started` entry and {sum(len(r.stream.without_ended) for r in results)} "
          f"settled by their supervisor without a `session.ended` one.")
    return 0 if all(_met(r) for r in results) else 1


def _met(r: chaos_run.ChaosResult) -> bool:
    return (r.finished and not r.lost and not r.run_twice and not r.orphans
            and not r.overlaps and r.stream.ok)


if __name__ == "__main__":
    started = time.monotonic()
    code = main()
    print(f"({time.monotonic() - started:.0f} s)", file=sys.stderr)
    sys.exit(code)
