"""Bulk statements for the hot paths (the projection's lookups and its ``applied_events`` rows),
sent to the DB-API driver directly.

SQLAlchemy's Core statements cost about 10 µs per row of an executemany (building each row's
parameters through every column's processors) and render a 500-id ``IN`` list anew on every call;
for the projection's thousands of rows per batch that was a third of its time (issue 14, profiled
with cProfile on ``bench/bench_rankings.py``). These helpers build the SQL text once per table and
shape, and apply only the bind and result processors the dialect really has for a column (SQLite's
``Date`` is stored as text, for example), so the values stored and read are the ones the Core
statements would store and read. On SQLite the usual times (an aware UTC ``datetime``, a ``date``)
are formatted in one step, as SQLAlchemy formats them (half of the item rows' cost, issue 14).
SQLite and PostgreSQL (psycopg 3).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime
from typing import Any, Literal

from sqlalchemy import Boolean, Column, Connection, Date, Table
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import StatementError

from events.sql import UTCDateTime

IN_CHUNK = 500
"""Ids per ``IN (...)`` list on SQLite (its default limit of bound parameters is far above)."""


def _placeholder(dialect: Dialect) -> str:
    if dialect.paramstyle == "qmark":
        return "?"
    if dialect.paramstyle in ("format", "pyformat"):
        return "%s"
    raise NotImplementedError(f"paramstyle {dialect.paramstyle!r} (SQLite and psycopg 3 are supported)")


def _columns(table: Table, names: Sequence[str]) -> list[Column[Any]]:
    return [table.c[name] for name in names]


def _values_of(dialect: Dialect, names: Sequence[str]) -> str:
    """The placeholders of one row: ``(?, ?, …)``."""
    return f"({', '.join(_placeholder(dialect) for _ in names)})"


def _insert_head(dialect: Dialect, table: Table, names: Sequence[str]) -> str:
    """``INSERT INTO table (names…) VALUES `` (the rows' placeholders follow)."""
    quote = dialect.identifier_preparer.quote
    return f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in names)}) VALUES "


@functools.lru_cache(maxsize=64)
def _insert_sql(dialect: Dialect, table: Table, names: tuple[str, ...]) -> str:
    return _insert_head(dialect, table, names) + _values_of(dialect, names)


Processor = Callable[[Any], Any]


def _sqlite_utc_text(process: Processor) -> Processor:
    """``UTCDateTime``'s bind processor on SQLite, with a shortcut for the usual value (an aware
    ``datetime`` in ``datetime.UTC``): the text SQLAlchemy's SQLite ``DATETIME`` stores
    (``YYYY-MM-DD HH:MM:SS.ffffff``, naive UTC) in one formatting instead of two processors; NULL
    for ``None``. Any other value (another zone, naive, not a datetime) goes through ``process``."""

    def bind(value: Any) -> Any:
        if value is None:
            return None
        if type(value) is datetime and value.tzinfo is UTC:
            return "%04d-%02d-%02d %02d:%02d:%02d.%06d" % (  # noqa: UP031 - SQLAlchemy's own format
                value.year, value.month, value.day, value.hour, value.minute, value.second, value.microsecond
            )  # fmt: skip
        return process(value)

    return bind


def _sqlite_date_text(process: Processor) -> Processor:
    """SQLite ``DATE``'s bind processor with a shortcut for a ``date``: the text SQLAlchemy stores
    (``YYYY-MM-DD``), NULL for ``None``; any other value goes through ``process``."""

    def bind(value: Any) -> Any:
        if value is None:
            return None
        return value.isoformat() if type(value) is date else process(value)

    return bind


def _sqlite_boolean(process: Processor) -> Processor:
    """SQLite ``BOOLEAN``'s bind processor with a shortcut for ``True``, ``False`` and ``None``
    (SQLite has no boolean: SQLAlchemy stores 1, 0 and NULL); any other value goes through
    ``process``, which refuses what is not a boolean."""

    def bind(value: Any) -> Any:
        if value is None:
            return None
        if value is True:
            return 1
        return 0 if value is False else process(value)

    return bind


