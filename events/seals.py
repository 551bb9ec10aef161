"""Seals of the event log: a root over every stream's head at a cut-off (``events.chain``).

A seal is taken when a period closes (and on demand, ``duban audit seal``). Its cut-off is
``SETTLE_S`` before it is taken, so every event recorded up to the cut-off has committed (an append
cannot still be in flight; the recording activity times out long before): a stream's head is its
event of highest sequence recorded at or before the cut-off. The seal keeps the root, the number of
streams and of events it covers. Verifying a seal recomputes its root from the log as it is now:
a stream deleted or truncated, an event forged into the sealed past — anything that changes a head
as of the cut-off — no longer matches. A change made after the last seal can only be caught against
something kept outside the database (the Temporal histories: ``duban audit item``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    insert,
    inspect,
    select,
    type_coerce,
)

from events.chain import seal_root
from events.errors import ValidationError
from events.sql import UTCDateTime, create_schema, stored_time
from events.store import stored_events

SETTLE_S = 300.0
"""How far before a seal is taken its cut-off lies, in seconds (as ``projections.store_sync``)."""

seal_metadata = MetaData()
audit_seals = Table(
    "audit_seals",
    seal_metadata,
    Column("seal_id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("taken_at", UTCDateTime(), nullable=False),
    Column("cutoff", UTCDateTime(), nullable=False),
    Column("period", String(32), nullable=True, index=True),
    Column("streams", Integer, nullable=False),
    Column("events", BigInteger, nullable=False),
    Column("root", String(64), nullable=False),
)


@dataclass(frozen=True)
class Seal:
    """A seal: when it was taken, its cut-off (aware UTC), the period whose close took it (or
    ``None``), the streams and events it covers and their root."""

    seal_id: int
    taken_at: datetime
    cutoff: datetime
    period: str | None
    streams: int
    events: int
    root: str


def heads(conn: Connection, cutoff: datetime) -> tuple[list[tuple[str, int, str]], int]:
    """Every stream's head as of ``cutoff`` — ``(item_id, sequence, chain)`` of its highest
    sequence recorded at or before it — and how many events that covers.

    Each stream has one head and each event recorded by the cut-off counts once, whatever the rows
    hold: the head is the row that comes first by (sequence descending, store position) among the
    stream's rows recorded by the cut-off, so two rows claiming a stream's top sequence (an event
    moved from another stream) give one head, never two."""
    c = stored_events.c
    ranked = (
        select(
            c.item_id,
            c.sequence,
            c.chain,
            func.row_number()
            .over(partition_by=c.item_id, order_by=(c.sequence.desc(), c.position))
            .label("rank"),
            func.count().over(partition_by=c.item_id).label("n"),
        )
        .where(c.recorded_at <= cutoff)
        .subquery()
    )
    query = select(ranked.c.item_id, ranked.c.sequence, ranked.c.chain, ranked.c.n).where(ranked.c.rank == 1)
    found, total = [], 0
    for item_id, sequence, chain, count in conn.execute(query):
        found.append((str(item_id), int(sequence), str(chain or "")))
        total += int(count)
    return found, total


def take_seal(engine: Engine, now: datetime, period: str | None = None, settle_s: float = SETTLE_S) -> Seal:
    """Seal the log as of ``now − settle_s`` (``now`` aware); the stored seal."""
    create_schema(engine, seal_metadata)
    cutoff = now - timedelta(seconds=settle_s)
    with engine.begin() as conn:
        found, total = heads(conn, cutoff)
        row = {
            "taken_at": now,
            "cutoff": cutoff,
            "period": period,
            "streams": len(found),
            "events": total,
            "root": seal_root(found),
        }
        seal_id = conn.execute(insert(audit_seals).returning(audit_seals.c.seal_id), [row]).scalar_one()
    return Seal(int(seal_id), **row)  # type: ignore[arg-type]


def read_seals(engine: Engine, period: str | None = None) -> list[Seal]:
    """The seals, oldest first (those a close of ``period`` took, when given); none when the
    database has no seals table. Reads only: it creates nothing.

    Raises:
        ValidationError: field ``audit_seals``, a seal whose stored time is not a time.
    """
    if not inspect(engine).has_table(audit_seals.name):
        return []
    c = audit_seals.c
    times = ("taken_at", "cutoff")
    columns = [type_coerce(column, Text) if column.name in times else column for column in audit_seals.c]
    query = select(*columns).order_by(c.seal_id)
    if period is not None:
        query = query.where(c.period == period)
    seals = []
    with engine.connect() as conn:
        for row in conn.execute(query):
            data = dict(row._mapping)
            for name in times:
                try:
                    data[name] = stored_time(data[name])
                except ValueError as exc:
                    reason = f"seal {data['seal_id']}: its {name} {exc}"
                    raise ValidationError("audit_seals", reason) from None
            seals.append(Seal(**data))
    return seals
