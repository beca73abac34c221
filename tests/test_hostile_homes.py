"""Homes torchsm cannot fully use (issue 20, finding 11): a database a newer torchsm
wrote, a read-only home (reading commands work, changes are one clear line), an unreadable
home, `init` on a path that is a file or in a folder it may not write. Never an internal
error, and nothing stored is lost.

The tests run as root, whom file modes do not stop: here a command runs without the
capabilities that let root ignore them (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), so a
mode stops it as it stops any user."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from helpers import Cli, Result, rows, torchsm_executable
from torchsm.storage.store import SCHEMA_REVISION


def without_override(cli: Cli, *args: str, input: str | None = None, **env: str) -> Result:
    """Run the CLI as a user whom file modes stop: root without the capabilities that
    override them (skipped where that cannot be arranged)."""
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("setpriv is needed to run as root that file modes stop")
        prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search"]
    proc = subprocess.run([*prefix, *torchsm_executable(), *args], input=input,
                          capture_output=True, text=True, env=cli.env(**env), timeout=60,
                          stdin=None if input is not None else subprocess.DEVNULL)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def one_line(result: Result, code: int = 1) -> str:
    assert result.code == code, (result.code, result.out, result.err)
    assert result.err.startswith("torchsm: error: ") and result.err.count("\n") == 1, result.err
    assert "internal error" not in result.err and "Traceback" not in result.err, result.err
    return result.err


def set_revision(cli: Cli, revision: str) -> None:
    conn = sqlite3.connect(cli.home / "torchsm.db")
    with conn:
        conn.execute("UPDATE alembic_version SET version_num = ?", (revision,))
    conn.close()


# --- a database from a newer torchsm ----------------------------------------------------

def test_a_database_from_a_newer_torchsm_is_refused_and_kept(cli: Cli):
    cli("nova", "add", "torch")
    set_revision(cli, "0099")
    for args in (["db", "upgrade"], ["init"], ["status"], ["nova", "add", "echo"]):
        err = one_line(cli(*args, check=False))
        assert "0099" in err and "newer torchsm" in err and "db upgrade" not in err, err
    assert rows(cli, "SELECT version_num FROM alembic_version") == [("0099",)]
    assert rows(cli, "SELECT name FROM novas") == [("torch",)]
    assert cli("db", "current", "--json").json() == {
        "revision": "0099", "head": SCHEMA_REVISION, "at_head": False}
    report = cli("doctor", "--json", check=False).json()
    [schema] = [c for c in report["checks"] if c["name"] == "schema"]
    assert schema["ok"] is False and schema["fix"].startswith("upgrade torchsm")


def test_a_revision_that_is_not_torchsms_is_refused(cli: Cli):
    set_revision(cli, "ae1027a6acf")
    err = one_line(cli("db", "upgrade", check=False))
    assert "ae1027a6acf" in err


def test_every_revision_is_a_number_in_sequence():
    """The hot path tells a newer schema from an older one by number: keep it so."""
    from alembic.script import ScriptDirectory

    from torchsm.storage import database

    script = ScriptDirectory.from_config(database._alembic_config(database.Home(Path("."))))
    revisions = sorted(r.revision for r in script.walk_revisions())
    assert revisions == [f"{n:04d}" for n in range(1, int(SCHEMA_REVISION) + 1)]


# --- a read-only home -------------------------------------------------------------------

@pytest.fixture
def read_only(cli: Cli) -> Cli:
    """A home with a Nova, a work item and history, then made read-only (chmod -R a-w)."""
    cli("nova", "add", "torch")
    cli("queue", "add", "fix the tests", "--nova", "torch")
    cli("transition", "torch", "cool", "--for", "60")
    for path in [cli.home, *cli.home.rglob("*")]:
        path.chmod(path.stat().st_mode & ~0o222)
    yield cli
    for path in [cli.home, *cli.home.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)


READING = [["status"], ["status", "torch", "--json"], ["nova", "list"], ["nova", "show", "torch"],
           ["history", "torch"], ["queue", "list"], ["queue", "show", "1"], ["wake", "list"],
           ["db", "current"], ["usage"]]


@pytest.mark.parametrize("args", READING, ids=" ".join)
def test_reading_commands_work_on_a_read_only_home(read_only: Cli, args):
    result = without_override(read_only, *args)
    assert (result.code, result.err) == (0, ""), result
    assert result.out


def test_what_reading_commands_show_on_a_read_only_home(read_only: Cli):
    [status] = without_override(read_only, "status", "torch", "--json").json()
    assert status["state"] == "cooling"
    assert "fix the tests" in without_override(read_only, "queue", "list").out
    assert "cool" in without_override(read_only, "history", "torch").out


def test_the_mirror_memory_is_skipped_on_a_read_only_home(read_only: Cli):
    down = "redis://127.0.0.1:1/0"  # nothing listens there: an outage to remember
    for args in (["mirror", "status"], ["message", "list", "torch"], ["status"]):
        result = without_override(read_only, *args, TORCHSM_REDIS_URL=down)
        assert (result.code, result.err) == (0, ""), (args, result)
    assert not (read_only.home / "queue" / "outage.json").exists()


WRITING = [["transition", "torch", "work", "--force"], ["queue", "add", "more"],
           ["nova", "add", "echo"], ["queue", "claim", "--nova", "torch"],
           ["wake", "torch", "prod is down"]]


@pytest.mark.parametrize("args", WRITING, ids=" ".join)
def test_changes_to_a_read_only_home_are_one_clear_line(read_only: Cli, args):
    before = rows(read_only, "SELECT count(*) FROM history"), \
        rows(read_only, "SELECT count(*), max(status) FROM work_items")
    err = one_line(without_override(read_only, *args))
    assert "read-only" in err, err
    assert (rows(read_only, "SELECT count(*) FROM history"),
            rows(read_only, "SELECT count(*), max(status) FROM work_items")) == before


def test_upgrading_a_read_only_home_is_one_clear_line(cli: Cli):
    set_revision(cli, "0009")
    cli.home.chmod(0o500)
    (cli.home / "torchsm.db").chmod(0o400)
    try:
        assert "read-only" in one_line(without_override(cli, "db", "upgrade"))
        current = without_override(cli, "db", "current").out
        assert current == f"0009 (head is {SCHEMA_REVISION})\n"
    finally:
        cli.home.chmod(0o700)
        (cli.home / "torchsm.db").chmod(0o600)
    assert rows(cli, "SELECT version_num FROM alembic_version") == [("0009",)]


def test_a_hook_on_a_read_only_home_exits_1_not_2(read_only: Cli):
    result = without_override(read_only, "hook", "stop", "--nova", "torch",
                              input='{"session_id": "s", "stop_hook_active": false}')
    assert result.code in (0, 1) and "Traceback" not in result.err, result


# --- an unreadable home, and homes init cannot make -------------------------------------

@pytest.mark.parametrize("args", [["status"], ["init"], ["nova", "add", "x"], ["db", "current"],
                                  ["db", "upgrade"], ["queue", "list"]], ids=" ".join)
def test_an_unreadable_home_is_one_clear_line(cli: Cli, args):
    cli.home.chmod(0o000)
    try:
        err = one_line(without_override(cli, *args))
    finally:
        cli.home.chmod(0o700)
    assert f"{cli.home}: permission denied" in err.lower(), err
    assert cli("db", "current", "--json").json()["at_head"] is True


def test_init_on_a_path_that_is_a_file(bare_cli: Cli):
    bare_cli.home.parent.mkdir(parents=True, exist_ok=True)
    bare_cli.home.write_text("my notes")
    for args in (["init"], ["status"], ["nova", "add", "torch"]):
        err = one_line(bare_cli(*args, check=False))
        assert f"{bare_cli.home} is not a folder" in err, err
    assert bare_cli.home.read_text() == "my notes"


def test_init_in_a_folder_it_may_not_write(tmp_path: Path):
    parent = tmp_path / "locked"
    parent.mkdir()
    parent.chmod(0o555)
    cli = Cli(parent / "home")
    try:
        err = one_line(without_override(cli, "init"))
    finally:
        parent.chmod(0o755)
    assert err == (f"torchsm: error: cannot create the torchsm home {cli.home}: "
                   "permission denied\n")
    assert list(parent.iterdir()) == []
