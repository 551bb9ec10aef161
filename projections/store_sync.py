"""What the projection still owes the event store: the stored events it has not yet handled.

A stored event is *handled* once the projection has applied it (``applied_events``) or dead-lettered
it (``dead_letters.store_position``). The backlog is the stored events not handled: this, not the
Kafka lag, says whether the read models reflect the store (a broker that restarted empty, or a
topic that was recreated, leaves Kafka positions that say nothing about the store).

To keep the question cheap on a large store, the projection keeps a *watermark*: a store position
at or below which every stored event is handled, kept in ``projection_positions`` under the topic
``WATERMARK_TOPIC``. It never passes an event recorded in the last ``settle_s`` seconds: on
PostgreSQL an insert can still be committing with a lower position than rows already visible.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, exists, func, select

from events.sql_bulk import upsert_rows
from events.store import stored_events
from projections import read_models as rm

WATERMARK_TOPIC = "(event store)"
"""``projection_positions.topic`` of the watermark (not a Kafka topic name: Kafka forbids spaces)."""
SETTLE_S = 300.0
"""How recent an event the watermark never passes, in seconds (longer than any append transaction
and the recording activity's 60 s timeout, with room for clock skew between hosts)."""

_es, _ap, _dl = stored_events.c, rm.applied_events.c, rm.dead_letters.c


def _unhandled() -> Any:
    """The condition 'this stored event is neither applied nor dead-lettered'."""
    applied = exists().where(_ap.event_id == _es.event_id)
    dead = exists().where(_dl.store_position == _es.position)
    return ~applied & ~dead


def watermark(conn: Connection, projection: str = rm.PROJECTION_NAME) -> int:
    """The stored watermark (0 if none)."""
    pp = rm.projection_positions.c
    query = select(pp.next_offset).where(pp.projection == projection, pp.topic == WATERMARK_TOPIC)
    return int(conn.execute(query).scalar() or 0)


def unhandled_rows(conn: Connection, after: int, recorded_before: datetime | None, limit: int) -> list[Any]:
    """Up to ``limit`` stored rows after position ``after`` that are not handled, in store order
    (only those recorded before ``recorded_before``, when given)."""
    query = select(stored_events).where(_es.position > after, _unhandled())
    if recorded_before is not None:
        query = query.where(_es.recorded_at < recorded_before)
    return list(conn.execute(query.order_by(_es.position).limit(limit)))


def advance_watermark(
    conn: Connection, now: datetime, projection: str = rm.PROJECTION_NAME, settle_s: float = SETTLE_S
) -> int:
    """Move the watermark as far as every stored event is handled, but never past an event recorded
    in the last ``settle_s`` seconds; return it."""
    mark = watermark(conn, projection)
    first_open = conn.execute(
        select(func.min(_es.position)).where(_es.position > mark, _unhandled())
    ).scalar()
    settled = conn.execute(
        select(func.max(_es.position)).where(
            _es.position > mark, _es.recorded_at < now - timedelta(seconds=settle_s)
        )
    ).scalar()
    if settled is None:
        return mark
    new = int(settled) if first_open is None else min(int(settled), int(first_open) - 1)
    if new > mark:
        row = (projection, WATERMARK_TOPIC, 0, new)
        key = rm.POSITION_COLUMNS[:3]
        upsert_rows(conn, rm.projection_positions, rm.POSITION_COLUMNS, key, [row], merge="max")
        return new
    return mark


def backlog(
    engine: Engine, recorded_before: datetime | None = None, projection: str = rm.PROJECTION_NAME
) -> int:
    """Stored events the projection has not handled (only those recorded before ``recorded_before``,
    when given): 0 means the read models reflect every such event of the store. The event store and
    the projection's tables must exist (``ItemProjector`` creates them)."""
    with engine.connect() as conn:
        query = select(func.count()).select_from(stored_events)
        query = query.where(_es.position > watermark(conn, projection), _unhandled())
        if recorded_before is not None:
            query = query.where(_es.recorded_at < recorded_before)
        return int(conn.execute(query).scalar_one())


def projection_lag(engine: Engine) -> int:
    """Stored events the projection has not yet handled (0 when it has caught up with the store); the
    read models' tables are created if missing."""
    rm.create_tables(engine)
    return backlog(engine)
