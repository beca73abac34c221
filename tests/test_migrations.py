"""The schema built by migrations/ is the one torchsm.models declares, and the store's
head constant is Alembic's head."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from torchsm import db
from torchsm.models import Base
from torchsm.store import SCHEMA_REVISION


def test_store_expects_alembic_head():
    assert db.head_revision() == SCHEMA_REVISION


def test_migrated_schema_matches_models(home):
    engine = create_engine(f"sqlite:///{home.db_path}")
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert diff == []


def test_downgrade_to_base_and_up_again(home):
    from alembic import command

    command.downgrade(db._alembic_config(home), "base")
    assert db.current(home) is None
    assert db.upgrade(home) == SCHEMA_REVISION
