"""A home whose path holds `?`, `#`, `%` or other characters a URI gives meaning to
(issue 20, finding 8): the database is the home's own torchsm.db, 0600, for every way
torchsm opens it (the stdlib sqlite3 store, SQLAlchemy, Alembic's migrations, the status
watch), and nothing is created outside the home."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from helpers import Cli, rows

# a query (with a meaning to SQLite), a bare `%` (Alembic interpolates), a fragment,
# percent-escapes, a space and `&=` in one, and non-ASCII
ODD_NAMES = ["h?mode=ro", "h%x", "h#?%25 &x=1", "ünï code"]


@pytest.fixture(params=ODD_NAMES)
def odd_cli(tmp_path: Path, request) -> Cli:
    parent = tmp_path / "parent"
    parent.mkdir()
    return Cli(parent / request.param)


def test_every_command_uses_the_homes_own_database(odd_cli: Cli):
    home = odd_cli.home
    assert odd_cli("init", "--json").json()["created"] is True
    odd_cli("nova", "add", "torch")
    odd_cli("transition", "torch", "cool", "--for", "60")  # the stdlib store
    odd_cli("db", "upgrade")  # Alembic
    assert odd_cli("db", "current", "--json").json()["at_head"] is True
    assert odd_cli("status", "torch", "--json").json()[0]["state"] == "cooling"
    odd_cli("nova", "set", "torch", "--account", "work")
    assert sorted(p.name for p in home.parent.iterdir()) == [home.name]
    assert stat.S_IMODE(os.stat(home / "torchsm.db").st_mode) == 0o600
    assert rows(odd_cli, "SELECT name, account, state FROM novas") == [("torch", "work",
                                                                       "cooling")]


def test_the_status_watch_reads_the_homes_own_database(odd_cli: Cli):
    odd_cli("init")
    odd_cli("nova", "add", "torch")
    from torchsm.config import Home
    from torchsm.storage.change_watch import ChangeWatch

    watch = ChangeWatch(Home(odd_cli.home))
    try:
        assert watch.read(lambda conn: conn.execute("SELECT name FROM novas").fetchall()) == \
            [("torch",)]
    finally:
        watch.close()


@pytest.mark.parametrize("name", ODD_NAMES)
def test_alembic_reads_the_database_url_back_as_the_homes_path(tmp_path: Path, name: str):
    from sqlalchemy.engine import make_url

    from torchsm.config import Home
    from torchsm.storage import database

    home = Home(tmp_path / name)
    url = database._alembic_config(home).get_main_option("sqlalchemy.url")
    assert make_url(url).database == str(home.db_path)
