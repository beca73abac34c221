"""The CLI surface of CONTRACT.md: commands exist, have help, and fail as documented."""

import sqlite3
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from helpers import Cli, torchsm_executable, write_config
from torchsm.cli.app import COMMANDS

def test_every_registered_command_loads_and_has_a_docstring():
    from torchsm.cli.app import cli
    import click

    ctx = click.Context(cli)
    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        assert command is not None and command.help, name


def test_top_level_help_lists_commands(bare_cli: Cli):
    out = bare_cli("--help").out
    for name in ("init", "nova", "status", "transition", "history", "db"):
        assert f"  {name} " in out


def test_usage_errors_exit_2(bare_cli: Cli):
    assert bare_cli.fails("frobnicate", code=2).err.endswith("No such command 'frobnicate'.\n")
    assert bare_cli.fails("transition", "torch", code=2).err
    assert bare_cli.fails("history", "x", "--limit", "0", code=2).err


def test_uninitialised_home(bare_cli: Cli):
    for command in (["status"], ["nova", "list"], ["transition", "torch", "cool"],
                    ["history", "torch"], ["nova", "add", "torch"], ["db", "current"],
                    ["db", "upgrade"]):
        result = bare_cli.fails(*command)
        assert result.err == (f"torchsm: error: no torchsm home at {bare_cli.home}: "
                              "run `torchsm init`\n"), command


def test_init_is_idempotent_and_private(bare_cli: Cli):
    first = bare_cli("init", "--json").json()
    assert first == {"home": str(bare_cli.home), "created": True,
                     "revision": bare_cli("db", "current", "--json").json()["head"]}
    assert bare_cli("init", "--json").json()["created"] is False
    assert (bare_cli.home.stat().st_mode & 0o777) == 0o700
    assert ((bare_cli.home / "torchsm.db").stat().st_mode & 0o777) == 0o600
    assert (bare_cli.home / "queue").is_dir() and (bare_cli.home / "log").is_dir()


def test_global_options_before_or_after_the_command(cli: Cli, tmp_path):
    cli("nova", "add", "torch")
    before = Cli(tmp_path / "elsewhere")("--home", str(cli.home), "--json", "status").json()
    after = Cli(tmp_path / "elsewhere")("status", "--home", str(cli.home), "--json").json()
    assert before == after and before[0]["nova"] == "torch"


def test_status_json_shape(cli: Cli):
    assert cli("status", "--json").json() == []
    cli("nova", "add", "torch")
    cli("transition", "torch", "cool", "--for", "30", "--reason", "test")
    [row] = cli("status", "torch", "--json").json()
    assert set(row) == {"nova", "state", "since", "until", "reason", "personality", "cool_streak", "account",
                        "limit_hold", "next_start", "plan", "why"}
    assert row["why"] == f"cooling until {row['until']} (test)"  # now; `reason`: the history's
    assert (row["next_start"], row["plan"]) == (None, None)  # no supervisor runs
    assert (row["nova"], row["state"], row["reason"], row["personality"]) == (
        "torch", "cooling", "test", "torch")
    assert row["until"].endswith("Z")


def test_transition_json_shape_and_refusal(cli: Cli):
    cli("nova", "add", "torch")
    out = cli("transition", "torch", "cool", "--for", "60", "--json").json()
    assert {k: out[k] for k in ("nova", "from", "to", "event")} == {
        "nova": "torch", "from": "working", "to": "cooling", "event": "cool"}
    assert out["at"].endswith("Z") and out["until"].endswith("Z") and out["recorded"] is True
    refused = cli.fails("transition", "torch", "work")
    assert refused.err == (f"torchsm: error: cannot work torch: cooling until {out['until']} "
                           "(wait, or use --force)\n")
    assert refused.out == ""
    forced = cli("transition", "torch", "work", "--force").out
    assert forced.startswith("torch: cooling -> working (work)") and "[forced]" in forced
    assert cli("transition", "torch", "work").out == "torch: already working\n"


