"""The bulk statements (``events.sql_bulk``) store and read the values SQLAlchemy's Core statements
store and read: every row is read back through a Core ``select`` (which applies the dialect's
result processors) and compared with what was given, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Column, Engine, MetaData, Table, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError, StatementError

from events import store
from events.sql import make_engine
from events.sql_bulk import IN_CHUNK, INSERT_CHUNK, insert_new_rows, insert_rows, select_in, upsert_rows
from projections import read_models as rm
from projections.projection_batch import APPLIED_COLUMNS
from projections.projector import database_refused


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 't.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    eng = make_engine(url)
    rm.create_tables(eng)
    with eng.begin() as conn:  # the session's PostgreSQL database is shared: start empty
        for table in (rm.applied_events, rm.unit_day_counters, rm.item_view):
            conn.execute(table.delete())
    try:
        yield eng
    finally:
        eng.dispose()


def applied_rows(n: int, seed: int = 3) -> list[tuple[Any, ...]]:
    rng = random.Random(seed)
    return [
        (
            f"00000000-0000-4000-8000-{i:012d}",
            f"item-{i // 6}",
            i % 6 + 1,
            "duban.events",
            rng.randrange(3),
            rng.randrange(10**12),  # past 32 bits: the BIGINT offset
            None if i % 7 == 0 else date(2025, 1, 1) + timedelta(days=rng.randrange(365)),
        )
        for i in range(n)
    ]


def test_inserted_rows_read_back_through_core_as_given(engine: Engine) -> None:
    rows = applied_rows(1500)
    with engine.begin() as conn:
        insert_rows(conn, rm.applied_events, APPLIED_COLUMNS, rows)
    columns = [rm.applied_events.c[n] for n in APPLIED_COLUMNS]
    with engine.connect() as conn:
        stored = sorted(tuple(r) for r in conn.execute(select(*columns)))
    assert stored == sorted(rows)


def test_a_key_inserted_twice_fails_loudly_and_stores_nothing_of_the_batch(engine: Engine) -> None:
    rows = applied_rows(10)
    with engine.begin() as conn:
        insert_rows(conn, rm.applied_events, APPLIED_COLUMNS, rows[:5])
    with pytest.raises(IntegrityError), engine.begin() as conn:
        insert_rows(conn, rm.applied_events, APPLIED_COLUMNS, rows[5:] + rows[:1])
    with engine.connect() as conn:
        ids = set(conn.execute(select(rm.applied_events.c.event_id)).scalars())
    assert ids == {r[0] for r in rows[:5]}


def test_adding_upserts_sum_the_counters(engine: Engine) -> None:
    rng = random.Random(11)
    names = ["level", "unit_key", "day", *rm.COUNTER_COLUMNS]
    expected: dict[tuple[str, str, date], Counter[str]] = {}
    for _ in range(4):  # four batches over overlapping keys, each key at most once per batch
        batch = {}
        for _ in range(300):
            key = ("department", f"D{rng.randrange(20)}", date(2025, 5, 1 + rng.randrange(10)))
            batch[key] = {c: rng.randrange(5) for c in rm.COUNTER_COLUMNS}
        for key, amounts in batch.items():
            expected.setdefault(key, Counter()).update(amounts)
        rows = [(*key, *(amounts[c] for c in rm.COUNTER_COLUMNS)) for key, amounts in batch.items()]
        with engine.begin() as conn:
            upsert_rows(conn, rm.unit_day_counters, names, ["level", "unit_key", "day"], rows, merge="add")
    with engine.connect() as conn:
        stored = {
            (r.level, r.unit_key, r.day): {c: r._mapping[c] for c in rm.COUNTER_COLUMNS}
            for r in conn.execute(select(rm.unit_day_counters))
        }
    assert stored == {k: {c: v[c] for c in rm.COUNTER_COLUMNS} for k, v in expected.items()}


def test_max_upserts_keep_the_greater_position(engine: Engine) -> None:
    rng = random.Random(5)
    names = ["projection", "topic", "partition", "next_offset"]
    greatest: dict[tuple[str, str, int], int] = {}
    for _ in range(5):  # batches delivered out of order: a position never moves back
        batch = {("items", "t", rng.randrange(6)): rng.randrange(1, 2**40) for _ in range(4)}
        for key, offset in batch.items():
            greatest[key] = max(greatest.get(key, 0), offset)
        with engine.begin() as conn:
            rows = [(*key, offset) for key, offset in batch.items()]
            upsert_rows(conn, rm.projection_positions, names, names[:3], rows, merge="max")
    with engine.connect() as conn:
        stored = {(r[0], r[1], r[2]): r[3] for r in conn.execute(select(rm.projection_positions))}
    assert stored == greatest


def view(item_id: str, at: datetime, stage: str) -> dict[str, Any]:
    return {
        "item_id": item_id, "category": "litter", "department": "D1", "unit": "", "town": "T",
        "community": "", "grid": "", "zone": "Asia/Shanghai", "order_id": "", "district": "",
        "calendar": "", "stage": stage, "registered_at": at, "resolution_deadline": None,
        "closed_at": at + timedelta(hours=5) if stage == "closed" else None, "on_time": None,
        "overdue": False, "escalation_level": 0, "warned": False, "intake_department": "D1",
        "extended": stage == "closed", "suspended_at": None, "resume_stage": None, "last_sequence": 1,
        "last_event_at": at,
    }  # fmt: skip


def test_replacing_upserts_store_the_new_row_with_aware_utc_times(engine: Engine) -> None:
    names = [c.name for c in rm.item_view.c]
    at = datetime(2025, 3, 9, 23, 30, 15, 123456, tzinfo=UTC)
    first = [view(f"v{i}", at + timedelta(minutes=i), "registered") for i in range(50)]
    second = [view(f"v{i}", at + timedelta(minutes=i), "closed") for i in range(0, 80, 2)]
    for rows in (first, second):
        with engine.begin() as conn:
            upsert_rows(conn, rm.item_view, names, ["item_id"], [tuple(v[n] for n in names) for v in rows])
    expected = {v["item_id"]: v for v in first} | {v["item_id"]: v for v in second}
    with engine.connect() as conn:
        stored = {r["item_id"]: dict(r) for r in conn.execute(select(rm.item_view)).mappings()}
    assert stored == expected
    assert all(v["registered_at"].tzinfo is not None for v in stored.values())


def raw_values(engine: Engine, table: Table) -> list[tuple[Any, ...]]:
    """The rows of ``table`` as the driver returns them (no result processor): what is stored."""
    with engine.connect() as conn:
        return sorted(tuple(r) for r in conn.exec_driver_sql(f"SELECT * FROM {table.name}"))


def assert_bulk_stores_as_core(engine: Engine, target: Table, names: list[str], rows: list[Any]) -> None:
    """``rows`` inserted by Core, then (the table emptied) by ``insert_rows``, are stored alike."""
    with engine.begin() as conn:
        conn.execute(target.insert(), [dict(zip(names, row, strict=True)) for row in rows])
    by_core = raw_values(engine, target)
    with engine.begin() as conn:
        conn.execute(target.delete())
        insert_rows(conn, target, names, rows)
    assert raw_values(engine, target) == by_core


@pytest.mark.parametrize("table", ["applied_events", "item_view"])
def test_bulk_rows_are_stored_as_core_stores_them(engine: Engine, table: str) -> None:
    """Byte for byte what an ORM-less Core INSERT stores (SQLite keeps times as text: a different
    text would sort differently in the read models' range queries)."""
    at = datetime(2025, 3, 9, 23, 30, 15, 123456, tzinfo=UTC)
    if table == "applied_events":
        target, names = rm.applied_events, list(APPLIED_COLUMNS)
        rows = applied_rows(200)
    else:
        target, names = rm.item_view, [c.name for c in rm.item_view.c]
        views = [view(f"v{i}", at + timedelta(minutes=i), "closed") for i in range(200)]
        rows = [tuple(v[n] for n in names) for v in views]
    assert_bulk_stores_as_core(engine, target, names, rows)


@pytest.mark.parametrize("table", ["applied_events", "item_view"])
def test_times_of_every_shape_are_stored_as_core_stores_them(engine: Engine, table: str) -> None:
    """The shortcuts for the usual values (an aware UTC ``datetime``, a ``date``) store what Core's
    processors store, and the other values still go through Core's: other zones, no
    microseconds, years before 1000; booleans true, false and NULL."""
    plus8 = timezone(timedelta(hours=8))
    instants = [
        datetime(2025, 3, 9, 23, 30, tzinfo=UTC),
        datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        datetime(2025, 3, 10, 7, 30, 0, 5, tzinfo=plus8),
        datetime(2025, 3, 10, 7, 30, tzinfo=ZoneInfo("Asia/Shanghai")),
        datetime(2025, 3, 9, 23, 30, 1, tzinfo=ZoneInfo("UTC")),
    ]
    if table == "applied_events":
        target, names = rm.applied_events, list(APPLIED_COLUMNS)
        days = [date(5, 1, 1), date(2025, 12, 31), None, *(i.date() for i in instants)]
        rows = [(*row[:6], days[i % len(days)]) for i, row in enumerate(applied_rows(40))]
    else:
        target, names = rm.item_view, [c.name for c in rm.item_view.c]
        views = [
            view(f"v{i}", at, "closed") | {"on_time": (True, False, None)[i % 3]}
            for i, at in enumerate(instants)
        ]
        rows = [tuple(v[n] for n in names) for v in views]
    assert_bulk_stores_as_core(engine, target, names, rows)


def store_rows(n: int) -> list[tuple[Any, ...]]:
    """Event-store rows (``store._ROW_COLUMNS``), instants in several zones and shapes."""
    at = datetime(2025, 3, 9, 23, 30, 15, 123456, tzinfo=UTC)
    plus8 = timezone(timedelta(hours=8))
    return [
        (
            f"00000000-0000-4000-8000-{i:012d}", "ItemAccepted", 1, f"item-{i // 6}", i % 6 + 1,
            (at + timedelta(minutes=i)).astimezone(plus8 if i % 3 else UTC),
            at + timedelta(seconds=i, microseconds=-at.microsecond if i % 2 else 0),
            "unit:市政", json.dumps({"n": i}), f"item-{i // 6}", f"cmd-{i}", f"{i:064x}", f"{i + 1:064x}",
        )
        for i in range(n)
    ]  # fmt: skip


def test_new_rows_are_inserted_as_core_inserts_them_and_present_keys_skipped(engine: Engine) -> None:
    """``insert_new_rows`` (the event store's append) stores what Core's ``INSERT … ON CONFLICT DO
    NOTHING`` stores, skips the rows whose key is present, and returns exactly the keys it stored,
    past one multi-row statement."""
    store.EventStore(engine).create()
    names, table = list(store._ROW_COLUMNS), store.stored_events
    assert set(names) == {c.name for c in table.c} - {"position"}  # every column the store fills
    rows = store_rows(INSERT_CHUNK * 2 + 100)
    present = rows[::3]
    with engine.begin() as conn:
        conn.execute(table.delete())
        conn.execute(table.insert(), [dict(zip(names, row, strict=True)) for row in present])
        inserted = insert_new_rows(conn, table, names, ["event_id"], rows, "event_id")
    assert sorted(inserted) == sorted(r[0] for i, r in enumerate(rows) if i % 3)
    by_bulk = [r[1:] for r in sorted(raw_values(engine, table), key=lambda r: r[1])]
    with engine.begin() as conn:
        conn.execute(table.delete())
        conn.execute(table.insert(), [dict(zip(names, row, strict=True)) for row in rows])
    assert [r[1:] for r in sorted(raw_values(engine, table), key=lambda r: r[1])] == by_bulk
    with engine.begin() as conn:  # everything present: nothing stored, nothing returned
        assert insert_new_rows(conn, table, names, ["event_id"], rows[:10], "event_id") == []


def test_select_in_finds_exactly_the_rows_asked_for_past_one_chunk(engine: Engine) -> None:
    rows = applied_rows(IN_CHUNK * 3)
    with engine.begin() as conn:
        insert_rows(conn, rm.applied_events, APPLIED_COLUMNS, rows)
    present = [r[0] for r in rows[::2]]
    absent = [f"ffffffff-0000-4000-8000-{i:012d}" for i in range(300)]
    asked = present + absent + present[:40]  # repeats are asked once
    with engine.connect() as conn:
        found = list(select_in(conn, rm.applied_events, ("event_id", "day", "offset"), "event_id", asked))
    assert sorted(found) == sorted((r[0], r[6], r[5]) for r in rows[::2])
    with engine.connect() as conn:
        assert list(select_in(conn, rm.applied_events, ("event_id",), "event_id", [])) == []


def test_a_database_error_is_sqlalchemys_as_with_core(engine: Engine) -> None:
    """The projector tells a failing database (retry) from a refused value (dead letter) by
    SQLAlchemy's exception classes: the bulk statements raise the same ones."""
    missing = Table("no_such_table", MetaData(), *(Column(c.name, c.type) for c in rm.applied_events.c))
    with pytest.raises(SQLAlchemyError), engine.connect() as conn:
        list(select_in(conn, missing, ("event_id",), "event_id", ["x"]))
    with pytest.raises(SQLAlchemyError), engine.begin() as conn:
        insert_rows(conn, missing, APPLIED_COLUMNS, applied_rows(1))


def test_a_value_its_column_refuses_is_a_refused_value_as_with_core(engine: Engine) -> None:
    names = [c.name for c in rm.item_view.c]
    naive = view("v1", datetime(2025, 3, 9, 23, 30), "registered")  # no time zone: the column refuses it
    with pytest.raises(StatementError) as caught, engine.begin() as conn:
        upsert_rows(conn, rm.item_view, names, ["item_id"], [tuple(naive[n] for n in names)])
    assert database_refused(caught.value)
