"""The item projection: applies batches of events to the read models in one SQL transaction each.

Delivery is at least once (ENGINEERING.md "Kafka"): every event id applied is recorded in
``applied_events`` in the same transaction as the rows it changed, so a repeat changes nothing, and
the Kafka position is stored there too, so a consumer resumes exactly after the last applied batch.
A message that cannot be applied goes to ``dead_letters`` with the reason; ``apply_batch`` never
raises for a bad message (only for database errors, after which nothing of the batch is stored).
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection, Engine, Table, case, select
from sqlalchemy.dialects import postgresql, sqlite

from duban.db import insert_ignoring_duplicates
from duban.errors import EventValidationError
from events import types as t
from events.codec import decode_event, encode_event
from events.envelope import EventEnvelope
from events.store import EventStore
from projections import read_models as rm
from projections.evolve import adjustment_row, evolve, new_view
from projections.frozen_periods import counted_day, create_ledger, period_snapshots
from projections.read_models import table_checksum

_CHUNK = 500  # ids per IN (...) query
__all__ = ["BatchResult", "ItemProjector", "RawMessage", "table_checksum"]


class RawMessage(NamedTuple):
    """One Kafka record as the projector sees it (``value`` is the encoded event, UTF-8 JSON)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


@dataclass(frozen=True)
class BatchResult:
    """Outcome of one batch: events newly applied, repeats skipped, messages sent to dead letters."""

    applied: int = 0
    duplicates: int = 0
    dead_lettered: int = 0

    def __add__(self, other: BatchResult) -> BatchResult:
        return BatchResult(
            self.applied + other.applied,
            self.duplicates + other.duplicates,
            self.dead_lettered + other.dead_lettered,
        )


