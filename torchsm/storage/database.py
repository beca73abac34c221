"""SQLAlchemy engine and Alembic migrations: `init` and `db upgrade` (every other command
reads and writes through the stdlib store, torchsm.storage.store).

Loaded lazily: nothing on the hook or transition path imports this module.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import DatabaseError as SQLAlchemyDatabaseError
from sqlalchemy.exc import OperationalError

from torchsm.config import Home
from torchsm.errors import (DatabaseCorrupt, DatabaseError, DatabaseFailed, DatabaseLocked,
                            DatabaseReadOnly, HomeNotAFolder, HomeNotInitialised, HomeUnusable)

_PACKAGE_DIR = Path(__file__).resolve().parent.parent  # torchsm/


def migrations_location() -> str:
    """Where Alembic's scripts are: inside the package in a wheel, else the repository's
    top-level migrations/ (editable installs and checkouts)."""
    packaged = _PACKAGE_DIR / "migrations"
    if (packaged / "env.py").is_file():
        return str(packaged)
    checkout = _PACKAGE_DIR.parent / "migrations"
    if (checkout / "env.py").is_file():
        return str(checkout)
    raise DatabaseError("torchsm is installed without its migrations/ folder")


def make_engine(home: Home, lock_timeout_s: float = 5.0, foreign_keys: bool = True) -> Engine:
    """An engine on the home's database. Migrations need `foreign_keys=False`: Alembic's
    batch mode rebuilds a table by dropping it, and with foreign keys on, dropping `novas`
    would cascade into every table that refers to it."""
    from torchsm.storage import store

    # connected as the stdlib store connects: the same URI, the same read-only fallback
    engine = create_engine(database_url(home), creator=lambda: store.connect(
        home.db_path, check_same_thread=False))

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, record):
        # SQLAlchemy's documented recipe: let us emit BEGIN ourselves, IMMEDIATE, so a
        # read-then-write never fails to upgrade its lock (FIELD-NOTES "SQLite").
        dbapi_conn.isolation_level = None
        record.info["read_only"] = store.is_query_only(dbapi_conn)
        if record.info["read_only"]:
            return  # a read-only home: nothing to set, and no lock to take
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(lock_timeout_s * 1000)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        conn.exec_driver_sql("BEGIN" if conn.info.get("read_only") else "BEGIN IMMEDIATE")

    return engine


def _raise_translated(exc: SQLAlchemyDatabaseError, home: Home) -> NoReturn:
    """Lock, corruption and other operational errors as one clear TorchsmError; anything
    else (an IntegrityError its caller expects) as it is."""
    from torchsm.storage.store import is_corrupt, is_read_only

    if "locked" in str(exc.orig) or "busy" in str(exc.orig):
        raise DatabaseLocked() from None
    if is_read_only(exc.orig):
        raise DatabaseReadOnly(home.db_path) from None
    if is_corrupt(exc.orig):
        raise DatabaseCorrupt(home.db_path, str(exc.orig)) from None
    if isinstance(exc, OperationalError):
        raise DatabaseFailed(exc.orig) from None
    raise exc


def check_database(home: Home) -> str | None:
    """The schema revision of the home's existing database (None: empty, a new one), or
    DatabaseCorrupt when the file is not a SQLite database, is damaged, or holds tables
    that are not torchsm's. Reads only: `init` and `db upgrade` check before they write."""
    import sqlite3

    from torchsm.storage.store import (FOREIGN_TABLES, connect, holds_foreign_tables, is_corrupt,
                               schema_revision)

    try:
        conn = connect(home.db_path, "ro")
        try:
            revision = schema_revision(conn)
            foreign = revision is None and holds_foreign_tables(conn)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        if is_corrupt(exc):
            raise DatabaseCorrupt(home.db_path, str(exc)) from None
        raise DatabaseError(f"cannot read {home.db_path}: {exc}") from None
    if foreign:
        raise DatabaseCorrupt(home.db_path, FOREIGN_TABLES)
    return revision


def database_url(home: Home) -> URL:
    """The home's database as a SQLAlchemy URL built from its parts: the path is taken as
    it is, `?`, `#` and `%` included (rendered, they are escaped and read back alike)."""
    return URL.create("sqlite", database=str(home.db_path))


def _alembic_config(home: Home, connection=None):
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    _set_option(cfg, "script_location", migrations_location())
    _set_option(cfg, "sqlalchemy.url", database_url(home).render_as_string())
    cfg.attributes["connection"] = connection
    return cfg


def _set_option(cfg, name: str, value: str) -> None:
    # Alembic's options pass through configparser's interpolation: `%` is written `%%`
    cfg.set_main_option(name, value.replace("%", "%%"))


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config(Home(Path(".")))).get_current_head()


def initialise(home: Home, lock_timeout_s: float = 5.0) -> bool:
    """Create the home (0700), its folders and the database (0600), migrate to head.
    Returns True when the database was created now. Safe to run again."""
    created = not home.is_initialised()
    if not created:
        check_database(home)  # never migrate over a file that is not ours, or damaged
    _make_home(home)
    if created:
        fd = os.open(home.db_path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)
    upgrade(home, lock_timeout_s)
    return created


def _make_home(home: Home) -> None:
    """The home and its folders, 0700; one clear line when they cannot be made."""
    try:
        for folder in (home.path, home.queue_dir, home.log_dir):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(home.path, 0o700)
    except FileExistsError as exc:
        raise HomeNotAFolder(exc.filename) from None
    except OSError as exc:
        raise HomeUnusable(f"cannot create the torchsm home {home.path}: "
                           f"{(exc.strerror or str(exc)).lower()}") from None


def upgrade(home: Home, lock_timeout_s: float = 5.0, revision: str = "head") -> str | None:
    if not home.is_initialised():
        raise HomeNotInitialised(home.path)
    from alembic import command

    from torchsm.storage.store import is_known_revision, schema_error

    found = check_database(home)
    if not is_known_revision(found):  # Alembic cannot step down from a revision it lacks
        raise schema_error(found)
    engine = make_engine(home, lock_timeout_s, foreign_keys=False)
    try:
        with engine.connect() as connection:
            command.upgrade(_alembic_config(home, connection), revision)
            connection.commit()
    except SQLAlchemyDatabaseError as exc:
        _raise_translated(exc, home)
    finally:
        engine.dispose()
    return current(home)


def current(home: Home) -> str | None:
    """The revision the database is at (None for an empty database)."""
    if not home.is_initialised():
        raise HomeNotInitialised(home.path)
    return check_database(home)
