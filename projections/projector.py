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

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DataError, DBAPIError, StatementError

from events.sql import insert_ignoring_duplicates
from events.sql_bulk import insert_rows, upsert_rows
from events.store import EventStore
from projections import read_models as rm
from projections import store_sync
from projections.frozen_periods import create_ledger
from projections.projection_batch import (
    APPLIED_COLUMNS,
    Batch,
    Entry,
    RawMessage,
    Stored,
    dead_row,
    decode,
    decode_vouched,
    row_entry,
    stored_entry,
)
from projections.read_models import table_checksum

__all__ = ["BatchResult", "ItemProjector", "RawMessage", "table_checksum"]


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
        try:
            with self.engine.begin() as conn:
                entries, stored = decode_vouched(conn, messages)
                result = self._apply(conn, entries, stored)
                self._store_positions(conn, messages)
            return result
        except StatementError as exc:
            if not database_refused(exc):
                raise
            if len(messages) == 1:
                return self._refused(decode(messages[0]), exc, messages)
        total = BatchResult()
        for msg in messages:  # one message per transaction: the refused one becomes a dead letter
            total += self.apply_batch([msg])
        return total

    def _refused(self, entry: Entry, exc: BaseException, messages: Sequence[RawMessage] = ()) -> BatchResult:
        """Dead-letter ``entry``, which the database refused to store (and advance past it)."""
        entry.reason = f"the database refused it: {exc}"
        with self.engine.begin() as conn:
            self._write(conn, [], {}, [], [dead_row(entry)])
            self._store_positions(conn, messages)
        return BatchResult(dead_lettered=1)

    def _store_positions(self, conn: Connection, messages: Sequence[RawMessage]) -> None:
        positions: dict[tuple[str, int], int] = {}
        for msg in messages:
            key = (msg.topic, msg.partition)
            positions[key] = max(positions.get(key, 0), msg.offset + 1)
        rows = [(self.projection, tp, part, nxt) for (tp, part), nxt in sorted(positions.items())]
        # never moves back when an older batch is delivered again
        positions_key = rm.POSITION_COLUMNS[:3]
        upsert_rows(conn, rm.projection_positions, rm.POSITION_COLUMNS, positions_key, rows, merge="max")

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
        entries = [row_entry(row) for row in rows]
        try:
            return self._apply_in_transaction(entries)
        except StatementError as exc:
            if not database_refused(exc):
                raise
            if len(rows) == 1:
                return self._refused(row_entry(rows[0]), exc)
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
            batch.append(stored_entry(position, event))
            if len(batch) >= batch_size:
                total, batch = total + self._apply_in_transaction(batch), []
        return total + self._apply_in_transaction(batch) if batch else total

    def _apply_in_transaction(self, entries: list[Entry]) -> BatchResult:
        with self.engine.begin() as conn:
            return self._apply(conn, entries)

    def _apply(self, conn: Connection, entries: list[Entry], stored: Stored | None = None) -> BatchResult:
        batch = Batch(conn, self.projection, [e.event for e in entries if e.event is not None], stored)
        for entry in entries:
            batch.take(entry)
        self._write(
            conn, [batch.views[i] for i in sorted(batch.changed)], batch.counters(), batch.applied, batch.dead
        )
        if batch.adjustments:
            conn.execute(rm.score_adjustments.insert(), batch.adjustments)
        if batch.interviews:
            conn.execute(rm.interviews.insert(), batch.interviews)
        return BatchResult(len(batch.applied), batch.duplicates, len(batch.dead))

    @staticmethod
    def _write(
        conn: Connection,
        views: list[dict[str, Any]],
        counters: dict[tuple[str, str, date], dict[str, int]],
        applied: list[tuple[Any, ...]],
        dead: list[dict[str, Any]],
    ) -> None:
        names = [c.name for c in rm.item_view.c]
        row_of = operator.itemgetter(*names)
        upsert_rows(conn, rm.item_view, names, ["item_id"], [row_of(v) for v in views])
        zeros = [0] * len(rm.COUNTER_COLUMNS)
        counter_rows = [
            (lv, key, day, *map(bucket.get, rm.COUNTER_COLUMNS, zeros))
            for (lv, key, day), bucket in sorted(counters.items())
            if any(bucket.values())
        ]
        counter_names = ["level", "unit_key", "day", *rm.COUNTER_COLUMNS]
        upsert_rows(
            conn, rm.unit_day_counters, counter_names, ["level", "unit_key", "day"], counter_rows, merge="add"
        )
        # a plain INSERT: a concurrent projector applying the same ids fails loudly
        insert_rows(conn, rm.applied_events, APPLIED_COLUMNS, applied)
        if dead:
            now = datetime.now(UTC)
            dead = [{**row, "recorded_at": now} for row in dead]
            conn.execute(insert_ignoring_duplicates(conn.dialect, rm.dead_letters, ["source"]), dead)
