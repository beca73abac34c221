"""Issue 14, finding 12: odd files and odd input get one clear line, never "internal error"
or a traceback: a config that is not UTF-8, a database that is not one (or is cut short),
JSON nested 100,000 deep, a UTF-8 BOM at the top of an import file, a file in another
encoding. And a reading command never creates a home that does not exist."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from helpers import Cli, write_config
from torchsm.config import Home

DEEP_ARRAY = "[" * 100_000
DEEP_OBJECT = '{"a": ' * 100_000


def one_clear_line(err: str) -> None:
    assert err.startswith("torchsm: error: ") and err.count("\n") == 1, err
    assert "internal error" not in err and "Traceback" not in err, err


# --- a config that is not UTF-8 --------------------------------------------------------

def test_a_config_that_is_not_utf8_is_one_clear_line(cli: Cli):
    cli("nova", "add", "x")
    Home(cli.home).config_path.write_bytes(b"[safety]\nhook_burst = 3  # caf\xe9 \xff\n")
    for args in (["status"], ["nova", "list"], ["transition", "x", "cool"]):
        result = cli.fails(*args)
        one_clear_line(result.err)
        assert result.err.startswith(
            f"torchsm: error: {cli.home / 'torchsm.toml'}: not valid UTF-8 (line 2"), result.err
    hook = cli("hook", "stop", "--nova", "x", input="{}", check=False)
    assert hook.code == 1
    assert "not valid UTF-8" in hook.err and "internal error" not in hook.err


def test_a_config_with_a_utf8_bom_is_read(cli: Cli):
    Home(cli.home).config_path.write_bytes(b"\xef\xbb\xbf[safety]\nhook_burst = 3\n")
    cli("status")


def test_a_config_nested_too_deeply_is_one_clear_line(cli: Cli):
    write_config(Home(cli.home), f"a = {DEEP_ARRAY}\n")
    result = cli.fails("status")
    one_clear_line(result.err)
    assert f"{cli.home / 'torchsm.toml'}: not valid TOML" in result.err


# --- a database that is not one ---------------------------------------------------------

def _random_bytes(db: Path) -> None:
    db.write_bytes(os.urandom(50_000))


def _truncated(db: Path) -> None:
    data = db.read_bytes()
    db.write_bytes(data[:len(data) // 2])


@pytest.mark.parametrize("damage", [_random_bytes, _truncated], ids=["random", "truncated"])
def test_a_corrupt_database_is_one_clear_line_and_init_keeps_it(cli: Cli, damage):
    cli("nova", "add", "x")
    cli("transition", "x", "cool")
    cli("queue", "add", "an item")
    db = cli.home / "torchsm.db"
    for extra in ("torchsm.db-wal", "torchsm.db-shm"):
        assert not (cli.home / extra).exists()
    damage(db)
    before = db.read_bytes()
    expected = f"{db} is not a torchsm database, or is corrupt; restore it from a backup"
    for args in (["status"], ["status", "--json"], ["nova", "list"], ["history", "x"],
                 ["queue", "list"], ["usage"], ["transition", "x", "work"],
                 ["db", "current"], ["db", "upgrade"], ["init"]):
        result = cli.fails(*args)
        one_clear_line(result.err)
        assert result.err.startswith("torchsm: error: database error: ")
        assert expected in result.err and "run `torchsm init`" in result.err, (args, result.err)
    hook = cli("hook", "stop", "--nova", "x", input='{"session_id": "s"}', check=False)
    assert hook.code in (0, 1), hook
    assert hook.err.count("\n") == 1 and str(db) in hook.err and "internal error" not in hook.err
    assert db.read_bytes() == before  # nothing, init included, wrote over it


def test_init_refuses_a_sqlite_file_that_is_not_torchsm(bare_cli: Cli):
    bare_cli.home.mkdir(mode=0o700)
    db = bare_cli.home / "torchsm.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, path TEXT)")
    conn.commit()
    conn.close()
    before = db.read_bytes()
    result = bare_cli.fails("init")
    one_clear_line(result.err)
    assert result.err == (f"torchsm: error: database error: tables but no torchsm schema "
                          f"version: {db} is not a torchsm database, or is corrupt; restore "
                          "it from a backup, or move it aside and run `torchsm init` to start "
                          "a new one\n")
    assert db.read_bytes() == before


def test_init_still_completes_an_empty_database_file(bare_cli: Cli):
    """A 0-byte torchsm.db (an init killed at its first step) is not corrupt."""
    bare_cli.home.mkdir(mode=0o700)
    (bare_cli.home / "torchsm.db").touch()
    bare_cli("init")
    bare_cli("status")


# --- JSON nested 100,000 deep ------------------------------------------------------------

def test_deep_json_on_a_hooks_stdin_never_exits_2(cli: Cli):
    cli("nova", "add", "x")
    for payload in (DEEP_ARRAY, DEEP_OBJECT):
        result = cli("hook", "stop", "--nova", "x", input=payload, check=False)
        assert result.code in (0, 1) and result.err.count("\n") == 1, result
        assert "Traceback" not in result.err
    assert cli("queue", "list", "--json").json() == []


def test_deep_json_on_a_hooks_stdin_is_a_clear_line(cli: Cli):
    """The hook's payload is parsed in torchsm.hooks.handlers (`_parse_payload`): the fast
    path never reaches torchsm.cli.app's handler, so the parser itself must catch
    RecursionError."""
    cli("nova", "add", "x")
    for payload in (DEEP_ARRAY, DEEP_OBJECT):
        result = cli("hook", "stop", "--nova", "x", input=payload, check=False)
        assert result.code == 1 and "nested too deeply" in result.err, result
        assert "internal error" not in result.err, result


def test_the_cli_maps_a_recursion_error_to_a_clear_line(home: Home, monkeypatch, capsys):
    """Whatever parses too-deep input on the click path, the line says what happened."""
    import torchsm.cli.common as common
    from torchsm.cli.app import run_click

    def too_deep(_home):
        raise RecursionError("maximum recursion depth exceeded while decoding a JSON array")

    monkeypatch.delenv("TORCHSM_DEBUG", raising=False)
    monkeypatch.setattr(common, "load_config", too_deep)
    assert run_click(["--home", str(home.path), "status"]) == 1
    err = capsys.readouterr().err
    one_clear_line(err)
    assert "nested too deeply" in err


def test_deep_json_in_an_import_line_is_one_malformed_line(cli: Cli, tmp_path):
    path = tmp_path / "deep.jsonl"
    path.write_text('{"text": "first"}\n' + DEEP_OBJECT + '\n{"text": "third"}\n')
    result = cli("queue", "import", str(path), "--json")
    report = result.json()
    assert report["added"] == 2
    [bad] = report["malformed"]
    assert bad["line"] == 2 and "nested too deeply" in bad["error"]
    assert "internal error" not in result.err


# --- import files: a BOM, another encoding ----------------------------------------------

@pytest.mark.parametrize("body, texts", [
    (b'{"text": "hello", "priority": "high"}\n{"text": "two"}\n', ["hello", "two"]),
    (b"legacy one\nlegacy two\n", ["legacy one", "legacy two"]),
])
def test_a_utf8_bom_does_not_break_the_first_line(cli: Cli, tmp_path, body, texts):
    path = tmp_path / "with-bom.txt"
    path.write_bytes(b"\xef\xbb\xbf" + body)
    report = cli("queue", "import", str(path), "--json").json()
    assert report["added"] == 2 and report["malformed"] == []
    items = cli("queue", "list", "--json").json()
    assert sorted(i["text"] for i in items) == sorted(texts)
    if body.startswith(b"{"):
        assert {i["text"]: i["priority"] for i in items}["hello"] == "high"


def test_a_latin1_import_file_names_each_bad_line(cli: Cli, tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("fine line\ncaf\u00e9 au lait\n".encode("latin-1"))
    result = cli("queue", "import", str(path))
    assert f"{path}:2: not valid UTF-8" in result.err
    assert "internal error" not in result.err and "Traceback" not in result.err


def test_a_utf16_import_file_is_one_clear_line(cli: Cli, tmp_path):
    path = tmp_path / "utf16.txt"
    path.write_bytes("first\nsecond\n".encode("utf-16"))
    result = cli.fails("queue", "import", str(path))
    one_clear_line(result.err)
    assert str(path) in result.err and "UTF-16" in result.err
    assert cli("queue", "list", "--json").json() == []


# --- a home that does not exist stays so ------------------------------------------------

READING = [["status"], ["status", "--json"], ["nova", "list"], ["nova", "show", "x"],
           ["history", "x"], ["queue", "list"], ["usage"], ["usage", "x"], ["db", "current"],
           ["wake", "list"], ["message", "list", "x"]]


@pytest.mark.parametrize("url", ["off", "redis://127.0.0.1:1/0"], ids=["mirror-off", "mirror-away"])
@pytest.mark.parametrize("args", READING, ids=" ".join)
def test_reading_commands_do_not_create_a_missing_home(bare_cli: Cli, args, url):
    result = bare_cli.fails(*args, TORCHSM_REDIS_URL=url)
    assert result.err == (f"torchsm: error: no torchsm home at {bare_cli.home}: "
                          "run `torchsm init`\n")
    assert not bare_cli.home.exists()


def test_a_refused_write_does_not_create_a_missing_home(bare_cli: Cli):
    result = bare_cli.fails("nova", "add", "x", TORCHSM_REDIS_URL="redis://127.0.0.1:1/0")
    assert "no torchsm home at" in result.err
    assert not bare_cli.home.exists()


@pytest.mark.parametrize("args", [["mirror", "status"], ["mirror", "flush"]], ids=" ".join)
def test_mirror_commands_do_not_create_a_missing_home(bare_cli: Cli, args):
    result = bare_cli(*args, check=False, TORCHSM_REDIS_URL="redis://127.0.0.1:1/0")
    assert not bare_cli.home.exists()
    assert result.code == 1 and "no torchsm home at" in result.err


@pytest.mark.parametrize("value", ["inf", "1e300", "nan", "-5", "0"])
def test_transition_for_must_be_finite_and_in_range(cli: Cli, value):
    cli("nova", "add", "torch")
    result = cli.fails("transition", "torch", "cool", "--for", value)
    assert result.err == ("torchsm: error: --for must be a positive number of seconds, at "
                          "most 315360000 (ten years)\n")
    assert cli("status", "torch", "--json").json()[0]["state"] == "working"


# --- an argument that is not UTF-8 ------------------------------------------------------

@pytest.mark.parametrize("command", [["queue", "add", "fix the \udcff parser"],
                                     ["message", "send", "torch", "torch", "caf\udce9"],
                                     ["wake", "torch", "production \udcff is down"]],
                         ids=["queue add", "message send", "wake"])
def test_an_argument_that_is_not_utf8_is_one_clear_line_and_stores_nothing(cli: Cli, command):
    cli("nova", "add", "torch")
    failed = cli.fails(*command)  # the stray byte reaches torchsm as a lone surrogate
    one_clear_line(failed.err)
    assert "is not valid UTF-8 (byte 0x" in failed.err and "nothing was stored" in failed.err
    conn = sqlite3.connect(Path(cli.home) / "torchsm.db")
    try:
        assert [conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in ("work_items", "messages", "wake_signals")] == [0, 0, 0]
    finally:
        conn.close()
