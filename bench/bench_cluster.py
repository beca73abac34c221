"""Claims per second of the cluster's shared work (Redis Streams, a consumer group) for 1,
2 and 4 hosts, beside the local SQLite work queue with as many consumers, in one run
(issue 23).

    .venv/bin/python bench/bench_cluster.py [--items 2000] [--repeat 3] [--hosts 1,2,4]

Each repeat fills both queues with N items (not timed), then times H consumers, each a
process of its own started together, claiming and finishing items until the queue is
empty: `try_claim` + `done` on one home's queue by H Novas; `ClusterWork.claim` + `done`
(one script call each) as consumers HOST_i:NOVA on a redis-server of its own on loopback
(no persistence). Local and cluster run in turn, so machine noise hits both alike. It
prints a Markdown section for BENCHMARKS.md. On a machine of C cores, more than C
consumers share the cores with the server (and SQLite's one writer).
"""

from __future__ import annotations

import argparse
import multiprocessing
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


def local_rate(items: int, consumers: int) -> float:
    home = Home(tempfile.mkdtemp(prefix="torchsm-bench-cluster-"))
    database.initialise(home)
    config = Config(redis_url="off")
    names = [f"{NOVA}{n}" for n in range(consumers)]
    for name in names:
        novas.add(home, config, name)
    with work_queue.open_queue(home, config) as queue:
        for n in range(items):
            queue.add(str(n), now=float(n))
    done = _together(_local_worker, [(home.root, name) for name in names])
    shutil.rmtree(home.root)
    assert sum(done[1]) == items, (done, items)
    return items / done[0]


def _local_worker(root: str, name: str) -> int:
    done = 0
    with work_queue.open_queue(Home(root), Config(redis_url="off")) as queue:
        while (item := queue.try_claim(name)) is not None:
            queue.done(item.id, owner=item.owner)
            done += 1
    return done


def cluster_rate(url: str, items: int, hosts: int) -> float:
    with connect(url) as server:
        server.client.flushall()
        work = ClusterWork(server, _settings("bench-host-0"))
        for n in range(items):
            work.add(str(n))
    elapsed, done = _together(_cluster_worker, [(url, f"bench-host-{n}") for n in range(hosts)])
    assert sum(done) == items, (done, items)
    return items / elapsed


def _settings(host: str) -> ClusterSettings:
    return ClusterSettings(host, 5, 30, 3, 3600)


def _cluster_worker(url: str, host: str) -> int:
    done = 0
    with connect(url) as server:
        work = ClusterWork(server, _settings(host))
        while (item := work.claim(host, NOVA)) is not None:
            done += work.done(item, host, NOVA) == DONE
    return done


def _together(worker, jobs: list[tuple]) -> tuple[float, list[int]]:
    """Run `worker(*job)` for each job in a process of its own, all released at once:
    (wall seconds from the release to the last one's end, what each returned)."""
    context = multiprocessing.get_context("fork")
    ready = context.Barrier(len(jobs) + 1)
    results = context.Queue()
    procs = [context.Process(target=_released, args=(ready, results, worker, job))
             for job in jobs]
    for proc in procs:
        proc.start()
    ready.wait(timeout=60)
    started = time.perf_counter()
    done = [results.get(timeout=600) for _ in jobs]
    elapsed = time.perf_counter() - started
    for proc in procs:
        proc.join(10)
    return elapsed, done


def _released(ready, results, worker, job: tuple) -> None:
    ready.wait(timeout=60)
    results.put(worker(*job))


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
    parser.add_argument("--hosts", default="1,2,4", help="consumers per run, comma-separated")
    args = parser.parse_args()
    counts = [int(h) for h in args.hosts.split(",")]
    proc, url = start_redis()
    version = subprocess.run(["redis-server", "--version"], capture_output=True,
                             text=True).stdout.split()[2]
    rates: dict[tuple[str, int], list[float]] = {}
    try:
        for _ in range(args.repeat):
            for hosts in counts:
                rates.setdefault(("local", hosts), []).append(local_rate(args.items, hosts))
                rates.setdefault(("cluster", hosts), []).append(
                    cluster_rate(url, args.items, hosts))
    finally:
        proc.terminate()
        proc.wait()
    print(f"{args.items:,} items, median of {args.repeat} runs (all runs in brackets); "
          f"{cpu_model()}, {multiprocessing.cpu_count()} cores, Python "
          f"{platform.python_version()}, redis-server {version.removeprefix('v=')} on "
          "loopback.\n")
    print("| consumers | local (SQLite) claim+done /s | cluster claim+done /s | cluster vs "
          "local | cluster runs /s |\n|---:|---:|---:|---:|---|")
    for hosts in counts:
        local = statistics.median(rates[("local", hosts)])
        cluster = statistics.median(rates[("cluster", hosts)])
        print(f"| {hosts} | {local:,.0f} | {cluster:,.0f} | {cluster / local:.2f}x | "
              f"[{', '.join(f'{r:,.0f}' for r in rates[('cluster', hosts)])}] |")


if __name__ == "__main__":
    main()
