"""Helpers for tests: the real `torchsm` CLI in a subprocess, paths, config files."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from torchsm.config import Home

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
PAYLOADS = FIXTURES / "claude-code-hooks"  # captured from the real Claude Code CLI
T0 = 1_800_000_000.0  # the fixed "now" of the tests that pass the time in
# A supervisor that starts sessions 0.2 s apart and never stretches for the load.
FAST = """
redis_url = "off"
[personalities.torch]
base_cycle_s = 0.2
[supervisor]
stop_grace_s = 1
load_stretch_above = 0
"""


def payload(name: str, **changes) -> str:
    """A captured hook payload as JSON text, with `changes` to its fields."""
    data = json.loads((PAYLOADS / name).read_text())
    data.update(changes)
    return json.dumps(data)


def torchsm_executable() -> list[str]:
    """The installed console script when there is one, else `python -m torchsm`."""
    script = Path(sys.executable).parent / "torchsm"
    return [str(script)] if script.exists() else [sys.executable, "-m", "torchsm"]


def default_ctrl_c() -> None:
    """For `preexec_fn`: the child gets Ctrl-C's default action even when the suite runs
    with SIGINT ignored (a background job of a non-interactive shell, `nohup`): Python
    keeps an ignored SIGINT ignored, so a test of Ctrl-C would wait for ever."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self):
        return json.loads(self.out)


@dataclass
class Cli:
    """Runs the real CLI in a subprocess against one home."""

    home: Path

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("TORCHSM_DEBUG", None)
        env["TORCHSM_HOME"] = str(self.home)
        env.setdefault("TORCHSM_REDIS_URL", "off")
        # text output's times as ISO 8601 UTC, as tests compare them (tests/test_cli_times.py
        # passes TORCHSM_UTC="" for the local times with their ages a person sees)
        env.setdefault("TORCHSM_UTC", "1")
        env.update(extra)
        return env

    def __call__(self, *args: str, input: str | None = None, check: bool = True,
                 timeout: float = 60, **env: str) -> Result:
        proc = subprocess.run([*torchsm_executable(), *args], input=input,
                              capture_output=True, text=True, env=self.env(**env),
                              timeout=timeout, stdin=None if input is not None else subprocess.DEVNULL)
        result = Result(proc.returncode, proc.stdout, proc.stderr)
        if check and proc.returncode != 0:
            raise AssertionError(f"torchsm {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
        return result

    def fails(self, *args: str, code: int = 1, **kw) -> Result:
        result = self(*args, check=False, **kw)
        assert result.code == code, (result.code, result.out, result.err)
        return result


NULL_DEVICE = os.makedev(1, 3)  # the numbers of /dev/null
ZERO_DEVICE = os.makedev(1, 5)  # and of /dev/zero


def char_device(path: Path, numbers: int = NULL_DEVICE) -> Path:
    """A character device node in the test's own folder, never the host's /dev (root
    only; the test is skipped where it cannot be made or opened)."""
    import pytest

    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, numbers)
        with open(path, "rb", buffering=0):  # a folder on a `nodev` mount refuses it
            pass
    except OSError as exc:
        pytest.skip(f"cannot make a character device here: {exc}")
    return path


def add_novas(home: Home, *names: str, now: float | None = None) -> None:
    """Novas added through the library (a CLI call each costs ~0.2 s), the mirror off."""
    from torchsm import novas
    from torchsm.config import Config

    for name in names:
        novas.add(home, Config(redis_url="off"), name, now=now)


def claude_of_version(folder: Path, version: str = "2.1.332") -> Path:
    """A `claude` that only answers `--version`, as doctor asks it."""
    path = folder / "claude"
    path.write_text(f"#!/bin/sh\necho '{version} (Claude Code)'\n")
    path.chmod(0o755)
    return path


def write_config(home: Home, text: str) -> None:
    home.path.mkdir(parents=True, exist_ok=True)
    home.config_path.write_text(text)


def rows(cli: Cli, sql: str, *args) -> list[tuple]:
    """Rows of a query on the CLI's database, read straight from SQLite."""
    import sqlite3

    conn = sqlite3.connect(cli.home / "torchsm.db")
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def stop_failure_outcomes(cli: Cli, count: int, timeout_s: float = 30) -> list[str]:
    """The outcomes of the first `count` StopFailure hook runs, once recorded. The hook
    outlives `claude -p` (it ignores the SIGTERM Claude Code sends it), so it may record
    after the supervisor has settled the session, and answered it."""
    import time

    deadline = time.monotonic() + timeout_s
    sql = "SELECT outcome FROM hook_runs WHERE event = 'stop-failure' ORDER BY id"
    while len(found := rows(cli, sql)) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    return [outcome for (outcome,) in found]


HEAVY = ("sqlalchemy", "alembic", "redis")
_PROBE = """
import json, sys
from torchsm.cli import execute
code = execute(sys.argv[2:])
sys.stdout.flush()
watched = set(sys.argv[1].split(","))
loaded = sorted({m.split('.')[0] for m in sys.modules} & watched)
print(json.dumps({"code": code, "heavy": loaded}), file=sys.stderr)
"""


def loaded_modules(cli: Cli, *args: str, watch: tuple[str, ...] = HEAVY, input: str | None = None,
                   **env: str) -> dict:
    """Run the CLI in a fresh interpreter: its exit code and which `watch` modules it loaded
    (`heavy`), plus what it printed (`out`)."""
    proc = subprocess.run([sys.executable, "-c", _PROBE, ",".join(watch), *args], input=input,
                          capture_output=True, text=True, env=cli.env(**env), timeout=60)
    return {**json.loads(proc.stderr.strip().splitlines()[-1]), "out": proc.stdout}


def wait_for(predicate, timeout=15.0, every=0.02):
    """`predicate()`'s first true value, polled every `every` s; AssertionError after
    `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out waiting")
