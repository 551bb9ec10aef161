"""Issue 14, speed: concurrent recordings share store transactions, and the projection builds the
events the store vouches for without validating them again — with every guarantee kept.

- Steps recorded concurrently are stored in fewer transactions than steps, each exactly once, with
  unbroken chains, and each activity gets its own result (new events, the bytes the store holds).
- A step that fails (an event id stored with other content) fails alone and stores nothing (its
  later events are never chained onto content the store does not hold); the steps that shared its
  transaction are stored, chains unbroken.
- A message whose bytes the store holds is built by ``trusted_event`` into the same envelope that
  strict decoding gives; a message that differs from the store is still a dead letter.

Each runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from activities.event_recording import EventRecorder
from events.chain import genesis, link
from events.codec import decode_event, encode_event, read_encoded, trusted_event
from events.envelope import EventEnvelope
from events.sql import make_engine
from events.store import EventStore, digest_of, stored_events
from projections import read_models as rm
from projections.projector import ItemProjector, RawMessage
from workflows import item_rules
from workflows.activity_contracts import RecordEventsInput
from workflows.item_model import ItemCommand, Registration


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 't.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    eng = make_engine(url)
    with eng.begin() as conn:  # the session's PostgreSQL database is shared: start empty
        for table in (stored_events, rm.applied_events, rm.dead_letters, rm.item_view):
            if eng.dialect.has_table(conn, table.name):
                conn.execute(table.delete())
    try:
        yield eng
    finally:
        eng.dispose()


def item_steps(n_items: int) -> list[list[EventEnvelope]]:
    """Per item, its events in one step each: registration, dispatch, accept (real domain events)."""
    at = datetime(2026, 5, 4, 1, tzinfo=UTC)
    steps = []
    for i in range(n_items):
        reg = Registration(
            f"gc-{i:04d}", "litter", at, department="UM", resolution_deadline=at + timedelta(days=2)
        )
        state, events = item_rules.register(reg)
        for k, kind in enumerate(("dispatch", "accept")):
            cmd = ItemCommand(f"gc-{i}:{kind}", kind, "unit:U", at + timedelta(minutes=k + 1), unit="U")
            events += item_rules.apply_command(state, cmd)
        steps.append(events)
    return steps


def chains_unbroken(engine: Engine) -> bool:
    """Recompute every stream's chain from the digests (``events.chain``) and compare."""
    c = stored_events.c
    with engine.connect() as conn:
        rows = conn.execute(select(c.item_id, c.sequence, c.digest, c.chain).order_by(c.item_id, c.sequence))
        previous: dict[str, tuple[int, str]] = {}
        for item, sequence, digest, chain in rows:
            last, head = previous.get(item, (0, genesis(item)))
            if sequence != last + 1 or chain != link(head, digest):
                return False
            previous[item] = (sequence, chain)
    return True


async def test_concurrent_steps_share_transactions_and_are_stored_once(engine: Engine) -> None:
    store = EventStore(engine)
    store.create()
    recorder = EventRecorder(store, None, "unused")
    steps = item_steps(120)
    results = await asyncio.gather(*(recorder.record_events(RecordEventsInput(s)) for s in steps))
    assert [r.stored for r in results] == [len(s) for s in steps]
    assert recorder.appends.transactions < len(steps)  # shared: 120 steps in fewer transactions
    assert store.count() == sum(len(s) for s in steps)
    assert chains_unbroken(engine)
    # a retry of every step stores nothing new and answers with what the store holds
    again = await asyncio.gather(*(recorder.record_events(RecordEventsInput(s)) for s in steps))
    assert [r.stored for r in again] == [0] * len(steps)
    assert store.count() == sum(len(s) for s in steps)


async def test_a_failing_step_fails_alone(engine: Engine) -> None:
    store = EventStore(engine)
    store.create()
    recorder = EventRecorder(store, None, "unused")
    steps = item_steps(30)
    await recorder.record_events(RecordEventsInput(steps[7][:1]))  # item 7's registration, as it was
    forged = replace(steps[7][0], actor="someone:else")  # the same event id with other content
    bad = [forged, *steps[7][1:]]
    outcomes = await asyncio.gather(
        *(recorder.record_events(RecordEventsInput(bad if i == 7 else s)) for i, s in enumerate(steps)),
        return_exceptions=True,
    )
    failed = [i for i, o in enumerate(outcomes) if isinstance(o, BaseException)]
    assert failed == [7] and "EventConflict" in repr(outcomes[7])
    with engine.connect() as conn:
        per_item = dict(
            conn.execute(
                select(stored_events.c.item_id, func.count()).group_by(stored_events.c.item_id)
            ).all()
        )
    assert per_item.pop("gc-0007") == 1  # what was stored before; nothing of the refused step
    assert next(store.read("gc-0007")).actor == steps[7][0].actor  # the stored event is never changed
    assert per_item == {f"gc-{i:04d}": len(steps[i]) for i in range(30) if i != 7}
    assert chains_unbroken(engine)


