"""The append-only event store: the system of record, one row per event, keyed by event id.

Appending an event whose id is already stored changes nothing (so a retried activity never duplicates
an event). Rows are never updated or deleted. ``position`` is the store's global order of first append.
``digest`` is the SHA-256 of the event's canonical encoding (``events.codec.encode_event``), the
bytes the recorder publishes: the projection applies a message only if the store holds its event id
with that digest (``projections.projector``), so nothing reaches the read models that the store does
not hold.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    Row,
    String,
    Table,
    Text,
    bindparam,
    func,
    inspect,
    select,
    tuple_,
    update,
)

from events.chain import genesis, link
from events.codec import encode_event, event_from_dict, validate_event
from events.envelope import EventEnvelope
from events.errors import DubanError, ValidationError
from events.sql import UTCDateTime, add_missing_columns, create_schema
from events.sql_bulk import insert_new_rows, select_in

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
    Column("digest", String(64), nullable=True),  # NULL only until ``create()`` fills older rows
    Column("chain", String(64), nullable=True),  # NULL only for rows stored before chains existed
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_ROW_COLUMNS = (
    "event_id",
    "event_type",
    "schema_version",
    "item_id",
    "sequence",
    "occurred_at",
    "recorded_at",
    "actor",
    "payload",
    "correlation_id",
    "causation_id",
    "digest",
    "chain",
)
"""The columns ``EventStore._rows`` gives values of, in order (all but the store's ``position``)."""


class _Payload(msgspec.Struct):
    payload: dict[str, Any]


_PAYLOAD_OF = msgspec.json.Decoder(_Payload)
"""Reads only the payload of an encoded event (the other fields are skipped, not built)."""


class EventGap(DubanError):
    """An event would follow one its stream does not hold (or holds without a chain): appended out
    of order, or a store whose older events were never chained (``duban audit chain-migrate``)."""


class EventConflict(DubanError):
    """An event id is stored with other content than the event being recorded: two histories claim
    the same place in an item's stream (e.g. the same item id registered twice)."""


def digest_of(encoded: bytes) -> str:
    """SHA-256 hex digest of an encoded event (``events.codec.encode_event``)."""
    return hashlib.sha256(encoded).hexdigest()


Stored = dict[str, tuple[int, str | None]]
"""Event id → (store position, digest) of the event store's rows."""


def stored_digests(conn: Connection, event_ids: Sequence[str]) -> Stored:
    """The store position and digest of each of ``event_ids`` the event store holds."""
    rows = select_in(conn, stored_events, ("event_id", "position", "digest"), "event_id", event_ids)
    return {event_id: (int(position), digest) for event_id, position, digest in rows}


def event_of_row(row: Row[Any] | Any) -> EventEnvelope:
    """The event of an ``event_store`` row (validated by the codec)."""
    data = dict(row._mapping)
    for name in ("position", "digest", "chain"):
        data.pop(name, None)
    data["payload"] = json.loads(data["payload"])
    data["occurred_at"] = data["occurred_at"].isoformat()
    data["recorded_at"] = data["recorded_at"].isoformat()
    return event_from_dict(data)


def check_readable(engine: Engine) -> None:
    """Check, without writing anything, that ``engine`` holds an event store with every column this
    duban reads (an auditor's commands read the store as it is: they never create or migrate it).

    Raises:
        ValidationError: field ``database_url``: no event store, or one made by an older duban.
    """
    found = inspect(engine)
    url = engine.url.render_as_string(hide_password=True)
    if not found.has_table(stored_events.name):
        raise ValidationError("database_url", f"{url} holds no event store")
    present = {column["name"] for column in found.get_columns(stored_events.name)}
    missing = [column.name for column in stored_events.columns if column.name not in present]
    if missing:
        raise ValidationError(
            "database_url",
            f"the event store in {url} predates this duban (it lacks {', '.join(missing)}): "
            "run duban audit chain-migrate to add and fill them",
        )


class EventStore:
    """SQL event store on an engine (SQLite or PostgreSQL). Create the table with ``create()``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self) -> None:
        """Create the table if missing (idempotent); a store made before ``digest`` existed gets the
        column, filled for every row stored before chains existed (the events are not otherwise
        touched; a chained row without a digest is left for ``duban audit verify-log`` to report)."""
        create_schema(self.engine, metadata)
        add_missing_columns(self.engine, stored_events)
        with self.engine.begin() as conn:
            self._fill_digests(conn)

    @staticmethod
    def _fill_digests(conn: Connection) -> None:
        c = stored_events.c
        while True:
            unfilled = c.digest.is_(None) & c.chain.is_(None)
            rows = conn.execute(select(stored_events).where(unfilled).limit(5000)).all()
            if not rows:
                return
            values = [{"p": r.position, "d": digest_of(encode_event(event_of_row(r)))} for r in rows]
            stmt = update(stored_events).where(c.position == bindparam("p")).values(digest=bindparam("d"))
            conn.execute(stmt, values)

    def _rows(
        self, conn: Connection, events: Sequence[EventEnvelope], encoded: Sequence[bytes]
    ) -> list[tuple[Any, ...]]:
        """The rows of ``events`` (values of ``_ROW_COLUMNS``): the payload kept as the canonical
        encoding has it, the digest, and the chain value linking each to its stream's previous
        event (``events.chain``)."""
        chains = self._previous_chains(conn, events)
        rows = []
        for event, raw in zip(events, encoded, strict=True):
            canonical = _PAYLOAD_OF.decode(raw).payload  # exactly what the digest covers
            digest = digest_of(raw)
            previous = chains.get((event.item_id, event.sequence - 1))
            if previous is None:
                if event.sequence != 1:
                    raise EventGap(
                        f"event {event.sequence} of {event.item_id} follows an event that is not stored"
                    )
                previous = genesis(event.item_id)
            chain = chains[(event.item_id, event.sequence)] = link(previous, digest)
            rows.append(
                (
                    event.event_id,
                    event.event_type,
                    event.schema_version,
                    event.item_id,
                    event.sequence,
                    event.occurred_at,
                    event.recorded_at,
                    event.actor,
                    json.dumps(canonical, sort_keys=True, ensure_ascii=False),
                    event.correlation_id,
                    event.causation_id,
                    digest,
                    chain,
                )
            )
        return rows

    @staticmethod
    def _previous_chains(conn: Connection, events: Sequence[EventEnvelope]) -> dict[tuple[str, int], str]:
        """The stored chain values of the events just before each stream's first new one."""
        firsts: dict[str, int] = {}
        for event in events:
            firsts[event.item_id] = min(event.sequence, firsts.get(event.item_id, event.sequence))
        wanted = [(item, seq - 1) for item, seq in firsts.items() if seq > 1]
        if not wanted:
            return {}
        c = stored_events.c
        found: dict[tuple[str, int], str] = {}
        for start in range(0, len(wanted), 500):
            part = wanted[start : start + 500]
            query = select(c.item_id, c.sequence, c.chain).where(tuple_(c.item_id, c.sequence).in_(part))
            for item, seq, chain in conn.execute(query):
                if chain is None:
                    raise EventGap(f"event {seq} of {item} has no chain: run duban audit chain-migrate")
                found[(item, seq)] = chain
        return found

    def append(self, events: Sequence[EventEnvelope], encoded: Sequence[bytes] | None = None) -> int:
        """Append events in one transaction; ids already stored are skipped.

        Args:
            encoded: the events' canonical encodings, if the caller has them (else encoded here).

        Returns:
            the number of events newly stored.

        Raises:
            events.errors.EventValidationError: an event is invalid (nothing is stored).
        """
        if not events:
            return 0
        raws = list(encoded) if encoded is not None else [encode_event(e) for e in events]
        with self.engine.begin() as conn:
            return len(self._insert(conn, self._rows(conn, events, raws)))

    @staticmethod
    def _insert(conn: Connection, rows: list[tuple[Any, ...]]) -> list[str]:
        """INSERT event rows (``_ROW_COLUMNS``), skipping ids already stored; the ids it stored."""
        return insert_new_rows(conn, stored_events, _ROW_COLUMNS, ["event_id"], rows, "event_id")

    def record(self, events: Sequence[EventEnvelope], encoded: Sequence[bytes]) -> tuple[int, list[bytes]]:
        """Append ``events`` (as ``append``); return how many were new and, in order, the encoding of
        each event as the store now holds it: the new ones as given, the ones stored before (a retried
        recording) as stored, with the ``recorded_at`` of their first recording. Publish exactly these.

        Raises:
            EventConflict: an id is stored with other content (anything but ``recorded_at``).
        """
        return self.record_many([(events, encoded)])[0]

    def record_many(
        self, groups: Sequence[tuple[Sequence[EventEnvelope], Sequence[bytes]]]
    ) -> list[tuple[int, list[bytes]]]:
        """``record`` for several groups of events (each one workflow step) in one transaction; one
        result per group, as ``record`` gives it. All or nothing: an event id stored with other
        content is refused before anything is appended, so the events after it are never chained
        onto content the store does not hold.

        Raises:
            EventConflict: an id of any group is stored with other content (nothing is stored).
        """
        events = [e for group, _ in groups for e in group]
        encoded = [raw for _, raws in groups for raw in raws]
        if not events:
            return [(0, []) for _ in groups]
        by_id: dict[str, tuple[EventEnvelope, bytes]] = {}
        for e, raw in zip(events, encoded, strict=True):
            by_id.setdefault(e.event_id, (e, raw))  # an id given twice: the first copy counts
        with self.engine.begin() as conn:
            out = self._as_stored(conn, by_id)  # recorded before (a retry): as stored, or a conflict
            fresh = [pair for event_id, pair in by_id.items() if event_id not in out]
            inserted: set[str] = set()
            if fresh:
                rows = self._rows(conn, [e for e, _ in fresh], [raw for _, raw in fresh])
                inserted = set(self._insert(conn, rows))
            out |= {event_id: by_id[event_id][1] for event_id in inserted}  # stored as given
            raced = {i: by_id[i] for i in by_id if i not in out}  # stored meanwhile by another
            if raced:
                out |= self._as_stored(conn, raced)
        results = []
        for group, _ in groups:
            new = [e.event_id for e in group if e.event_id in inserted]
            inserted.difference_update(new)  # counted once, for the group that gave it first
            results.append((len(new), [out[e.event_id] for e in group]))
        return results

    @staticmethod
    def _as_stored(conn: Connection, by_id: dict[str, tuple[EventEnvelope, bytes]]) -> dict[str, bytes]:
        """The encodings the store holds for those of ``by_id`` it holds (recorded before).

        Raises:
            EventConflict: one is stored with other content (anything but ``recorded_at``).
        """
        out: dict[str, bytes] = {}
        others = []  # stored with another digest: compared field by field below
        for event_id, (_, digest) in stored_digests(conn, list(by_id)).items():
            if digest == digest_of(by_id[event_id][1]):
                out[event_id] = by_id[event_id][1]
            else:
                others.append(event_id)
        for start in range(0, len(others), 500):
            query = select(stored_events).where(stored_events.c.event_id.in_(others[start : start + 500]))
            for row in conn.execute(query):
                event = by_id[row.event_id][0]
                stored = event_of_row(row)
                if replace(stored, recorded_at=_EPOCH) != replace(validate_event(event), recorded_at=_EPOCH):
                    raise EventConflict(
                        f"event {row.event_id} (item {event.item_id}, sequence {event.sequence}) is stored "
                        f"with other content (a {stored.event_type} of {stored.occurred_at.isoformat()})"
                    )
                out[row.event_id] = encode_event(stored)
        return out

    def count(self) -> int:
        """Number of stored events."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(stored_events)).scalar_one())

    def read(
        self, item_id: str | None = None, batch_size: int = 5000, after_position: int = 0
    ) -> Iterator[EventEnvelope]:
        """Stored events in store order (by ``position``), optionally of one item only, optionally
        only those after ``after_position``."""
        for _, event in self.read_positioned(item_id, batch_size, after_position):
            yield event

    def read_positioned(
        self, item_id: str | None = None, batch_size: int = 5000, after_position: int = 0
    ) -> Iterator[tuple[int, EventEnvelope]]:
        """As ``read``, with each event's store position."""
        query = select(stored_events).order_by(stored_events.c.position)
        if item_id is not None:
            query = query.where(stored_events.c.item_id == item_id)
        if after_position:
            query = query.where(stored_events.c.position > after_position)
        with self.engine.connect() as conn:
            result = conn.execution_options(yield_per=batch_size).execute(query)
            for row in result:
                yield int(row.position), event_of_row(row)
