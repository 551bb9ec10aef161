"""Helpers of the projection tests: events go to the event store first, as the recorder stores
them, and then to the projector as Kafka records (the projection applies only stored events)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import Engine

from events.codec import encode_event
from events.envelope import EventEnvelope
from events.sql import make_engine
from events.store import EventStore
from projections import read_models as rm
from projections.projector import BatchResult, ItemProjector, RawMessage, table_checksum


def store(engine: Engine, events: Sequence[EventEnvelope]) -> EventStore:
    """Append ``events`` to the event store of ``engine`` (created if missing)."""
    event_store = EventStore(engine)
    event_store.create()
    event_store.append(events)
    return event_store


def records(events: Sequence[EventEnvelope], topic: str = "t", first_offset: int = 0) -> list[RawMessage]:
    """``events`` as Kafka records of partition 0 of ``topic``, from ``first_offset`` on."""
    return [
        RawMessage(topic, 0, first_offset + i, e.item_id.encode(), encode_event(e))
        for i, e in enumerate(events)
    ]


def project(
    engine: Engine, events: Sequence[EventEnvelope], topic: str = "t", first_offset: int = 0
) -> BatchResult:
    """Store ``events``, then apply them as one batch of records (see ``records``)."""
    store(engine, events)
    return ItemProjector(engine).apply_batch(records(events, topic, first_offset))


def fresh(engine: Engine) -> None:
    """Drop the read models, the frozen periods and the event store of ``engine`` (a database shared
    by several tests, such as the session's PostgreSQL one, starts each test empty)."""
    from events.seals import seal_metadata
    from events.store import metadata as store_metadata
    from projections import read_models as rm
    from projections.frozen_periods import drop_ledger

    rm.drop_tables(engine)
    drop_ledger(engine)
    seal_metadata.drop_all(engine)
    store_metadata.drop_all(engine)


def rebuilt(engine: Engine, tmp_path: Path) -> str:
    """The checksum of read models rebuilt from a copy of ``engine``'s event store (a scratch SQLite
    database in ``tmp_path``), to compare with the checksum of ``engine``'s own read models."""
    other = make_engine(f"sqlite:///{tmp_path / f'rebuilt-{uuid.uuid4().hex[:6]}.db'}")
    copy = EventStore(other)
    copy.create()
    copy.append(list(EventStore(engine).read()))
    ItemProjector(other).rebuild_from_store(copy)
    return table_checksum(other, rm.READ_MODEL_TABLES)
