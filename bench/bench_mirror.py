"""Benchmark the mirror; prints a Markdown section for BENCHMARKS.md.

1. Flush: 100,000 queued entries replayed by `torchsm.mirror.streams.flush`, as a ratio to raw
   pipelined XADD of the same entries from Python with redis-py, on the same server in the
   same run (ratio = raw time / flush time; target >= 0.5).
2. Transition: whole `torchsm transition` processes with the mirror off, and with the
   server up, refused and black-holed, side by side in one run (medians of --runs, round
   robin so drift hits every case alike), against a baseline process (python + sqlite3 +
   one UPDATE; target <= 5x) and against torchsm as it was before the mirror (the commit
   before torchsm/mirror.py appeared), so "mirror adds" includes its imports.

Processes run from a regular (non-editable) install in a venv of its own, because an
editable install adds ~9 ms to every interpreter start (FIELD-NOTES). A redis-server is
started on a free loopback port; nothing leaves 127.0.0.1.

    .venv/bin/python bench/bench_mirror.py [--runs 25] [--entries 100000] [--out FILE]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import cpu_model

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def start_redis(workdir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", LOOPBACK,
                             "--save", "", "--appendonly", "no", "--dir", str(workdir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    client = redis.Redis(port=port)
    for _ in range(500):
        try:
            client.ping()
            return proc, f"redis://{LOOPBACK}:{port}/0"
        except redis.ConnectionError:
            time.sleep(0.01)
    raise RuntimeError("redis-server did not start")


class SilentServer:
    """Accepts connections and never answers: a black hole on loopback."""

    def __init__(self):
        self.listener = socket.socket()
        self.listener.bind((LOOPBACK, 0))
        self.listener.listen(128)
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()
        self.url = f"redis://{LOOPBACK}:{self.listener.getsockname()[1]}/0"

    def _accept(self) -> None:
        while True:
            try:
                self.held.append(self.listener.accept()[0])
            except OSError:
                return


def regular_install(name: str, source: Path, reuse: bool) -> Path:
    """A venv with torchsm installed (not editable) from `source`; returns its python."""
    venv = RESULTS / name
    python = venv / "bin" / "python"
    if reuse and python.exists():
        return python
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet",
                    "--disable-pip-version-check", str(source)], check=True,
                   stderr=subprocess.DEVNULL)
    return python


def before_the_mirror() -> str:
    """The commit before torchsm/mirror.py was added: torchsm without a mirror."""
    added = subprocess.run(["git", "log", "--diff-filter=A", "--format=%H", "--",
                            "torchsm/mirror.py"], cwd=REPO, capture_output=True, text=True,
                           check=True).stdout.split()
    return f"{added[-1]}^"


def export_revision(revision: str, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "archive", revision], cwd=REPO, capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {proc.stderr.decode()}")
    return elapsed


# -- 1. flush ---------------------------------------------------------------------------

def bench_flush(url: str, entries: int, rounds: int) -> dict:
    import redis

    from torchsm.config import Config, Home
    from torchsm.mirror import streams
    from torchsm.storage import database

    client = redis.Redis.from_url(url)
    config = Config(redis_url=url)
    samples = [streams.Entry.new("transition", f"nova{i % 5}",
                                {"from": "working", "to": "cooling", "event": "cool",
                                 "reason": None, "until": "2026-11-26T06:21:00Z",
                                 "forced": False, "status": "COOLING"}, time.time() + i)
               for i in range(entries)]
    raw_times, flush_times = [], []
    with tempfile.TemporaryDirectory() as tmp:
        home = Home(Path(tmp) / "home")
        database.initialise(home)
        queue_file = home.queue_dir / f"{streams.OPS_STREAM}.jsonl"
        lines = b"".join(e.to_line() + b"\n" for e in samples)
        for _ in range(rounds):
            client.flushall()
            raw_times.append(_raw_xadd(client, samples, config.mirror.maxlen))
            client.flushall()
            queue_file.write_bytes(lines)
            start = time.perf_counter()
            report = streams.flush(home, config)
            flush_times.append(time.perf_counter() - start)
            assert report.published[streams.OPS_STREAM] == entries
            assert client.xlen(streams.OPS_STREAM) == entries
    raw, flushed = statistics.median(raw_times), statistics.median(flush_times)
    return {"entries": entries, "raw_s": raw, "flush_s": flushed, "ratio": raw / flushed,
            "rounds": rounds}


def _raw_xadd(client, samples, maxlen: int) -> float:
    start = time.perf_counter()
    pipe = client.pipeline(transaction=False)
    for i, e in enumerate(samples, 1):
        pipe.xadd("raw", e.fields(), maxlen=maxlen, approximate=True)
        if i % 1000 == 0:
            pipe.execute()
    pipe.execute()
    return time.perf_counter() - start


# -- 2. transition processes ------------------------------------------------------------

BASELINE = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("UPDATE novas SET reason = 'bench' WHERE name = 'torch'")
conn.close()
"""


BEFORE = "transition before the mirror"
# `cool` is accepted from `cooling` too (it re-arms), so every timed call records a
# transition and publishes it.
TRANSITION = ["transition", "torch", "cool", "--for", "60"]


