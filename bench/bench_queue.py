"""Claim+done throughput of torchsm's work queue against persist-queue's SQLiteAckQueue and
litequeue, with 1 and 4 concurrent processes, duplicates and losses counted.

Run it in the bench environment, never the project's (persist-queue and litequeue are not
torchsm dependencies):

    bash bench/setup_bench_venv.sh
    bench/.venv/bin/python bench/bench_queue.py [--items 10000] [--repeat 3]

Each run fills a fresh queue with N items (not timed), starts the worker processes, lets
them import and open their queue, then releases them at once through a "go" file. The
time is from the release to the last worker finding the queue empty. Every worker
reports the item numbers it claimed: a number claimed twice is a duplicate, one never
claimed is lost.
It prints a Markdown section for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from common import cpu_model

REPO = Path(__file__).resolve().parent.parent
BACKENDS = ("torchsm", "torchsm-one-txn", "persist-queue", "litequeue")
NOVA = "bench"


# --- filling (in the parent, not timed) -------------------------------------------------

def fill(backend: str, folder: Path, items: int) -> None:
    {"torchsm": fill_torchsm, "torchsm-one-txn": fill_torchsm,
     "persist-queue": fill_persist_queue, "litequeue": fill_litequeue}[backend](folder, items)


def fill_torchsm(folder: Path, items: int) -> None:
    from torchsm import novas
    from torchsm.config import Home, load_config
    from torchsm.storage import database
    from torchsm.work import work_queue

    home = Home(folder)
    database.initialise(home)
    config = load_config(home)
    novas.add(home, config, NOVA)
    with work_queue.open_queue(home, config) as queue:
        for n in range(items):
            queue.add(str(n), now=float(n))


def fill_persist_queue(folder: Path, items: int) -> None:
    from persistqueue import SQLiteAckQueue

    queue = SQLiteAckQueue(str(folder), multithreading=True, auto_resume=False)
    for n in range(items):
        queue.put(n)


def fill_litequeue(folder: Path, items: int) -> None:
    from litequeue import LiteQueue

    queue = LiteQueue(str(folder / "queue.db"))
    for n in range(items):
        queue.put(str(n))
    queue.close()


# --- workers (one process each) ----------------------------------------------------------

def work(backend: str, folder: Path, go: Path) -> dict:
    claim, finish = open_backend(backend, folder)
    while not go.exists():
        time.sleep(0.0005)
    started = time.time()
    claimed, errors = [], 0
    while True:
        try:
            item = claim()
        except sqlite3.OperationalError:
            errors += 1  # "database is locked": the library gave up; try again
            continue
        if item is None:
            break
        number, handle = item
        claimed.append(number)
        try:
            finish(handle)
        except sqlite3.OperationalError:
            errors += 1
    return {"claimed": claimed, "errors": errors, "started": started, "ended": time.time()}


def open_backend(backend: str, folder: Path):
    """(claim, finish): claim() -> (item number, handle) or None; finish(handle)."""
    if backend == "torchsm":
        from torchsm.config import Home, load_config
        from torchsm.work import work_queue

        home = Home(folder)
        queue = work_queue.open_queue(home, load_config(home))

        def claim():
            item = queue.try_claim(NOVA)
            return None if item is None else (int(item.text), (item.id, item.owner))

        return claim, lambda handle: queue.done(handle[0], owner=handle[1])
    if backend == "torchsm-one-txn":
        return open_torchsm_one_transaction(folder)
    if backend == "persist-queue":
        from persistqueue import Empty, SQLiteAckQueue

        queue = SQLiteAckQueue(str(folder), multithreading=True, auto_resume=False)

        def claim():
            try:
                item = queue.get(block=False, raw=True)
            except Empty:
                return None
            return item["data"], item["pqid"]

        return claim, lambda pqid: queue.ack(id=pqid)
    from litequeue import LiteQueue

    queue = LiteQueue(str(folder / "queue.db"))

    def claim():
        message = queue.pop()
        return None if message is None else (int(message.data), message.message_id)

    return claim, queue.done


def open_torchsm_one_transaction(folder: Path):
    """Each claim also marks the previous item done, in one transaction (the Stop hook's
    step); the last item is marked done by the claim that finds the queue empty."""
    from torchsm.config import Home, load_config
    from torchsm.work import work_queue

    home = Home(folder)
    queue = work_queue.open_queue(home, load_config(home))
    previous = None

    def claim():
        nonlocal previous
        previous = queue.try_claim(NOVA, done_first=previous)
        return None if previous is None else (int(previous.text), None)

    return claim, lambda _handle: None


# --- one measured run --------------------------------------------------------------------

def run(backend: str, items: int, processes: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-queue-") as tmp:
        folder = Path(tmp) / "q"
        folder.mkdir()
        fill(backend, folder, items)
        go = Path(tmp) / "go"
        workers = [subprocess.Popen([sys.executable, __file__, "--worker", backend,
                                     str(folder), str(go)], stdout=subprocess.PIPE, text=True)
                   for _ in range(processes)]
        time.sleep(0.5 + 0.3 * processes)  # every worker imported and waiting
        released = time.time()
        go.touch()
        reports = [json.loads(w.communicate(timeout=600)[0]) for w in workers]
    seconds = max(r["ended"] for r in reports) - released
    counts = Counter(n for r in reports for n in r["claimed"])
    return {"backend": backend, "processes": processes, "items": items,
            "seconds": seconds, "per_s": items / seconds,
            "duplicates": sum(c - 1 for c in counts.values()),
            "lost": items - len(counts),
            "errors": sum(r["errors"] for r in reports)}


def median_run(backend: str, items: int, processes: int, repeat: int) -> dict:
    runs = [run(backend, items, processes) for _ in range(repeat)]
    best = sorted(runs, key=lambda r: r["per_s"])[len(runs) // 2]
    return {**best, "runs_per_s": [round(r["per_s"]) for r in runs],
            "duplicates_each": [r["duplicates"] for r in runs],
            "lost_each": [r["lost"] for r in runs]}


# --- report ------------------------------------------------------------------------------

def machine() -> dict:
    cpu = cpu_model()
    from importlib.metadata import version

    return {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            "persist-queue": version("persist-queue"), "litequeue": version("litequeue"),
            "date": dt.date.today().isoformat()}


def markdown(results: list[dict], info: dict, items: int, repeat: int) -> str:
    pq = {r["processes"]: r["per_s"] for r in results if r["backend"] == "persist-queue"}
    lines = [
        "# Work queue benchmark: claim + done",
        "",
        f"Machine: {info['nproc']} cores (`nproc`), {info['cpu']}, Python {info['python']}, "
        f"SQLite {info['sqlite']}; persist-queue {info['persist-queue']}, "
        f"litequeue {info['litequeue']}. Date: {info['date']}.",
        "",
        f"{items:,} items; each row is the median of {repeat} runs (all runs in brackets). "
        "Time runs from releasing the already started workers to the last one finding "
        "the queue empty. Produced by `bench/.venv/bin/python bench/bench_queue.py "
        f"--items {items} --repeat {repeat} --write` (see bench/setup_bench_venv.sh).",
        "",
        "| library | processes | claim+done /s | vs persist-queue | duplicates | lost "
        "| lock errors | runs /s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines[-2:-2] = verdict(results, pq) + [""]
    for r in results:
        ratio = r["per_s"] / pq[r["processes"]] if r["processes"] in pq else float("nan")
        lines.append(
            f"| {r['backend']} | {r['processes']} | {r['per_s']:,.0f} | {ratio:.1f}x "
            f"| {r['duplicates']} (each run: {r['duplicates_each']}) "
            f"| {r['lost']} (each run: {r['lost_each']}) | {r['errors']} "
            f"| {r['runs_per_s']} |")
    lines += [
        "",
        "- torchsm: `WorkQueue.try_claim` (one `UPDATE ... WHERE id = (SELECT ... LIMIT 1) "
        "RETURNING` under BEGIN IMMEDIATE, with the Nova check in the same transaction) "
        "then `WorkQueue.done` with the owner token: two transactions per item, as two "
        "CLI calls make them. WAL, synchronous=NORMAL.",
        "- torchsm-one-txn: `WorkQueue.try_claim(done_first=previous)`: marking the "
        "previous item done and claiming the next in one transaction, the Stop hook's "
        "step.",
        "- persist-queue: `SQLiteAckQueue(multithreading=True, auto_resume=False)`, "
        "`get(block=False, raw=True)` then `ack(id=...)`; its claim is a SELECT followed "
        "by an UPDATE, which is why several processes get the same item (its maintainers "
        "do not support multi-process use).",
        "- litequeue: `LiteQueue.pop()` (atomic `UPDATE ... RETURNING`) then `done()`; no "
        "lease expiry and no attempt counter.",
        "- Each library runs with its own SQLite settings. SQLite serialises writers, so "
        "more processes add contention, not throughput.",
        "- Absolute numbers move from machine to machine (FIELD-NOTES measured "
        "persist-queue at ~3,000/s elsewhere): compare rows of one run, not runs of "
        "different machines.",
    ]
    return "\n".join(lines) + "\n"


def verdict(results: list[dict], pq: dict[int, float]) -> list[str]:
    """One line per torchsm row against the target: >= 5x persist-queue, 0 duplicates."""
    lines = ["Target (issue 4): at least 5x persist-queue's rate, with 0 duplicates.", ""]
    for r in results:
        if r["backend"].startswith("torchsm") and r["processes"] in pq:
            ratio = r["per_s"] / pq[r["processes"]]
            met = ratio >= 5 and r["duplicates"] == 0 and r["lost"] == 0
            lines.append(f"- {r['backend']}, {r['processes']} process(es): {ratio:.1f}x, "
                         f"{r['duplicates']} duplicates: {'met' if met else 'NOT met'}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument("--worker", nargs=3, metavar=("BACKEND", "FOLDER", "GO"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        backend, folder, go = args.worker
        print(json.dumps(work(backend, Path(folder), Path(go))))
        return
    results = []
    for processes in args.processes:
        for backend in args.backends:
            result = median_run(backend, args.items, processes, args.repeat)
            print(f"{backend:14} {processes} proc: {result['per_s']:9,.0f}/s "
                  f"duplicates {result['duplicates']:5} lost {result['lost']} "
                  f"errors {result['errors']} runs {result['runs_per_s']}", flush=True)
            results.append(result)
    text = markdown(results, machine(), args.items, args.repeat)
    print(text)


if __name__ == "__main__":
    main()
