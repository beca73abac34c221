"""Claims per second of the cluster's shared work (Redis Streams, a consumer group, one
host) beside the local SQLite work queue, in one run (issue 23).

    .venv/bin/python bench/bench_cluster.py [--items 2000] [--repeat 3]

Each repeat fills both queues with N items (not timed), then times one consumer claiming
and finishing every item until the queue is empty: `try_claim` + `done` on this home's
queue; `ClusterWork.claim` + `done` (one script call each) as consumer HOST:NOVA on a
redis-server of its own on loopback (no persistence). The two run in turn, so machine
noise hits both alike. It prints a Markdown section for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import cpu_model

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from torchsm import novas  # noqa: E402
from torchsm.cluster.server import connect  # noqa: E402
from torchsm.cluster.settings import ClusterSettings  # noqa: E402
from torchsm.cluster.work import DONE, ClusterWork  # noqa: E402
from torchsm.config import Config, Home  # noqa: E402
from torchsm.storage import database  # noqa: E402
from torchsm.work import work_queue  # noqa: E402

NOVA = "bench"


def local_rate(items: int) -> float:
    home = Home(tempfile.mkdtemp(prefix="torchsm-bench-cluster-"))
    database.initialise(home)
    config = Config(redis_url="off")
    novas.add(home, config, NOVA)
    with work_queue.open_queue(home, config) as queue:
        for n in range(items):
            queue.add(str(n), now=float(n))
        started = time.perf_counter()
        while (item := queue.try_claim(NOVA)) is not None:
            queue.done(item.id, owner=item.owner)
        elapsed = time.perf_counter() - started
    shutil.rmtree(home.root)
    return items / elapsed


def cluster_rate(url: str, items: int) -> float:
    with connect(url) as server:
        server.client.flushall()
        work = ClusterWork(server, ClusterSettings("bench-host", 5, 30, 3, 3600))
        for n in range(items):
            work.add(str(n))
        started = time.perf_counter()
        done = 0
        while (item := work.claim("bench-host", NOVA)) is not None:
            done += work.done(item, "bench-host", NOVA) == DONE
        elapsed = time.perf_counter() - started
    assert done == items, (done, items)
    return items / elapsed


def start_redis() -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(200):
        try:
            with connect(url) as server:
                server.time()
            return proc, url
        except Exception:
            time.sleep(0.02)
    raise SystemExit("redis-server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    proc, url = start_redis()
    version = subprocess.run(["redis-server", "--version"], capture_output=True,
                             text=True).stdout.split()[2]
    rates: dict[str, list[float]] = {"local": [], "cluster": []}
    try:
        for _ in range(args.repeat):
            rates["local"].append(local_rate(args.items))
            rates["cluster"].append(cluster_rate(url, args.items))
    finally:
        proc.terminate()
        proc.wait()
    local, cluster = (statistics.median(rates[k]) for k in ("local", "cluster"))
    print(f"{args.items:,} items, one consumer, median of {args.repeat} runs (all runs in "
          f"brackets); {cpu_model()}, Python {platform.python_version()}, redis-server "
          f"{version.removeprefix('v=')} on loopback.\n")
    print("| queue | claim+done /s | vs local | runs /s |\n|---|---:|---:|---|")
    for name, median in (("local (SQLite, `try_claim` + `done`)", local),
                         ("cluster, 1 host (`claim` + `done` scripts)", cluster)):
        runs = rates["local" if name.startswith("local") else "cluster"]
        print(f"| {name} | {median:,.0f} | {median / local:.2f}x | "
              f"[{', '.join(f'{r:,.0f}' for r in runs)}] |")


if __name__ == "__main__":
    main()
