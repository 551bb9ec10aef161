"""The item projection: applies batches of events to the read models in one SQL transaction each.

Delivery is at least once (ENGINEERING.md "Kafka"): every event id applied is recorded in
``applied_events`` in the same transaction as the rows it changed, so a repeat changes nothing, and
the Kafka position is stored there too, so a consumer resumes exactly after the last applied batch.

The read models trust only the event store. A message from the topic is applied only if the store
holds its event id with the same digest (SHA-256 of the encoded event, ``events.store``): a forged,
altered or unknown event is a dead letter, whatever it claims. An item's events are applied in
sequence order with no gaps: when a message arrives after events of its item that never came (a
broker that lost them), those are read from the store and applied first. Events stored but never
delivered at all are caught up from the store by ``catch_up``, so the read models always reach
what the store holds (``projections.store_sync``).

No message can stop the projection. A message that cannot be applied goes to ``dead_letters`` with
the reason; an error while applying one event is that event's dead letter; a value the database
refuses (a batch failing with ``DataError``) sends the batch through again one message per
transaction, and the message the database still refuses alone is a dead letter. Only errors of the
database itself (unreachable, locked, a concurrent projector's commit) are raised, with nothing of
the batch stored: the caller retries.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection, Engine, case, select
from sqlalchemy.exc import DataError, DBAPIError, StatementError

from duban.db import insert_ignoring_duplicates, upsert
from duban.errors import EventValidationError
from events import bounds as b
from events import types as t
from events.codec import decode_event, encode_event
from events.envelope import EventEnvelope
from events.store import EventStore, digest_of, event_of_row, stored_events
from projections import read_models as rm
from projections import store_sync
from projections.evolve import adjustment_row, evolve, new_view
from projections.frozen_periods import counted_day, create_ledger, period_snapshots
from projections.read_models import table_checksum

_CHUNK = 500  # ids per IN (...) query
STORE_TOPIC = "store"
"""The topic named in ``applied_events`` and dead letters for events read from the event store."""
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
    position: int | None = None  # the event's store position, once the store vouches for it

    @property
    def source(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"


def _stored_entry(position: int, event: EventEnvelope) -> _Entry:
    return _Entry(STORE_TOPIC, 0, position, None, event, position=position)


def _row_entry(row: Any) -> _Entry:
    """The entry of an ``event_store`` row; a row that no longer decodes (tampering) is a dead
    letter with the reason."""
    try:
        return _stored_entry(int(row.position), event_of_row(row))
    except EventValidationError as exc:
        return _Entry(STORE_TOPIC, 0, int(row.position), b"", None, str(exc), int(row.position))


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


def _chunks(values: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for i in range(0, len(values), _CHUNK):
        yield values[i : i + _CHUNK]


def _safe(text: str, limit: int) -> str:
    """``text`` as storable text: NUL and lone surrogates escaped, at most ``limit`` characters."""
    text = text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _ref(value: str | None, bound: b.TextBound) -> str | None:
    return value if value is not None and b.text_problem(value, bound) is None else None


def database_refused(exc: BaseException) -> bool:
    """Whether ``exc`` is the database (or its driver) refusing a value, which retrying cannot mend,
    rather than the database failing (unreachable, locked, a concurrent commit)."""
    if isinstance(exc, DataError):
        return True
    return (
        isinstance(exc, StatementError)
        and not isinstance(exc, DBAPIError)
        and isinstance(exc.orig, ValueError)
    )


class ItemProjector:
    """Projects item events into the ``projections.read_models`` tables of ``engine``.

    The tables (and the event store's, which the projection reads) are created on construction if
    missing. Counters are attributed to the department and areas the item has when the event
    occurs (a dispatch may move it to another department); a level whose name is empty on the item
    is not counted.
    """

    def __init__(self, engine: Engine, projection: str = rm.PROJECTION_NAME) -> None:
        self.engine = engine
        self.projection = projection
        self.store = EventStore(engine)
        self.store.create()
        rm.create_tables(engine)
        create_ledger(engine)

    def apply_batch(self, messages: Sequence[RawMessage]) -> BatchResult:
        """Decode and apply ``messages`` (in order); store positions offset+1. Bad messages (see the
        module docstring) become ``dead_letters`` rows and still advance the position.

        Raises:
            sqlalchemy.exc.SQLAlchemyError: the database failed (not a value it refused); nothing
                of the batch is stored. An ``IntegrityError`` also means another projector applied
                the same events concurrently: retry from the stored positions.
        """
        entries = [_decode(m) for m in messages]
        try:
            with self.engine.begin() as conn:
                result = self._apply(conn, entries)
                self._store_positions(conn, messages)
            return result
        except StatementError as exc:
            if not database_refused(exc):
                raise
            if len(messages) == 1:
                return self._refused(entries[0], exc, messages)
        total = BatchResult()
        for msg in messages:  # one message per transaction: the refused one becomes a dead letter
            total += self.apply_batch([msg])
        return total

    def _refused(self, entry: _Entry, exc: BaseException, messages: Sequence[RawMessage] = ()) -> BatchResult:
        """Dead-letter ``entry``, which the database refused to store (and advance past it)."""
        entry.reason = f"the database refused it: {exc}"
        with self.engine.begin() as conn:
            self._write(conn, [], {}, [], [_dead_row(entry)])
            self._store_positions(conn, messages)
        return BatchResult(dead_lettered=1)

    def _store_positions(self, conn: Connection, messages: Sequence[RawMessage]) -> None:
        positions: dict[tuple[str, int], int] = {}
        for msg in messages:
            key = (msg.topic, msg.partition)
            positions[key] = max(positions.get(key, 0), msg.offset + 1)
        rows = [
            {"projection": self.projection, "topic": tp, "partition": part, "next_offset": nxt}
            for (tp, part), nxt in sorted(positions.items())
        ]
        upsert(  # never moves back when an older batch is delivered again
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

    def catch_up(
        self, batch_size: int = 5000, grace_s: float = 0.0, settle_s: float = store_sync.SETTLE_S
    ) -> BatchResult:
        """Apply, from the event store, the stored events not yet handled (recorded at least
        ``grace_s`` seconds ago: younger ones are left to the topic), then advance the watermark.

        Raises:
            sqlalchemy.exc.SQLAlchemyError: as ``apply_batch``.
        """
        total = BatchResult()
        while True:
            now = datetime.now(UTC)
            before = now - timedelta(seconds=grace_s) if grace_s else None
            with self.engine.connect() as conn:
                after = store_sync.watermark(conn, self.projection)
                rows = store_sync.unhandled_rows(conn, after, before, batch_size)
            total += self._apply_rows(rows)
            with self.engine.begin() as conn:
                store_sync.advance_watermark(conn, now, self.projection, settle_s)
            if len(rows) < batch_size:
                return total

    def _apply_rows(self, rows: list[Any]) -> BatchResult:
        """Apply stored rows in one transaction, or one per transaction if the database refuses."""
        entries = [_row_entry(row) for row in rows]
        try:
            return self._apply_in_transaction(entries)
        except StatementError as exc:
            if not database_refused(exc):
                raise
            if len(rows) == 1:
                return self._refused(_row_entry(rows[0]), exc)
        total = BatchResult()
        for row in rows:
            total += self._apply_rows([row])
        return total

    def rebuild_from_store(self, store: EventStore, batch_size: int = 5000) -> BatchResult:
        """Replay every stored event, in store order, through the path of ``apply_batch``.

        Use empty read-model tables for a full rebuild (events already applied are skipped).
        Applied events are recorded with topic ``"store"``, partition 0 and the store position as
        offset; dead letters get the source ``"store/0/<position>"``. No Kafka position is stored.
        """
        total, batch = BatchResult(), []
        for position, event in store.read_positioned(batch_size=batch_size):
            batch.append(_stored_entry(position, event))
            if len(batch) >= batch_size:
                total, batch = total + self._apply_in_transaction(batch), []
        return total + self._apply_in_transaction(batch) if batch else total

    def _apply_in_transaction(self, entries: list[_Entry]) -> BatchResult:
        with self.engine.begin() as conn:
            return self._apply(conn, entries)

    def _apply(self, conn: Connection, entries: list[_Entry]) -> BatchResult:
        batch = _Batch(conn, self.projection, [e.event for e in entries if e.event is not None])
        for entry in entries:
            batch.take(entry)
        self._write(
            conn, [batch.views[i] for i in sorted(batch.changed)], batch.counters, batch.applied, batch.dead
        )
        if batch.adjustments:
            conn.execute(rm.score_adjustments.insert(), batch.adjustments)
        return BatchResult(len(batch.applied), batch.duplicates, len(batch.dead))

    @staticmethod
    def _write(
        conn: Connection,
        views: list[dict[str, Any]],
        counters: dict[tuple[str, str, date], dict[str, int]],
        applied: list[dict[str, Any]],
        dead: list[dict[str, Any]],
    ) -> None:
        view_cols = [c.name for c in rm.item_view.c if c.name != "item_id"]
        upsert(conn, rm.item_view, ["item_id"], views, lambda tb, ex: {c: ex[c] for c in view_cols})
        rows = [
            {"level": lv, "unit_key": key, "day": day, **{c: bucket.get(c, 0) for c in rm.COUNTER_COLUMNS}}
            for (lv, key, day), bucket in sorted(counters.items())
            if any(bucket.values())
        ]
        upsert(
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


def _dead_row(entry: _Entry) -> dict[str, Any]:
    """The ``dead_letters`` row of ``entry``: only storable values (ids that are not within their
    bounds are left out; the reason is escaped and cut to 2,000 characters)."""
    ev = entry.event
    raw = entry.raw
    if raw is None:
        try:
            raw = encode_event(ev) if ev is not None else b""
        except EventValidationError:
            raw = b""
    return {
        "source": _safe(entry.source, 512),
        "raw": raw,
        "reason": _safe(entry.reason, 2000),
        "event_id": _ref(ev.event_id if ev else None, b.ENVELOPE_TEXT["event_id"]),
        "item_id": _ref(ev.item_id if ev else None, b.IDENTIFIER),
        "store_position": entry.position,
    }


class _Batch:
    """The in-memory work of one transaction: what the database holds for the batch's events and
    items, and what the batch changes."""

    def __init__(self, conn: Connection, projection: str, events: list[EventEnvelope]) -> None:
        self.conn = conn
        event_ids = sorted({ev.event_id for ev in events})
        item_ids = sorted({ev.item_id for ev in events})
        self.seen: set[str] = set()
        self.stored: dict[str, tuple[int, str | None]] = {}
        for ids in _chunks(event_ids):
            query = select(rm.applied_events.c.event_id).where(rm.applied_events.c.event_id.in_(ids))
            self.seen.update(conn.execute(query).scalars())
            c = stored_events.c
            query = select(c.event_id, c.position, c.digest).where(c.event_id.in_(ids))
            self.stored.update((r.event_id, (int(r.position), r.digest)) for r in conn.execute(query))
        self.views: dict[str, dict[str, Any]] = {}
        for ids in _chunks(item_ids):
            query = select(rm.item_view).where(rm.item_view.c.item_id.in_(ids))
            self.views.update((row["item_id"], dict(row)) for row in conn.execute(query).mappings())
        self.counters: dict[tuple[str, str, date], dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.adjustments: list[dict[str, Any]] = []
        self.spans = [(r.start, r.end, r.frozen_at) for r in conn.execute(select(period_snapshots)).all()]
        self.days: dict[str, date] = {}
        self.applied: list[dict[str, Any]] = []
        self.dead: list[dict[str, Any]] = []
        self.changed: set[str] = set()
        self.duplicates = 0

    def take(self, entry: _Entry) -> None:
        """Apply ``entry`` (after the stored events of its item it skipped), or dead-letter it."""
        ev = entry.event
        if ev is not None and ev.event_id in self.seen:
            self.duplicates += 1
            return
        reason = entry.reason or (self._vouch(entry) if ev is not None else "")
        if not reason and ev is not None:
            reason = self._fill_gap(ev) or self._apply_event(ev)
        if reason:
            entry.reason = reason
            self.dead.append(_dead_row(entry))
            return
        assert ev is not None
        self.seen.add(ev.event_id)
        if ev.event_type != t.SCORE_ADJUSTED:
            self.changed.add(ev.item_id)
        self.applied.append(
            {
                "topic": entry.topic,
                "partition": entry.partition,
                "offset": entry.offset,
                "event_id": ev.event_id,
                "item_id": ev.item_id,
                "sequence": ev.sequence,
                "day": self.days.get(ev.event_id),
            }
        )

    def _vouch(self, entry: _Entry) -> str:
        """Why the store does not vouch for a message's event (``""`` if it does: same id, same
        digest). Events read from the store are vouched for already."""
        assert entry.event is not None
        if entry.raw is None or entry.position is not None:
            return ""
        stored = self.stored.get(entry.event.event_id)
        if stored is None:
            return "not in the event store (the projection applies only stored events)"
        position, digest = stored
        if digest != digest_of(entry.raw):
            return f"differs from the event the store holds under this id (store position {position})"
        entry.position = position
        return ""

    def _fill_gap(self, ev: EventEnvelope) -> str:
        """Apply first the stored events of ``ev``'s item between its last applied one and ``ev``."""
        if ev.event_type == t.SCORE_ADJUSTED:
            return ""
        view = self.views.get(ev.item_id)
        last = view["last_sequence"] if view else 0
        if ev.sequence <= last + 1:
            return ""
        c = stored_events.c
        query = (
            select(stored_events)
            .where(c.item_id == ev.item_id, c.sequence > last, c.sequence < ev.sequence)
            .order_by(c.sequence)
        )
        for row in self.conn.execute(query):
            missing = _stored_entry(int(row.position), event_of_row(row))
            self.take(missing)
            if missing.reason:
                return f"comes after event {missing.event.sequence if missing.event else '?'}, a dead letter"
        view = self.views.get(ev.item_id)
        now_last = view["last_sequence"] if view else 0
        if now_last != ev.sequence - 1:
            return (
                f"sequence {ev.sequence}: events {now_last + 1}-{ev.sequence - 1} of the item are not stored"
            )
        return ""

    def _apply_event(self, ev: EventEnvelope) -> str:
        """Apply one new event to the in-memory views and counters; return why not if it cannot be.
        Nothing is changed when it cannot (the changes are made only after every step succeeded)."""
        try:
            return self._apply_unchecked(ev)
        except Exception as exc:  # a bug or an unforeseen value: this event's dead letter, not a crash
            return f"cannot be applied: {type(exc).__name__}: {exc}"

    def _apply_unchecked(self, ev: EventEnvelope) -> str:
        if ev.event_type == t.SCORE_ADJUSTED:
            return adjustment_row(ev, self.adjustments, self.spans, self.days)
        view = self.views.get(ev.item_id)
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
        day = ev.occurred_at.astimezone(zone).date()
        counted = counted_day(day, ev.recorded_at, self.spans)
        if counted != day:  # its day was closed before it was recorded: it counts on the next open day
            bumps["late"] = 1
        cohort = {n: bumps.pop(n) for n in list(bumps) if n.startswith("cohort_")}
        cohort_day = view["registered_at"].astimezone(zone).date()
        updates: list[tuple[tuple[str, str, date], dict[str, int]]] = []
        for level in rm.LEVELS:
            key = view[rm.LEVEL_COLUMN.get(level, level)]
            if level == "department" and ev.event_type == t.DEPARTMENT_REPORTED_IN:
                key = ev.payload["department"]  # a report-in counts for the department that came
            if key:
                updates.append(((level, key, counted), bumps))
            # an item's progress counts for the day and units it was registered with, never late
            cohort_key = view["intake_department"] if level == "department" else key
            if cohort_key and cohort:
                updates.append(((level, cohort_key, cohort_day), cohort))
        self.views[ev.item_id] = view
        self.days[ev.event_id] = counted
        for bucket_key, amounts in updates:
            bucket = self.counters[bucket_key]
            for name, amount in amounts.items():
                bucket[name] += amount
        return ""