def test_trusted_events_equal_strictly_decoded_ones_and_strangers_are_dead_letters(engine: Engine) -> None:
    projector = ItemProjector(engine)
    steps = item_steps(20)
    events = [replace(e, recorded_at=datetime(2026, 5, 4, 2, tzinfo=UTC)) for s in steps for e in s]
    encoded = [encode_event(e) for e in events]
    for raw in encoded:
        assert trusted_event(read_encoded(raw)) == decode_event(raw)
    projector.store.record(events[:-3], encoded[:-3])  # the last three are not in the store
    altered = encoded[0].replace(b'"litter"', b'"garbage"')  # the store holds other bytes under its id
    assert altered != encoded[0]
    messages = [RawMessage("t", 0, i, None, raw) for i, raw in enumerate([altered, *encoded])]
    result = projector.apply_batch(messages)
    assert (result.applied, result.dead_lettered) == (len(events) - 3, 4)
    with engine.connect() as conn:
        reasons = conn.execute(select(rm.dead_letters.c.reason)).scalars().all()
    assert sum("not in the event store" in r for r in reasons) == 3
    assert sum("differs from the event the store holds" in r for r in reasons) == 1


async def test_a_step_retried_while_its_first_attempt_waits_is_stored_once(engine: Engine) -> None:
    """Two attempts of one step (the second with a later ``recorded_at``, as a retried activity
    stamps it) in flight together: stored once, both answered with the bytes the store holds."""
    store = EventStore(engine)
    store.create()
    recorder = EventRecorder(store, None, "unused")
    steps = item_steps(40)
    again = [replace(e, recorded_at=datetime(2030, 1, 1, tzinfo=UTC)) for e in steps[3]]
    pending = [recorder.appends.record(s, [encode_event(e) for e in s]) for s in steps]
    pending.append(recorder.appends.record(again, [encode_event(e) for e in again]))
    results = await asyncio.gather(*pending)
    first, retried = results[3], results[-1]
    assert first[0] == len(steps[3]) and retried[0] == 0  # new events counted once
    assert retried[1] == first[1]  # both publish what the store holds: the first attempt's bytes
    assert store.count() == sum(len(s) for s in steps) and chains_unbroken(engine)
    with engine.connect() as conn:
        held = dict(conn.execute(select(stored_events.c.event_id, stored_events.c.digest)).all())
    assert [held[e.event_id] for e in steps[3]] == [digest_of(raw) for raw in first[1]]


def test_an_event_given_twice_in_one_call_is_stored_as_first_given(engine: Engine) -> None:
    store = EventStore(engine)
    store.create()
    [step] = item_steps(1)
    later = [replace(e, recorded_at=datetime(2030, 1, 1, tzinfo=UTC)) for e in step]
    raws, later_raws = [encode_event(e) for e in step], [encode_event(e) for e in later]
    results = store.record_many([(step, raws), (later, later_raws)])
    assert results == [(len(step), raws), (0, raws)]
    assert store.count() == len(step) and chains_unbroken(engine)


def test_a_trusted_event_of_another_schema_version_is_decoded_strictly() -> None:
    [step] = item_steps(1)
    parsed = read_encoded(encode_event(replace(step[0], recorded_at=datetime(2026, 5, 4, tzinfo=UTC))))
    with pytest.raises(ValueError, match="schema version"):
        trusted_event(replace(parsed, schema_version=2))


def test_trusted_bytes_with_an_instant_not_in_utc_are_decoded_strictly() -> None:
    """``encode_event`` writes instants in UTC: bytes with another offset were not written by it."""
    [step] = item_steps(1)
    raw = encode_event(replace(step[0], recorded_at=datetime(2026, 5, 4, tzinfo=UTC)))
    assert b"+00:00" in raw
    with pytest.raises(ValueError, match="UTC"):
        trusted_event(read_encoded(raw.replace(b"+00:00", b"+08:00", 1)))
    with pytest.raises(ValueError):  # a field of the wrong JSON kind
        read_encoded(raw.replace(b'"sequence": 1', b'"sequence": "1"'))
