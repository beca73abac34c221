"""Migration 0006 (accounts): a home from before accounts keeps its Novas, on the account
`default`, and per window the latest word any of its Novas had; and back down again."""

import sqlite3

import pytest

from torchsm.config import Home
from torchsm.storage import database
from torchsm.storage.store import SCHEMA_REVISION

T0 = 1_790_000_000.0


def at_revision(home: Home, revision: str) -> Home:
    """A fresh home whose database Alembic built up to `revision`."""
    for folder in (home.path, home.queue_dir, home.log_dir):
        folder.mkdir(parents=True, exist_ok=True)
    home.db_path.touch()
    assert database.upgrade(home, revision=revision) == revision
    return home


def at_0005(home: Home) -> Home:
    return at_revision(home, "0005")


def downgrade(home: Home, revision: str) -> None:
    from alembic import command

    engine = database.make_engine(home, foreign_keys=False)
    with engine.connect() as conn:
        command.downgrade(database._alembic_config(home, conn), revision)
        conn.commit()
    engine.dispose()


def query(home: Home, sql: str, *args) -> list[tuple]:
    conn = sqlite3.connect(home.db_path)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def execute(home: Home, *statements: tuple) -> None:
    conn = sqlite3.connect(home.db_path)
    try:
        with conn:
            for sql, args in statements:
                conn.execute(sql, args)
    finally:
        conn.close()


def nova(id_: int, name: str) -> tuple:
    return ("INSERT INTO novas (id, name, personality, state, since, cool_streak, created_at)"
            " VALUES (?, ?, 'torch', 'working', ?, 0, ?)", (id_, name, T0, T0))


def window(nova_id: int, name: str, utilization: float, updated_at: float,
           status: str = "allowed") -> tuple:
    return ("INSERT INTO usage_windows (nova_id, window, status, utilization, resets_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?)",
            (nova_id, name, status, utilization, T0 + 3600, updated_at))


@pytest.fixture
def old_home(tmp_path) -> Home:
    """Two Novas at 0005, each with its own word on the same windows."""
    home = at_0005(Home(tmp_path / "home"))
    execute(home, nova(1, "torch"), nova(2, "echo"),
            ("INSERT INTO history (nova_id, from_state, to_state, event, at, forced)"
             " VALUES (1, 'working', 'cooling', 'cool', ?, 0)", (T0,)),
            window(1, "five_hour", 0.40, T0 + 10),
            window(2, "five_hour", 0.55, T0 + 20, "allowed_warning"),  # the latest
            window(1, "seven_day", 0.30, T0 + 30),  # the latest
            window(2, "seven_day", 0.20, T0 + 5))
    return home


def test_upgrade_puts_every_nova_on_default_with_the_latest_word_per_window(old_home):
    assert database.upgrade(old_home) == SCHEMA_REVISION
    assert query(old_home, "SELECT name, account FROM novas ORDER BY name") == [
        ("echo", "default"), ("torch", "default")]
    assert query(old_home, "SELECT account, window, status, utilization, resets_at,"
                           " updated_at, source, nova FROM account_windows ORDER BY window") == [
        ("default", "five_hour", "allowed_warning", 0.55, T0 + 3600, T0 + 20, "event", "echo"),
        ("default", "seven_day", "allowed", 0.30, T0 + 3600, T0 + 30, "event", "torch")]
    tables = {r[0] for r in query(old_home, "SELECT name FROM sqlite_master WHERE type='table'")}
    assert "usage_windows" not in tables and "usage_grants" in tables
    # rebuilding `novas` kept the rows that refer to it
    assert query(old_home, "SELECT nova_id, to_state, limit_hold FROM history") == [
        (1, "cooling", 0)]


def test_upgrade_of_a_home_without_windows(tmp_path):
    home = at_0005(Home(tmp_path / "home"))
    execute(home, nova(1, "torch"))
    assert database.upgrade(home) == SCHEMA_REVISION
    assert query(home, "SELECT name, account FROM novas") == [("torch", "default")]
    assert query(home, "SELECT count(*) FROM account_windows") == [(0,)]


def test_downgrade_gives_each_nova_its_accounts_windows_and_upgrade_takes_them_back(old_home):
    database.upgrade(old_home)
    execute(old_home, nova(3, "helix"),
            ("UPDATE novas SET account = 'work' WHERE name = 'helix'", ()),
            ("INSERT INTO account_windows (account, window, status, utilization, resets_at,"
             " updated_at, source, nova) VALUES ('work', 'five_hour', 'allowed', 0.9, ?, ?,"
             " 'event', 'helix')", (T0 + 3600, T0 + 40)))

    downgrade(old_home, "0005")
    assert database.current(old_home) == "0005"
    columns = {r[1] for r in query(old_home, "PRAGMA table_info(novas)")}
    assert "account" not in columns and "limit_hold" in columns
    assert query(old_home, "SELECT n.name, w.window, w.utilization FROM usage_windows w"
                           " JOIN novas n ON n.id = w.nova_id ORDER BY n.name, w.window") == [
        ("echo", "five_hour", 0.55), ("echo", "seven_day", 0.30),
        ("helix", "five_hour", 0.9),
        ("torch", "five_hour", 0.55), ("torch", "seven_day", 0.30)]

    assert database.upgrade(old_home) == SCHEMA_REVISION
    # back up, every Nova is on `default` (0005 knew no accounts) with the latest words
    assert {r[0] for r in query(old_home, "SELECT account FROM novas")} == {"default"}
    # (0005 kept no word of who heard a window: each Nova had a copy of its account's)
    assert query(old_home, "SELECT account, window, utilization, updated_at FROM"
                           " account_windows ORDER BY window") == [
        ("default", "five_hour", 0.9, T0 + 40), ("default", "seven_day", 0.30, T0 + 30)]
    assert query(old_home, "SELECT count(*) FROM history") == [(1,)]


def test_full_round_trip_to_base_and_back(old_home):
    database.upgrade(old_home)
    downgrade(old_home, "base")
    assert database.current(old_home) is None
    assert database.upgrade(old_home) == SCHEMA_REVISION
    assert query(old_home, "SELECT count(*) FROM novas") == [(0,)]
