"""The schema built by migrations equals the declared models; the head constant is right."""

import shutil
import sqlite3
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from torchsm.config import Home
from torchsm.storage import database
from torchsm.storage.schema import Base
from torchsm.storage.store import SCHEMA_REVISION

from helpers import REPO


def test_head_constant_matches_alembic():
    assert database.head_revision() == SCHEMA_REVISION


def test_migrated_schema_matches_models(home: Home):
    engine = database.make_engine(home)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []


def test_database_is_in_wal_mode(home: Home):
    conn = sqlite3.connect(home.db_path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_downgrade_and_upgrade_round_trip(home: Home):
    from alembic import command

    engine = database.make_engine(home, foreign_keys=False)
    with engine.connect() as conn:
        command.downgrade(database._alembic_config(home, conn), "base")
        conn.commit()
    engine.dispose()
    assert database.current(home) is None
    assert database.upgrade(home) == SCHEMA_REVISION


def test_migrations_location_checkout_and_wheel_layouts(tmp_path, monkeypatch):
    # checkout / editable install: the repository's top-level migrations/
    assert Path(database.migrations_location()) == REPO / "migrations"
    # wheel layout: migrations/ shipped inside the package
    package = tmp_path / "site" / "torchsm"
    shutil.copytree(REPO / "torchsm", package)
    shutil.copytree(REPO / "migrations", package / "migrations")
    monkeypatch.setattr(database, "_PACKAGE_DIR", package)
    assert Path(database.migrations_location()) == package / "migrations"


def test_migrating_keeps_rows_of_tables_that_refer_to_novas(home: Home, cli):
    """Batch mode rebuilds `novas`; that must never cascade into history (a real bug)."""
    from alembic import command

    cli("nova", "add", "torch")
    cli("transition", "torch", "cool", "--for", "5")
    engine = database.make_engine(home, foreign_keys=False)
    with engine.connect() as conn:
        command.downgrade(database._alembic_config(home, conn), "0003")
        conn.commit()
    engine.dispose()
    assert database.upgrade(home) == SCHEMA_REVISION
    assert [r["to"] for r in cli("history", "torch", "--json").json()] == ["cooling"]
