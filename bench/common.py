"""Helpers shared by the whole-process benchmarks: a regular (non-editable) install,
interleaved timing, and a machine description for BENCHMARKS.md."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import tempfile
import time
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def regular_install(where: Path) -> Path:
    """A venv with torchsm installed from the checkout, not editable (an editable install
    adds ~9 ms to every interpreter start, FIELD-NOTES). Returns its bin/ folder."""
    bin_dir = where / "bin"
    if not (bin_dir / "torchsm").exists():
        venv.create(where, with_pip=True)
        subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "--quiet",
                        "--disable-pip-version-check", str(REPO)], check=True)
    return bin_dir


def bench_setup(description: str, prefix: str) -> tuple[argparse.Namespace, Path, Path, dict]:
    """Parse --rounds/--venv, make a regular install and a home with one Nova `torch`.
    Returns (args, bin_dir, home, env)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--venv", type=Path,
                        default=Path(tempfile.gettempdir()) / "torchsm-bench-venv")
    args = parser.parse_args()
    bin_dir = regular_install(args.venv)
    home = Path(tempfile.mkdtemp(prefix=prefix))
    env = {**os.environ, "TORCHSM_HOME": str(home), "TORCHSM_REDIS_URL": "off"}
    for argv in (["init"], ["nova", "add", "torch"]):
        subprocess.run([str(bin_dir / "torchsm"), *argv], env=env, check=True,
                       stdout=subprocess.DEVNULL)
    return args, bin_dir, home, env


def time_once(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   stdin=subprocess.DEVNULL)
    return time.perf_counter() - started


def interleaved(cases: dict[str, list[str]], env: dict[str, str], rounds: int) -> dict[str, list[float]]:
    """Run every case once per round, in turn, so machine noise hits all of them alike."""
    timings: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, argv in cases.items():
            timings[name].append(time_once(argv, env))
    return timings


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def machine() -> str:
    cpu = cpu_model()
    return (f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, "
            f"SQLite {__import__('sqlite3').sqlite_version}, {platform.system()} "
            f"{platform.release()}")


def wait_until(predicate, timeout: float = 30, every: float = 0.02) -> None:
    """Poll `predicate` until it holds; TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not ready within {timeout:g} s")
        time.sleep(every)
