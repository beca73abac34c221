"""Migration 0003: event ids on history rows and the messages table."""

from torchsm.storage import database
from torchsm.storage.store import SCHEMA_REVISION


def test_downgrade_to_0001_and_back(home, cli):
    from alembic import command

    cli("nova", "add", "torch")
    cli("nova", "add", "echo")
    cli("transition", "torch", "cool", "--for", "5")
    cli("message", "send", "torch", "echo", "hello")
    assert len(cli("message", "list", "echo", "--json").json()) == 1
    engine = database.make_engine(home, foreign_keys=False)
    with engine.connect() as conn:
        command.downgrade(database._alembic_config(home, conn), "0001")
        conn.commit()
    engine.dispose()
    assert database.current(home) == "0001"
    assert database.upgrade(home) == SCHEMA_REVISION
    assert [r["to"] for r in cli("history", "torch", "--json").json()] == ["cooling"]
    assert cli("message", "list", "echo", "--json").json() == []  # dropped with its table
