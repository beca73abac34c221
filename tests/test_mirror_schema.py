"""Migration 0003: event ids on history rows and the messages table."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from torchsm import db
from torchsm.models import Base
from torchsm.store import SCHEMA_REVISION


def test_head_constant_matches_alembic():
    assert db.head_revision() == SCHEMA_REVISION == "0003"


def test_migrated_schema_matches_models(home):
    engine = db.make_engine(home)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []


def test_downgrade_to_0001_and_back(home, cli):
    from alembic import command

    cli("nova", "add", "torch")
    cli("nova", "add", "echo")
    cli("transition", "torch", "cool", "--for", "5")
    cli("message", "send", "torch", "echo", "hello")
    assert len(cli("message", "list", "echo", "--json").json()) == 1
    engine = db.make_engine(home)
    with engine.connect() as conn:
        command.downgrade(db._alembic_config(home, conn), "0001")
        conn.commit()
    engine.dispose()
    assert db.current(home) == "0001"
    assert db.upgrade(home) == SCHEMA_REVISION
    assert [r["to"] for r in cli("history", "torch", "--json").json()] == ["cooling"]
    assert cli("message", "list", "echo", "--json").json() == []  # dropped with its table
