"""The append-only event store: the system of record, one row per event, keyed by event id.

Appending an event whose id is already stored changes nothing (so a retried activity never duplicates
an event). Rows are never updated or deleted. ``position`` is the store's global order of first append.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    select,
)

from duban.db import UTCDateTime, insert_ignoring_duplicates
from events.codec import event_from_dict, event_to_dict
from events.envelope import EventEnvelope

metadata = MetaData()

stored_events = Table(
    "event_store",
    metadata,
    Column("position", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("event_id", String(64), nullable=False, unique=True),
    Column("event_type", String(64), nullable=False),
    Column("schema_version", Integer, nullable=False),
    Column("item_id", String(128), nullable=False, index=True),
    Column("sequence", Integer, nullable=False),
    Column("occurred_at", UTCDateTime(), nullable=False),
    Column("recorded_at", UTCDateTime(), nullable=False),
    Column("actor", String(256), nullable=False),
    Column("payload", Text, nullable=False),
    Column("correlation_id", String(256), nullable=False),
    Column("causation_id", String(256), nullable=False),
)


class EventStore:
    """SQL event store on an engine (SQLite or PostgreSQL). Create the table with ``create()``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self) -> None:
        """Create the table if missing (idempotent)."""
        metadata.create_all(self.engine)

    def append(self, events: Sequence[EventEnvelope]) -> int:
        """Append events in one transaction; ids already stored are skipped.

        Returns:
            the number of events newly stored.
        """
        if not events:
            return 0
        rows = []
        for event in events:
            data = event_to_dict(event)
            data["payload"] = json.dumps(data["payload"], sort_keys=True, ensure_ascii=False)
            data["occurred_at"] = event.occurred_at
            data["recorded_at"] = event.recorded_at
            rows.append(data)
        stmt = insert_ignoring_duplicates(self.engine, stored_events, ["event_id"]).returning(
            stored_events.c.event_id
        )
        with self.engine.begin() as conn:
            return len(conn.execute(stmt, rows).all())

    def count(self) -> int:
        """Number of stored events."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(stored_events)).scalar_one())

    def read(self, item_id: str | None = None, batch_size: int = 5000) -> Iterator[EventEnvelope]:
        """Stored events in store order (by ``position``), optionally of one item only."""
        query = select(stored_events).order_by(stored_events.c.position)
        if item_id is not None:
            query = query.where(stored_events.c.item_id == item_id)
        with self.engine.connect() as conn:
            result = conn.execution_options(yield_per=batch_size).execute(query)
            for row in result.mappings():
                data = dict(row)
                data.pop("position")
                data["payload"] = json.loads(data["payload"])
                data["occurred_at"] = data["occurred_at"].isoformat()
                data["recorded_at"] = data["recorded_at"].isoformat()
                yield event_from_dict(data)
