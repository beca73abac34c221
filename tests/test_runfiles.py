"""HOME/run: the supervisor lock and plan files; the change watch the waiting loop polls."""

import json
import os
import subprocess
import sys

import pytest

from torchsm import novas
from torchsm.config import Home, load_config
from torchsm.errors import SupervisorRunning
from torchsm.storage import run_files
from torchsm.storage.change_watch import ChangeWatch


def test_one_lock_per_nova_and_the_holder_is_named(home):
    lock = run_files.lock_supervisor(home, "torch")
    try:
        holder = subprocess.run(
            [sys.executable, "-c", "import sys\nfrom torchsm.storage import run_files\n"
             "from torchsm.config import Home\nfrom pathlib import Path\n"
             "try:\n    run_files.lock_supervisor(Home(Path(sys.argv[1])), 'torch')\n"
             "except Exception as exc:\n    print(exc)", str(home.path)],
            capture_output=True, text=True).stdout.strip()
        assert holder == f"a supervisor for torch is already running (pid {os.getpid()})"
        other = run_files.lock_supervisor(home, "echo")  # another Nova is not blocked
        other.release()
    finally:
        lock.release()
    run_files.lock_supervisor(home, "torch").release()  # free again
    assert (home.path / "run").stat().st_mode & 0o777 == 0o700


def test_the_lock_is_exclusive_within_a_process_too(home):
    lock = run_files.lock_supervisor(home, "torch")
    try:
        with pytest.raises(SupervisorRunning):
            run_files.lock_supervisor(home, "torch")
    finally:
        lock.release()


def test_a_supervisor_starting_waits_while_another_cleans_up_after_a_dead_one(home):
    # the lock file names a supervisor that died; another Nova's supervisor holds the
    # lock for a moment to clean up after it (recovery.recover_others)
    dead = subprocess.run([sys.executable, "-c", "import sys\nfrom torchsm.storage import run_files\n"
                           "from torchsm.config import Home\nfrom pathlib import Path\n"
                           "run_files.lock_supervisor(Home(Path(sys.argv[1])), 'torch')",
                           str(home.path)], check=True)
    assert dead.returncode == 0
    cleaner = run_files.lock_if_free(home, "torch")
    assert cleaner is not None
    starting = subprocess.Popen(
        [sys.executable, "-c", "import sys\nfrom torchsm.storage import run_files\n"
         "from torchsm.config import Home\nfrom pathlib import Path\n"
         "run_files.lock_supervisor(Home(Path(sys.argv[1])), 'torch')\nprint('locked')",
         str(home.path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            starting.wait(0.5)  # neither fails nor takes the lock while it is held
    finally:
        cleaner.release()
    out, err = starting.communicate(timeout=10)
    assert (starting.returncode, out.strip()) == (0, "locked"), err


def test_a_plan_left_by_a_dead_supervisor_is_ignored(home):
    run_files.write_plan(home, "torch", {"pid": 2 ** 22 + 12345, "next_start": "x"})
    assert run_files.read_plan(home, "torch") is None
    run_files.write_plan(home, "torch", {"pid": os.getpid(), "next_start": "2026-11-26T00:00:00Z"})
    assert run_files.read_plan(home, "torch")["next_start"] == "2026-11-26T00:00:00Z"
    (home.path / "run" / "torch.json").write_text("{torn")
    assert run_files.read_plan(home, "torch") is None
    run_files.remove_plan(home, "torch")
    run_files.remove_plan(home, "torch")  # twice is fine
    assert run_files.with_plans(home, [{"nova": "torch"}]) == [
        {"nova": "torch", "next_start": None, "plan": None}]


def test_the_change_watch_sees_commits_of_other_connections(home):
    config = load_config(home)
    novas.add(home, config, "torch")
    with ChangeWatch(home) as watch:
        assert not watch.changed()
        novas.transition(home, config, "torch", "cool", for_s=5)
        assert watch.changed() and not watch.changed()
        state = watch.read(lambda conn: conn.execute(
            "SELECT state FROM novas").fetchone()[0])
        assert state == "cooling" and not watch.changed()  # its own reads change nothing


def test_status_stays_light_while_a_supervisor_runs(cli):
    from test_imports import probe

    cli("nova", "add", "torch")
    run_files.write_plan(Home(cli.home), "torch", {"pid": os.getpid(), "state": "waiting",
                                                  "next_start": None, "why": "idle"})
    assert probe(cli, "status") == {"code": 0, "heavy": []}
    assert json.loads(cli("status", "--json").out)[0]["plan"]["why"] == "idle"