@pytest.mark.parametrize("args, message", [
    (["transition", "ghost", "cool"], "no Nova named 'ghost'"),
    (["transition", "torch", "compact", "--for", "5"], "--for applies only to cool and meditate"),
    (["transition", "torch", "cool", "--for", "-5"],
     "--for must be a positive number of seconds, at most 315360000 (ten years)"),
    (["transition", "Bad Name", "cool"], "invalid Nova name 'Bad Name': use [a-z0-9][a-z0-9_-]{0,31}"),
    (["nova", "add", "-x"], None),
    (["nova", "add", "UPPER"], "invalid Nova name 'UPPER': use [a-z0-9][a-z0-9_-]{0,31}"),
    (["nova", "add", "a" * 33], f"invalid Nova name '{'a' * 33}': use [a-z0-9][a-z0-9_-]{{0,31}}"),
    (["nova", "add", "torch"], "a Nova named 'torch' already exists"),
    (["nova", "show", "ghost"], "no Nova named 'ghost'"),
    (["nova", "remove", "ghost"], "no Nova named 'ghost'"),
    (["status", "ghost"], "no Nova named 'ghost'"),
    (["history", "ghost"], "no Nova named 'ghost'"),
])
def test_error_paths_are_one_line_and_exit_1(cli: Cli, args, message):
    cli("nova", "add", "torch")
    if message is None:  # looks like an option: a usage error, exit 2
        cli.fails(*args, code=2)
        return
    result = cli.fails(*args)
    assert result.err == f"torchsm: error: {message}\n"
    assert "Traceback" not in result.err and result.out == ""


def test_history_and_remove(cli: Cli):
    cli("nova", "add", "torch")
    for event in ("dream", "work", "compact", "work", "cool"):
        cli("transition", "torch", event, "--reason", f"r-{event}")
    rows = cli("history", "torch", "--json").json()
    assert [(r["from"], r["to"]) for r in rows] == [
        ("working", "dreaming"), ("dreaming", "working"), ("working", "compacting"),
        ("compacting", "working"), ("working", "cooling")]
    assert set(rows[0]) == {"nova", "from", "to", "event", "reason", "at", "until", "forced"}
    assert [r["event"] for r in cli("history", "torch", "-n", "2", "--json").json()] == ["work", "cool"]
    assert "dreaming" in cli("history", "torch").out
    assert cli("nova", "show", "torch", "--json").json()["transitions"] == 5
    cli("nova", "remove", "torch")
    assert cli("nova", "list", "--json").json() == []
    cli("nova", "add", "torch")
    assert cli("history", "torch", "--json").json() == []


def test_schema_out_of_date_is_a_clear_error(cli: Cli):
    conn = sqlite3.connect(cli.home / "torchsm.db")
    conn.execute("UPDATE alembic_version SET version_num = '0001'")
    conn.commit()
    conn.close()
    result = cli.fails("status")
    assert result.err == ("torchsm: error: database schema is at 0001, this torchsm needs "
                          f"{cli('db', 'current', '--json', check=False).json()['head']}: "
                          "run `torchsm db upgrade`\n")


def test_corrupt_database_is_a_clear_error(cli: Cli):
    (cli.home / "torchsm.db").write_bytes(b"this is not a database" * 100)
    for suffix in ("-wal", "-shm"):
        (cli.home / f"torchsm.db{suffix}").unlink(missing_ok=True)
    result = cli.fails("status")
    assert result.err.startswith("torchsm: error: database error: file is not a database")
    assert result.err.count("\n") == 1


def test_locked_database_is_retried_then_a_clear_error(cli: Cli):
    cli("nova", "add", "torch")
    write_config(__import__("torchsm.config", fromlist=["Home"]).Home(cli.home),
                 "[db]\nlock_timeout_s = 0.5\n")
    holder = sqlite3.connect(cli.home / "torchsm.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        result = cli.fails("transition", "torch", "cool")
        assert time.monotonic() - started >= 0.5
        assert result.err == ("torchsm: error: database is locked by another process "
                              "(gave up after 0.5s)\n")
        # reads are not blocked by a writer in WAL mode
        assert cli("status", "torch", "--json").json()[0]["state"] == "working"
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    # a lock released within the timeout is waited for
    holder = sqlite3.connect(cli.home / "torchsm.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(cli, "transition", "torch", "cool", "--json")
        time.sleep(0.2)
        holder.execute("ROLLBACK")
        assert pending.result().json()["to"] == "cooling"
    holder.close()


def _transition_argv(event: str) -> list[str]:
    extra = ["--for", "0.01"] if event in ("cool", "meditate") else ["--force"]
    return [*torchsm_executable(), "transition", "torch", event, *extra]


def test_concurrent_cli_processes(cli: Cli):
    cli("nova", "add", "torch")
    events = ["cool", "dream", "work", "compact", "meditate"] * 4
    procs = [subprocess.Popen(_transition_argv(e), env=cli.env(), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for e in events]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode in (0, 1) and "Traceback" not in err
        assert err == "" or err.startswith("torchsm: error: cannot ")
    rows = cli("history", "torch", "-n", "1000", "--json").json()
    assert len(rows) > 5
    for previous, row in zip(rows, rows[1:]):
        assert row["from"] == previous["to"]
    assert cli("status", "torch", "--json").json()[0]["state"] == rows[-1]["to"]