@functools.lru_cache(maxsize=64)
def _processors(dialect: Dialect, table: Table, names: tuple[str, ...]) -> list[tuple[int, Processor]]:
    """``(index, bind processor)`` of the columns ``names`` of ``table`` that have one on ``dialect``."""
    out: list[tuple[int, Processor]] = []
    for i, column in enumerate(_columns(table, names)):
        found = column.type.dialect_impl(dialect).bind_processor(dialect)
        if found is None:
            continue
        process: Processor = found
        if dialect.name != "sqlite":
            pass
        elif isinstance(column.type, UTCDateTime):
            process = _sqlite_utc_text(process)
        elif type(column.type) is Date:
            process = _sqlite_date_text(process)
        elif type(column.type) is Boolean and not dialect.supports_native_boolean:
            process = _sqlite_boolean(process)
        out.append((i, process))
    return out


def _bound(dialect: Dialect, table: Table, names: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[Any]:
    """``rows`` as tuples, each value through its column's bind processor where the dialect has one."""
    needed = _processors(dialect, table, tuple(names))
    if not needed:
        return [tuple(row) for row in rows]
    out = []
    for row in rows:
        values = list(row)
        try:
            for i, process in needed:
                values[i] = process(values[i])
        except Exception as exc:  # as Core reports a value its processor refuses (``database_refused``)
            raise StatementError(f"{type(exc).__name__}: {exc}", table.name, None, exc) from exc
        out.append(tuple(values))
    return out


def insert_rows(conn: Connection, table: Table, names: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """INSERT ``rows`` (tuples of the values of columns ``names``, in that order) into ``table`` as
    one executemany, each value through its column's bind processor if the dialect has one.

    Raises:
        sqlalchemy.exc.DBAPIError: as ``Connection.exec_driver_sql`` (e.g. ``IntegrityError`` for
            a key already present).
    """
    if rows:
        sql = _insert_sql(conn.dialect, table, tuple(names))
        conn.exec_driver_sql(sql, _bound(conn.dialect, table, names, rows))


INSERT_CHUNK = 500
"""Rows per multi-row ``INSERT … RETURNING`` (``insert_new_rows``): 500 rows of the event store's
14 columns bind 7,000 parameters, inside SQLite's limit (32,766 since 3.32) and PostgreSQL's (65,535)."""


def insert_new_rows(
    conn: Connection,
    table: Table,
    names: Sequence[str],
    key: Sequence[str],
    rows: Sequence[Sequence[Any]],
    returning: str,
) -> list[Any]:
    """INSERT ``rows`` (tuples of the values of columns ``names``) into ``table``, skipping each row
    whose ``key`` columns exist already (``ON CONFLICT (key) DO NOTHING``); return the ``returning``
    column of the rows inserted, in no particular order. Multi-row statements of ``INSERT_CHUNK``
    rows (``RETURNING`` cannot come back from an executemany), values through their columns' bind
    processors as in ``insert_rows``.

    Raises:
        sqlalchemy.exc.StatementError: a value its column's processor refuses.
        sqlalchemy.exc.DBAPIError: as ``Connection.exec_driver_sql``.
    """
    if not rows:
        return []
    quote = conn.dialect.identifier_preparer.quote
    one = _values_of(conn.dialect, names)
    head = _insert_head(conn.dialect, table, names)
    tail = f" ON CONFLICT ({', '.join(quote(k) for k in key)}) DO NOTHING RETURNING {quote(returning)}"
    bound = _bound(conn.dialect, table, names, rows)
    out: list[Any] = []
    for start in range(0, len(bound), INSERT_CHUNK):
        part = bound[start : start + INSERT_CHUNK]
        params = tuple(value for row in part for value in row)
        result = conn.exec_driver_sql(head + ", ".join(one for _ in part) + tail, params)
        out.extend(row[0] for row in result.fetchall())
    return out


Merge = Literal["replace", "add", "max"]
"""How ``upsert_rows`` merges a row into the one stored under its key: its other columns take the
new values (``replace``), the sum of the stored and the new (``add``: counters), or the greater of
the two (``max``: positions that never move back)."""

_MERGED: dict[str, str] = {
    "replace": "{c} = excluded.{c}",
    "add": "{c} = {t}.{c} + excluded.{c}",
    "max": "{c} = CASE WHEN {t}.{c} > excluded.{c} THEN {t}.{c} ELSE excluded.{c} END",
}


@functools.lru_cache(maxsize=64)
def _upsert_sql(
    dialect: Dialect, table: Table, names: tuple[str, ...], key: tuple[str, ...], merge: Merge
) -> str:
    quote = dialect.identifier_preparer.quote
    target = quote(table.name)
    updates = ", ".join(_MERGED[merge].format(c=quote(n), t=target) for n in names if n not in key)
    return (
        f"{_insert_sql(dialect, table, names)} "
        f"ON CONFLICT ({', '.join(quote(k) for k in key)}) DO UPDATE SET {updates}"
    )


def upsert_rows(
    conn: Connection,
    table: Table,
    names: Sequence[str],
    key: Sequence[str],
    rows: Sequence[Sequence[Any]],
    merge: Merge = "replace",
) -> None:
    """INSERT ``rows`` (tuples of the values of columns ``names``) into ``table``; a row whose
    ``key`` columns exist already updates that row instead, its other columns merged as ``merge``
    says (``Merge``). One executemany (``INSERT … ON CONFLICT (key) DO UPDATE``, SQLite and
    PostgreSQL); the SQL text is built once per table, columns, key and merge.

    Raises:
        sqlalchemy.exc.DBAPIError: as ``Connection.exec_driver_sql``.
    """
    if not rows:
        return
    sql = _upsert_sql(conn.dialect, table, tuple(names), tuple(key), merge)
    conn.exec_driver_sql(sql, _bound(conn.dialect, table, names, rows))


@functools.lru_cache(maxsize=64)
def _select_shape(
    dialect: Dialect, table: Table, names: tuple[str, ...], key: str
) -> tuple[str, list[tuple[int, Processor]]]:
    """The ``SELECT names FROM table WHERE key`` head of ``select_in`` and the result processors
    the dialect has for its columns (position, processor)."""
    quote = dialect.identifier_preparer.quote
    head = f"SELECT {', '.join(quote(n) for n in names)} FROM {quote(table.name)} WHERE {quote(key)}"
    processors: list[tuple[int, Processor]] = []
    for i, c in enumerate(_columns(table, names)):
        process = c.type.dialect_impl(dialect).result_processor(dialect, None)
        if process is not None:
            processors.append((i, process))
    return head, processors


def select_in(
    conn: Connection, table: Table, names: Sequence[str], key: str, values: Sequence[Any]
) -> Iterator[tuple[Any, ...]]:
    """The ``names`` columns of the rows of ``table`` whose column ``key`` is one of ``values``
    (strings or integers; repeats are asked once), as tuples in no particular order, each value
    through its column's result processor if the dialect has one."""
    dialect = conn.dialect
    head, needed = _select_shape(dialect, table, tuple(names), key)
    mark = _placeholder(dialect)
    unique = sorted(set(values))
    if dialect.name == "postgresql":  # one array parameter, however many ids
        queries = [(f"{head} = ANY({mark})", (unique,))] if unique else []
    else:
        queries = [
            (f"{head} IN ({', '.join(mark for _ in batch)})", tuple(batch))
            for batch in (unique[i : i + IN_CHUNK] for i in range(0, len(unique), IN_CHUNK))
        ]
    for sql, params in queries:
        for row in conn.exec_driver_sql(sql, params).fetchall():
            if not needed:
                yield tuple(row)
                continue
            out = list(row)
            for i, process in needed:
                out[i] = process(out[i])
            yield tuple(out)
