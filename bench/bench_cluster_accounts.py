"""From a limit heard on host A to host B holding (issue 23, shared accounts), side by
side with A's other Nova on the same host, in one run.

    .venv/bin/python bench/bench_cluster_accounts.py [--runs 10] [--sync-s 1]

Each run makes two fresh homes (hosts alpha and beta) on one redis-server of its own,
with an idle `torchsm run` supervisor for Novas a1 and a2 on A and b1 on B, all of
account `work`, `[cluster] enabled`. Once both hosts have synced, A stores a rejected
window (as A's reader stores a rate_limit_event) and the clock runs until a2 (same host)
and b1 (host B, through both hosts' syncs and the server's merge) are cooling, polled
every 5 ms. Prints a Markdown section for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_cluster import start_redis
from common import cpu_model

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from torchsm import novas  # noqa: E402
from torchsm.config import Home, load_config  # noqa: E402
from torchsm.storage import database, store  # noqa: E402
from torchsm.usage import accounts, limits  # noqa: E402

TORCHSM = [sys.executable, "-m", "torchsm"]


def host(root: Path, name: str, url: str, sync_s: float, *nova_names: str) -> Home:
    home = Home(root / name)
    database.initialise(home)
    (home.path / "torchsm.toml").write_text(
        f'redis_url = "{url}"\n[cluster]\nenabled = true\nhost = "{name}"\n'
        f"sync_s = {sync_s}\n")
    for nova in nova_names:
        novas.add(home, load_config(home), nova, personality="torch", account="work")
    return home


def supervise(home: Home, nova: str, url: str) -> subprocess.Popen:
    return subprocess.Popen([*TORCHSM, "--home", str(home.path), "run", nova, "--", "true"],
                            env={"TORCHSM_REDIS_URL": url, "PATH": "/usr/bin:/bin"},
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def state(home: Home, nova: str) -> str:
    with store.open_store(home) as db:
        return db.read(lambda conn: store.nova_named(conn, nova).state)


def synced(home: Home) -> bool:
    with store.open_store(home) as db:
        return db.read(lambda conn: accounts.load_peers(conn, "work")) is not None


def until(predicate, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        time.sleep(0.005)


def one_run(url: str, sync_s: float) -> tuple[float, float]:
    root = Path(tempfile.mkdtemp(prefix="torchsm-bench-accounts-"))
    a = host(root, "alpha", url, sync_s, "a1", "a2")
    b = host(root, "beta", url, sync_s, "b1")
    runs = [supervise(a, "a1", url), supervise(a, "a2", url), supervise(b, "b1", url)]
    try:
        until(lambda: synced(a) and synced(b))
        time.sleep(sync_s * 1.5)  # both syncers in their steady rhythm
        now = time.time()
        limit = accounts.WindowRow("five_hour", "rejected", 1.0, now + 3600, now, "event",
                                   "a1")
        heard = time.monotonic()
        with store.open_store(a) as db:
            limits.learn(db, a, load_config(a), "work", [limit], now)
        until(lambda: state(a, "a2") == "cooling")
        same_host = time.monotonic() - heard
        until(lambda: state(b, "b1") == "cooling")
        return same_host, time.monotonic() - heard
    finally:
        for run in runs:
            run.terminate()
        for run in runs:
            run.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--sync-s", type=float, default=1.0)
    args = parser.parse_args()
    proc, url = start_redis()
    try:
        results = []
        for n in range(args.runs):
            subprocess.run(["redis-cli", "-u", url, "flushall"], capture_output=True)
            results.append(one_run(url, args.sync_s))
    finally:
        proc.terminate()
    version = subprocess.run(["redis-server", "--version"], capture_output=True,
                             text=True).stdout.split()[2]
    print(f"`.venv/bin/python bench/bench_cluster_accounts.py --runs {args.runs} --sync-s "
          f"{args.sync_s:g}` ({time.strftime('%Y-%m-%d')}; {cpu_model()}, Python "
          f"{platform.python_version()}, redis-server {version.removeprefix('v=')})\n")
    print("| held, from the limit stored on A | median | p90 | max |\n|---|---|---|---|")
    for label, column in (("a2, same host", 0), ("b1, host B (through the server)", 1)):
        values = sorted(r[column] for r in results)
        p90 = values[min(len(values) - 1, int(0.9 * len(values)))]
        print(f"| {label} | {statistics.median(values) * 1000:.0f} ms | {p90 * 1000:.0f} ms "
              f"| {values[-1] * 1000:.0f} ms |")


if __name__ == "__main__":
    main()