@dataclass
class _Entry:
    topic: str
    partition: int
    offset: int
    raw: bytes | None  # None: an event from the store (encoded again only if it is dead-lettered)
    event: EventEnvelope | None
    reason: str = ""

    @property
    def source(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"


@functools.lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _decode(msg: RawMessage) -> _Entry:
    entry = _Entry(msg.topic, msg.partition, msg.offset, msg.value, None)
    try:
        entry.event = decode_event(msg.value)
    except Exception as exc:  # any failure to decode is a bad message, never a crash
        entry.reason = str(exc) if isinstance(exc, EventValidationError) else f"{type(exc).__name__}: {exc}"
    return entry


def _chunks(values: Sequence[str]) -> Iterator[Sequence[str]]:
    for i in range(0, len(values), _CHUNK):
        yield values[i : i + _CHUNK]


def _upsert(
    conn: Connection,
    table: Table,
    key: list[str],
    rows: list[dict[str, Any]],
    set_: Callable[[Table, Any], dict[str, Any]],
) -> None:
    """INSERT … ON CONFLICT (key) DO UPDATE SET ``set_(table, excluded)``, as one executemany."""
    if not rows:
        return
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(table)
    conn.execute(stmt.on_conflict_do_update(index_elements=key, set_=set_(table, stmt.excluded)), rows)


class ItemProjector:
    """Projects item events into the ``projections.read_models`` tables of ``engine``.

    The tables are created on construction if missing. Counters are attributed to the department
    and areas the item has when the event occurs (a dispatch may move it to another department);
    a level whose name is empty on the item is not counted.
    """

    def __init__(self, engine: Engine, projection: str = rm.PROJECTION_NAME) -> None:
        self.engine = engine
        self.projection = projection
        rm.create_tables(engine)
        create_ledger(engine)

    def apply_batch(self, messages: Sequence[RawMessage]) -> BatchResult:
        """Decode and apply ``messages`` (in order) in one transaction; store positions offset+1.

        Bad messages (undecodable, unknown item, duplicate registration, out-of-order sequence,
        unknown time zone) become ``dead_letters`` rows and still advance the position.

        Raises:
            sqlalchemy.exc.SQLAlchemyError: the database failed; nothing of the batch is stored.
                An ``IntegrityError`` also means another projector applied the same events
                concurrently: retry from the stored positions.
        """
        positions: dict[tuple[str, int], int] = {}
        for msg in messages:
            key = (msg.topic, msg.partition)
            positions[key] = max(positions.get(key, 0), msg.offset + 1)
        with self.engine.begin() as conn:
            result = self._apply(conn, [_decode(m) for m in messages])
            rows = [
                {"projection": self.projection, "topic": tp, "partition": part, "next_offset": nxt}
                for (tp, part), nxt in sorted(positions.items())
            ]
            _upsert(  # never moves back when an older batch is delivered again
                conn,
                rm.projection_positions,
                ["projection", "topic", "partition"],
                rows,
                lambda tb, ex: {
                    "next_offset": case(
                        (tb.c.next_offset > ex.next_offset, tb.c.next_offset), else_=ex.next_offset
                    )
                },
            )
        return result

    def rebuild_from_store(self, store: EventStore, batch_size: int = 5000) -> BatchResult:
        """Replay every stored event, in store order, through the path of ``apply_batch``.

        Use empty read-model tables for a full rebuild (events already applied are skipped).
        Applied events are recorded with topic ``"store"``, partition 0 and the replay index as
        offset; dead letters get the source ``"store/<index>"``. No position is stored.

        Raises:
            duban.errors.EventValidationError: a stored row is invalid (only a tampered store).
        """
        total, batch = BatchResult(), []
        for index, event in enumerate(store.read(batch_size=batch_size)):
            batch.append(_Entry("store", 0, index, None, event))
            if len(batch) >= batch_size:
                total, batch = total + self._apply_in_transaction(batch), []
        return total + self._apply_in_transaction(batch) if batch else total

    def _apply_in_transaction(self, entries: list[_Entry]) -> BatchResult:
        with self.engine.begin() as conn:
            return self._apply(conn, entries)

    def _apply(self, conn: Connection, entries: list[_Entry]) -> BatchResult:
        events = [e.event for e in entries if e.event is not None]
        event_ids = sorted({ev.event_id for ev in events})
        item_ids = sorted({ev.item_id for ev in events})
        seen: set[str] = set()
        for ids in _chunks(event_ids):
            query = select(rm.applied_events.c.event_id).where(rm.applied_events.c.event_id.in_(ids))
            seen.update(conn.execute(query).scalars())
        views: dict[str, dict[str, Any]] = {}
        for ids in _chunks(item_ids):
            query = select(rm.item_view).where(rm.item_view.c.item_id.in_(ids))
            views.update((row["item_id"], dict(row)) for row in conn.execute(query).mappings())
        counters: dict[tuple[str, str, date], dict[str, int]] = defaultdict(lambda: defaultdict(int))
        adjustments: list[dict[str, Any]] = []
        spans = [(r.start, r.end, r.frozen_at) for r in conn.execute(select(period_snapshots)).all()]
        days: dict[str, date] = {}
        applied: list[dict[str, Any]] = []
        dead: list[dict[str, Any]] = []
        changed: set[str] = set()
        duplicates = 0
        for entry in entries:
            ev = entry.event
            if ev is not None and ev.event_id in seen:
                duplicates += 1
                continue
            reason = (
                entry.reason
                if ev is None
                else self._apply_event(ev, views, counters, adjustments, spans, days)
            )
            if reason:
                raw = entry.raw if entry.raw is not None or ev is None else encode_event(ev)
                ref = {"event_id": ev.event_id if ev else None, "item_id": ev.item_id if ev else None}
                dead.append({"source": entry.source, "raw": raw or b"", "reason": reason, **ref})
                continue
            assert ev is not None
            seen.add(ev.event_id)
            if ev.event_type != t.SCORE_ADJUSTED:
                changed.add(ev.item_id)
            who = {
                "event_id": ev.event_id,
                "item_id": ev.item_id,
                "sequence": ev.sequence,
                "day": days.get(ev.event_id),
            }
            applied.append(
                {"topic": entry.topic, "partition": entry.partition, "offset": entry.offset, **who}
            )
        self._write(conn, [views[i] for i in sorted(changed)], counters, applied, dead)
        if adjustments:
            conn.execute(rm.score_adjustments.insert(), adjustments)
        return BatchResult(len(applied), duplicates, len(dead))

    @staticmethod
    def _apply_event(
        ev: EventEnvelope,
        views: dict[str, dict[str, Any]],
        counters: dict[tuple[str, str, date], dict[str, int]],
        adjustments: list[dict[str, Any]],
        spans: list[tuple[date, date, datetime]],
        days: dict[str, date],
    ) -> str:
        """Apply one new event to the in-memory views and counters; return a reason if it cannot be."""
        if ev.event_type == t.SCORE_ADJUSTED:
            return adjustment_row(ev, adjustments, spans, days)
        view = views.get(ev.item_id)
        if ev.event_type == t.ITEM_REGISTERED:
            if view is not None:
                return f"item already registered (by an event of sequence {view['last_sequence']})"
            view = new_view(ev)
        elif view is None:
            return "unknown item"
        elif ev.sequence <= view["last_sequence"]:
            return f"out of order: sequence {ev.sequence} after {view['last_sequence']}"
        zone = _zone(view["zone"])
        if zone is None:
            return f"unknown time zone {view['zone']!r}"
        view = dict(view)
        bumps = evolve(view, ev)
        view.update(last_sequence=ev.sequence, last_event_at=ev.occurred_at)
        views[ev.item_id] = view
        day = ev.occurred_at.astimezone(zone).date()
        counted = counted_day(day, ev.recorded_at, spans)
        if counted != day:  # its day was closed before it was recorded: it counts on the next open day
            bumps["late"] = 1
        day = days[ev.event_id] = counted
        cohort = {n: bumps.pop(n) for n in list(bumps) if n.startswith("cohort_")}
        cohort_day = view["registered_at"].astimezone(zone).date()
        for level in rm.LEVELS:
            key = view[rm.LEVEL_COLUMN.get(level, level)]
            if level == "department" and ev.event_type == t.DEPARTMENT_REPORTED_IN:
                key = ev.payload["department"]  # a report-in counts for the department that came
            if key:
                bucket = counters[(level, key, day)]
                for name, amount in bumps.items():
                    bucket[name] += amount
            # an item's progress counts for the day and units it was registered with, never late
            cohort_key = view["intake_department"] if level == "department" else key
            if cohort_key and cohort:
                bucket = counters[(level, cohort_key, cohort_day)]
                for name, amount in cohort.items():
                    bucket[name] += amount
        return ""

    @staticmethod
    def _write(
        conn: Connection,
        views: list[dict[str, Any]],
        counters: dict[tuple[str, str, date], dict[str, int]],
        applied: list[dict[str, Any]],
        dead: list[dict[str, Any]],
    ) -> None:
        view_cols = [c.name for c in rm.item_view.c if c.name != "item_id"]
        _upsert(conn, rm.item_view, ["item_id"], views, lambda tb, ex: {c: ex[c] for c in view_cols})
        rows = [
            {"level": lv, "unit_key": key, "day": day, **{c: bucket.get(c, 0) for c in rm.COUNTER_COLUMNS}}
            for (lv, key, day), bucket in sorted(counters.items())
            if any(bucket.values())
        ]
        _upsert(
            conn,
            rm.unit_day_counters,
            ["level", "unit_key", "day"],
            rows,
            lambda tb, ex: {c: tb.c[c] + ex[c] for c in rm.COUNTER_COLUMNS},
        )
        if applied:  # a plain INSERT: a concurrent projector applying the same ids fails loudly
            conn.execute(rm.applied_events.insert(), applied)
        if dead:
            now = datetime.now(UTC)
            dead = [{**row, "recorded_at": now} for row in dead]
            conn.execute(insert_ignoring_duplicates(conn.dialect, rm.dead_letters, ["source"]), dead)
