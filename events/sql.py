"""Database plumbing shared by the event store and the projections (SQLAlchemy 2.x Core).

SQLite (the embedded default, WAL mode) and PostgreSQL are supported; both are tested.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, DateTime, Engine, Table, create_engine, event, inspect, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import OperationalError
from sqlalchemy.types import TypeDecorator

from events.errors import ValidationError

T = TypeVar("T")


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime column: ``timestamptz`` on PostgreSQL, naive-UTC text on SQLite.

    Binding a naive datetime raises ``ValueError``: duban never stores local or naive times.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: store aware UTC datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def make_engine(url: str) -> Engine:
    """Engine for ``url``; SQLite files get WAL + busy timeout pragmas, and their folder is created if
    its own parent exists (a data dir such as ``.duban``; a mistyped deep path is not created).

    Raises:
        ValidationError: field ``database_url``, a SQLite file in a folder whose parent is missing.
    """
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        folder = Path(url.removeprefix("sqlite:///")).parent
        if not folder.parent.is_dir():
            raise ValidationError("database_url", f"{url}: no such folder {folder.parent} (check the path)")
        folder.mkdir(exist_ok=True)
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")  # psycopg 3 is the driver
    engine = create_engine(url, future=True)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

    return engine


def read_only(engine: Engine) -> Engine:
    """Make ``engine`` refuse every write (an auditor's reading must not change what it reads):
    each new connection is set read-only (SQLite ``PRAGMA query_only``, PostgreSQL ``SET SESSION
    CHARACTERISTICS AS TRANSACTION READ ONLY``) and the connections already pooled are dropped.
    Returns ``engine``."""

    @event.listens_for(engine, "connect")
    def _read_only(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        if engine.dialect.name == "sqlite":
            cur.execute("PRAGMA query_only = ON")
        else:
            cur.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        cur.close()
        if engine.dialect.name != "sqlite":
            dbapi_conn.commit()  # a SET in a transaction rolled back would be undone

    engine.dispose()
    return engine


def stored_time(value: Any) -> datetime:
    """A time column's value as the driver gives it without the column type's conversion — a
    datetime (PostgreSQL) or the stored text (SQLite, ``YYYY-MM-DD HH:MM:SS.ffffff`` in UTC) — as an
    aware UTC datetime.

    Raises:
        ValueError: the value is not a time.
    """
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a time") from None
    if not isinstance(value, datetime):
        raise ValueError(f"{value!r} is not a time")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def insert_ignoring_duplicates(engine_or_dialect: Engine | Dialect, table: Any, key: list[str]) -> Any:
    """An INSERT that skips rows whose ``key`` columns already exist (SQLite and PostgreSQL)."""
    dialect = engine_or_dialect.dialect if isinstance(engine_or_dialect, Engine) else engine_or_dialect
    if dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=key)
    if dialect.name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=key)
    raise NotImplementedError(f"database dialect {dialect.name!r} is not supported (SQLite, PostgreSQL)")


SCHEMA_LOCK_KEY = 0x6475_6261_6E
"""The PostgreSQL advisory lock (``pg_advisory_xact_lock``) held while duban creates or alters
tables: processes starting together (two projectors, a worker) would otherwise race on
``CREATE TABLE`` and one would fail with a duplicate ``pg_type`` name."""


def _lock_schema(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})


SCHEMA_ATTEMPTS = 5
"""How often a schema change is tried on SQLite when another process changed the schema between
its check and its change (SQLite runs each ``CREATE TABLE`` on its own: there is no lock to hold)."""

_RACED = ("already exists", "duplicate column name", "database is locked")


def _schema_change(engine: Engine, change: Callable[[Connection], T]) -> T:
    """``change`` in one transaction, under ``SCHEMA_LOCK_KEY`` on PostgreSQL; on SQLite tried again
    (up to ``SCHEMA_ATTEMPTS`` times) when a concurrent process created the same table or column
    first, which the next attempt's check then sees.

    Raises:
        sqlalchemy.exc.OperationalError: anything else, or still racing after every attempt.
    """
    for attempt in range(1, SCHEMA_ATTEMPTS + 1):
        try:
            with engine.begin() as conn:
                _lock_schema(conn)
                return change(conn)
        except OperationalError as exc:
            raced = engine.dialect.name == "sqlite" and any(r in str(exc.orig) for r in _RACED)
            if not raced or attempt == SCHEMA_ATTEMPTS:
                raise
            time.sleep(0.05 * attempt)
    raise AssertionError("unreachable")


def create_schema(engine: Engine, metadata: Any) -> None:
    """``metadata.create_all`` in one transaction, under ``SCHEMA_LOCK_KEY`` on PostgreSQL (tables
    that exist are left as they are); on SQLite, processes starting together on a new file are
    served by trying again (``_schema_change``)."""
    _schema_change(engine, metadata.create_all)


def add_missing_columns(engine: Engine, table: Table) -> list[str]:
    """Add to the database's ``table`` the nullable columns its definition has and the database
    lacks (a database made by an older duban), and create its missing indexes; return the columns
    added. Only nullable columns can be added this way: a new NOT NULL column needs a rebuild.

    Raises:
        ValueError: a missing column is NOT NULL.
    """

    def add(conn: Connection) -> list[str]:
        added = []
        present = {c["name"] for c in inspect(conn).get_columns(table.name)}
        for column in table.columns:
            if column.name in present:
                continue
            if not column.nullable:
                raise ValueError(f"{table.name}.{column.name} is NOT NULL: rebuild the table instead")
            kind = column.type.compile(dialect=engine.dialect)
            conn.execute(text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}'))
            added.append(column.name)
        for index in table.indexes:
            index.create(conn, checkfirst=True)
        return added

    return _schema_change(engine, add)


def upsert(
    conn: Connection,
    table: Table,
    key: list[str],
    rows: list[dict[str, Any]],
    set_: Callable[[Table, Any], dict[str, Any]],
) -> None:
    """INSERT … ON CONFLICT (key) DO UPDATE SET ``set_(table, excluded)``, as one executemany
    (SQLite and PostgreSQL)."""
    if not rows:
        return
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(table)
    conn.execute(stmt.on_conflict_do_update(index_elements=key, set_=set_(table, stmt.excluded)), rows)
