"""`torchsm init` and `torchsm db upgrade|current`."""

from __future__ import annotations

import click

from torchsm.cli.common import Env, common_options, pass_env


@click.command()
@common_options
@pass_env
def init(env: Env) -> None:
    """Create the home and its database (migrated to head). Safe to run again."""
    from torchsm.storage import database

    created = database.initialise(env.home, env.config.db.lock_timeout_s)
    revision = database.current(env.home)
    env.emit({"home": str(env.home.path), "created": created, "revision": revision},
             f"{'initialised' if created else 'already initialised'} {env.home.path} "
             f"(schema {revision})\nhome: {env.home_described()}")


@click.group()
@common_options
def db() -> None:
    """The database schema (Alembic migrations)."""


@db.command()
@common_options
@pass_env
def upgrade(env: Env) -> None:
    """Migrate the database to the newest schema."""
    from torchsm.storage import database

    revision = database.upgrade(env.home, env.config.db.lock_timeout_s)
    env.emit({"revision": revision}, f"schema at {revision}")


@db.command()
@common_options
@pass_env
def current(env: Env) -> None:
    """Show the schema revision of the database and whether it is the newest."""
    from torchsm.storage import database
    from torchsm.storage.store import SCHEMA_REVISION

    revision = database.current(env.home)
    at_head = revision == SCHEMA_REVISION
    env.emit({"revision": revision, "head": SCHEMA_REVISION, "at_head": at_head},
             f"{revision or 'empty'}{' (head)' if at_head else f' (head is {SCHEMA_REVISION})'}")
