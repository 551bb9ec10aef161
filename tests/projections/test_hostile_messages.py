"""Issue 8, findings 2 and 3: no message stops the projection, and only stored events reach the
read models — the same outcome, message for message, on SQLite and PostgreSQL.

The events of ``item_helpers.three_items`` are stored; the topic then carries them and crafted
messages: values out of bounds (long, NUL, lone surrogates, control characters, huge numbers, the
ends of time), forged but well-formed events, a repeated key, a 900 kB event. Before, 13 of such
messages raised on PostgreSQL and 3 on SQLite, every one of them again at each restart, and the forged
ones appeared in ``item_view``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from helpers.items import three_items
from helpers.projections import fresh, store
from sqlalchemy import Engine, select, text

from events import types as t
from events.codec import encode_event
from events.envelope import make_event_id
from events.sql import make_engine
from projections import read_models as rm
from projections.projector import ItemProjector, RawMessage, table_checksum

EVENTS = three_items()
REGISTERED = next(e for e in EVENTS if e.event_type == t.ITEM_REGISTERED)
LATER = next(e for e in EVENTS if e.event_type == t.ITEM_DISPATCHED)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'm.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    eng = make_engine(url)
    fresh(eng)
    yield eng
    fresh(eng)
    eng.dispose()


def as_dict(event: Any) -> dict[str, Any]:
    return json.loads(encode_event(event))


def raw(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode("utf-8", "surrogatepass")


def crafted() -> list[tuple[str, bytes]]:
    """(what it is, the message) for every crafted message: none of them is a stored event."""
    base, later = as_dict(REGISTERED), as_dict(LATER)
    out: list[tuple[str, bytes]] = []
    values = {
        "long": "x" * 300,
        "nul": "a\x00b",
        "surrogate": "a\ud800b",
        "control": "a\x1bb",
        "number": 12,
        "null": None,
    }
    for name in ("event_id", "event_type", "item_id", "actor", "correlation_id", "causation_id"):
        for kind, value in values.items():
            out.append((f"{name}={kind}", raw(base | {name: value})))
    texts = ("category", "category_group", "department", "unit", "town", "community", "grid", "district")
    for field in (*texts, "zone", "order_id", "source"):
        for kind in ("long", "nul", "surrogate"):
            out.append(
                (f"payload.{field}={kind}", raw(base | {"payload": base["payload"] | {field: values[kind]}}))
            )
    for kind, value in {"2**40": 2**40, "zero": 0, "negative": -1, "text": "1", "float": 1.5}.items():
        out.append((f"sequence={kind}", raw(later | {"sequence": value})))
    for kind, value in {
        "9999": "9999-12-31T20:00:00+00:00",
        "year 1": "0001-01-01T00:00:00+05:00",
        "naive": "2026-11-02T09:00:00",
        "garbage": "yesterday",
    }.items():
        out.append((f"occurred_at={kind}", raw(base | {"occurred_at": value})))
    out.append(("recorded_at=9999", raw(base | {"recorded_at": "9999-12-31T23:59:59+00:00"})))
    deadline = base["payload"] | {"resolution_deadline": "0001-01-01T00:00:00+05:00"}
    out.append(("payload.resolution_deadline=year 1", raw(base | {"payload": deadline})))
    shanghai = base | {
        "occurred_at": "9999-12-31T20:00:00+00:00",
        "payload": base["payload"] | {"zone": "Asia/Shanghai"},
    }
    out.append(("registered 9999-12-31T20:00Z in Asia/Shanghai", raw(shanghai)))
    out.append(
        (
            "level 2**40",
            raw(
                later
                | {"event_type": t.ITEM_ESCALATED, "payload": {"milestone": "x", "level": 2**40, "rung": "r"}}
            ),
        )
    )
    stranger = "s" * 300
    out.append(("an unknown item's event, 300-character id", raw(later | {"item_id": stranger})))
    forged = replace(
        REGISTERED, event_id=make_event_id("FORGED", 1), item_id="FORGED", correlation_id="item-FORGED"
    )
    out.append(("a forged registration", encode_event(forged)))
    last = EVENTS[-1]  # delivered after the crafted messages: an altered copy arrives first
    changed = replace(last, actor="someone else")
    out.append(("a stored event, altered", encode_event(changed)))
    text_ = encode_event(REGISTERED).decode()
    out.append(("a repeated key", ('{"actor": "forger", ' + text_[1:]).encode()))
    big = replace(forged, payload={**forged.payload, "category": "c"}, actor="a")
    padded = as_dict(big) | {"payload": as_dict(big)["payload"] | {"category": "c" * 900_000}}
    out.append(("a 900 kB event", raw(padded)))
    out += [("not JSON", b"{oops"), ("not UTF-8", b"\xff\xfe\x00"), ("empty", b""), ("a list", b"[1, 2]")]
    return out


CRAFTED = crafted()


def messages() -> list[RawMessage]:
    """The stored events with the crafted messages between them, as one topic partition."""
    values = [encode_event(e) for e in EVENTS]
    values[3:3] = [value for _, value in CRAFTED]
    return [RawMessage("t", 0, i, None, value) for i, value in enumerate(values)]


def dead_letters(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(select(rm.dead_letters.c.source, rm.dead_letters.c.reason)).all()
    return sorted((str(s), str(r)) for s, r in rows)


def rebuilt_checksum(engine: Engine, tmp_path: Path, name: str) -> str:
    other = make_engine(f"sqlite:///{tmp_path / name}")
    event_store = store(other, [])
    with engine.connect() as conn:
        from events.store import event_of_row, stored_events

        event_store.append(
            [event_of_row(r) for r in conn.execute(select(stored_events).order_by(stored_events.c.position))]
        )
    ItemProjector(other).rebuild_from_store(event_store)
    return table_checksum(other, rm.READ_MODEL_TABLES)


def test_every_crafted_message_is_a_dead_letter_and_the_read_models_equal_the_store(
    engine: Engine, tmp_path: Path
) -> None:
    assert len(CRAFTED) >= 90
    store(engine, EVENTS)
    projector = ItemProjector(engine)
    result = projector.apply_batch(messages())  # must not raise, whatever is in it
    assert (result.applied, result.dead_lettered) == (len(EVENTS), len(CRAFTED))
    dead = dict(dead_letters(engine))
    assert len(dead) == len(CRAFTED) and all(reason.strip() for reason in dead.values())
    reasons = {what: dead[f"t/0/{3 + i}"] for i, (what, _) in enumerate(CRAFTED)}
    assert (
        reasons["a forged registration"]
        == "not in the event store (the projection applies only stored events)"
    )
    assert reasons["a stored event, altered"].startswith(
        "differs from the event the store holds under this id"
    )
    assert reasons["a repeated key"] == "event: repeats the key 'actor' in one object"
    assert reasons["a 900 kB event"].startswith("event: is 900")
    assert reasons["registered 9999-12-31T20:00Z in Asia/Shanghai"].startswith(
        "occurred_at: must lie from 1970"
    )
    assert reasons["sequence=2**40"] == f"sequence: must be a whole number from 1 to 1000000, got {2**40}"
    assert reasons["item_id=nul"] == "item_id: contains a NUL character (at 1), which no database stores"
    assert reasons["payload.category=surrogate"].startswith("payload.category: contains a lone surrogate")
    with engine.connect() as conn:
        items = set(conn.execute(select(rm.item_view.c.item_id)).scalars())
    assert items == {"P", "Q", "R"}  # nothing forged reached the read models
    assert table_checksum(engine, rm.READ_MODEL_TABLES) == rebuilt_checksum(engine, tmp_path, "rebuilt.db")
    again = projector.apply_batch(messages())  # a restart reads them all again: nothing changes
    # (the altered copy now comes after its stored event was applied: a repeat of its id, skipped)
    assert (again.applied, again.duplicates, again.dead_lettered) == (0, len(EVENTS) + 1, len(CRAFTED) - 1)
    assert len(dead_letters(engine)) == len(CRAFTED)


def test_sqlite_and_postgresql_give_every_message_the_same_outcome(pg_url: str, tmp_path: Path) -> None:
    outcomes = []
    for url in (f"sqlite:///{tmp_path / 's.db'}", pg_url):
        eng = make_engine(url)
        fresh(eng)
        store(eng, EVENTS)
        ItemProjector(eng).apply_batch(messages())
        outcomes.append((dead_letters(eng), table_checksum(eng, rm.READ_MODEL_TABLES)))
        fresh(eng)
        eng.dispose()
    assert outcomes[0] == outcomes[1]


def test_a_value_the_database_refuses_is_a_dead_letter_and_the_batch_goes_on(pg_url: str) -> None:
    """A read-model column narrower than the bounds (a database altered by hand, or made by another
    tool) makes PostgreSQL refuse a value: the messages it refuses are dead letters, the rest apply."""
    eng = make_engine(pg_url)
    fresh(eng)
    try:
        store(eng, EVENTS)
        ItemProjector(eng)  # creates the tables; then narrow one column: "Greening" no longer fits
        with eng.begin() as conn:
            conn.execute(text("ALTER TABLE item_view ALTER COLUMN department TYPE varchar(4)"))
        batch = [RawMessage("t", 0, i, None, encode_event(e)) for i, e in enumerate(EVENTS)]
        result = ItemProjector(eng).apply_batch(batch)  # must not raise
        p_events = [e for e in EVENTS if e.item_id == "P"]
        moved = next(i for i, e in enumerate(p_events) if e.payload.get("department") == "Greening")
        assert (result.applied, result.dead_lettered) == (
            len(EVENTS) - len(p_events) + moved,
            len(p_events) - moved,
        )
        reasons = [reason for _, reason in dead_letters(eng)]
        assert all(reason.startswith("the database refused it:") for reason in reasons)
        with eng.connect() as conn:
            views = dict(conn.execute(select(rm.item_view.c.item_id, rm.item_view.c.stage)).all())
            positions = conn.execute(select(rm.projection_positions.c.next_offset)).scalars().all()
        assert views == {"P": "registered", "Q": "cancelled", "R": "closed"}  # P stops before the refusal
        assert positions == [len(batch)]  # past every message: nothing waits behind a refused one
    finally:
        fresh(eng)
        eng.dispose()