def bench_transitions(python: Path, before_python: Path, redis_url: str, runs: int) -> dict:
    silent = SilentServer()
    refused = f"redis://{LOOPBACK}:{free_port()}/0"
    torchsm, before = str(python.parent / "torchsm"), str(before_python.parent / "torchsm")
    cases = {  # name: (installation, command, redis_url, outage_memory_s or None)
        "baseline: python + sqlite3 + one UPDATE": (python, None, "off", None),
        BEFORE: (before_python, [before, *TRANSITION], "off", None),
        "transition, mirror off": (python, [torchsm, *TRANSITION], "off", None),
        "transition, server up": (python, [torchsm, *TRANSITION], redis_url, None),
        "transition, refused (outage remembered)":
            (python, [torchsm, *TRANSITION], refused, None),
        "transition, refused, no outage memory": (python, [torchsm, *TRANSITION], refused, 0),
        "transition, black-holed (outage remembered)":
            (python, [torchsm, *TRANSITION], silent.url, None),
        "transition, black-holed, no outage memory":
            (python, [torchsm, *TRANSITION], silent.url, 0),
    }
    with tempfile.TemporaryDirectory() as tmp:
        # a home per case: each keeps its own outage memory and queue, as a real one would
        homes = {name: _home(install, Path(tmp) / f"home{i}", memory_s)
                 for i, (name, (install, _, _, memory_s)) in enumerate(cases.items())}
        times: dict[str, list[float]] = {name: [] for name in cases}
        for run in range(runs + 1):  # run 0 warms caches and is dropped
            for name, (_, cmd, url, _) in cases.items():
                home = homes[name]
                env = {**os.environ, "TORCHSM_HOME": str(home), "TORCHSM_REDIS_URL": url}
                elapsed = timed(cmd or [str(python), "-c", BASELINE,
                                        str(home / "torchsm.db")], env)
                if run:
                    times[name].append(elapsed)
    medians = {name: statistics.median(values) for name, values in times.items()}
    return {"runs": runs, "medians": medians}


def _home(python: Path, home: Path, outage_memory_s: float | None) -> Path:
    torchsm = str(python.parent / "torchsm")
    env = {**os.environ, "TORCHSM_HOME": str(home), "TORCHSM_REDIS_URL": "off"}
    subprocess.run([torchsm, "init"], env=env, check=True, capture_output=True)
    subprocess.run([torchsm, "nova", "add", "torch"], env=env, check=True, capture_output=True)
    if outage_memory_s is not None:
        (home / "torchsm.toml").write_text(
            f"[mirror]\noutage_memory_s = {float(outage_memory_s)}\n")
    return home


def bench_imports(python: Path, runs: int) -> dict:
    cases = {"python -c pass": "pass",
             "import torchsm.novas (the transition's library, mirror included)":
                 "import torchsm.novas",
             "import torchsm.novas, redis (had the hot path used redis-py)":
                 "import torchsm.novas, redis"}
    times = {name: [] for name in cases}
    for _ in range(runs):
        for name, code in cases.items():
            times[name].append(timed([str(python), "-c", code], dict(os.environ)))
    return {name: statistics.median(values) for name, values in times.items()}


# -- report -----------------------------------------------------------------------------

def machine() -> str:
    model = cpu_model()
    server = subprocess.run(["redis-server", "--version"], capture_output=True,
                            text=True).stdout.split()
    version = next((w.split("=")[1] for w in server if w.startswith("v=")), "?")
    return (f"{dt.date.today().isoformat()}; nproc {os.cpu_count()}; CPU {model}; "
            f"Python {platform.python_version()}; redis-server {version}; "
            f"{platform.system()} {platform.release()}")


def report(flush: dict, transitions: dict, imports: dict) -> str:
    medians = transitions["medians"]
    baseline = medians["baseline: python + sqlite3 + one UPDATE"]
    before = medians[BEFORE]
    lines = [f"Machine: {machine()}", "",
             f"### Flush of {flush['entries']:,} queued entries (median of {flush['rounds']})",
             "", "| | seconds | entries/s |", "|---|---:|---:|",
             f"| raw pipelined XADD, redis-py | {flush['raw_s']:.3f} | "
             f"{flush['entries'] / flush['raw_s']:,.0f} |",
             f"| `mirror flush` (dedup script, from the file queue) | {flush['flush_s']:.3f} | "
             f"{flush['entries'] / flush['flush_s']:,.0f} |", "",
             f"Ratio (raw time / flush time): **{flush['ratio']:.2f}** (target >= 0.5)", "",
             f"### Whole `torchsm transition` processes (median of {transitions['runs']})", "",
             "| case | ms | x baseline | x before the mirror | mirror adds (ms) |",
             "|---|---:|---:|---:|---:|"]
    for name, value in medians.items():
        added = "" if name in (BEFORE, "baseline: python + sqlite3 + one UPDATE") \
            else f"{(value - before) * 1000:+.1f}"
        lines.append(f"| {name} | {value * 1000:.1f} | {value / baseline:.2f} | "
                     f"{value / before:.2f} | {added} |")
    lines += ["", "### Import cost (whole process, median)", "", "| | ms |", "|---|---:|"]
    lines += [f"| {name} | {value * 1000:.1f} |" for name, value in imports.items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=25)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3, help="flush rounds")
    parser.add_argument("--reuse-venv", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    python = regular_install("venv", REPO, args.reuse_venv)
    with tempfile.TemporaryDirectory() as tmp:
        revision = before_the_mirror()
        before_python = regular_install(
            "venv-before", export_revision(revision, Path(tmp) / "before-src"), args.reuse_venv)
        proc, url = start_redis(Path(tmp))
        try:
            flush = bench_flush(url, args.entries, args.rounds)
            transitions = bench_transitions(python, before_python, url, args.runs)
            imports = bench_imports(python, args.runs)
        finally:
            proc.terminate()
            proc.wait()
    text = report(flush, transitions, imports)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
