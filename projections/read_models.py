"""SQL read models of supervision items, built from events by ``projections.projector``.

Tables (own ``metadata``; SQLite and PostgreSQL):

- ``item_view``: one row per item, its latest known state. ``stage`` is the stage users see
  (``events.stages.shown_stage``: ``suspended`` while an item is suspended, as its workflow shows
  it); ``suspended_at`` is when the running suspension began (its clock stands still from then) and
  ``resume_stage`` the stage it resumes in (both ``NULL`` while not suspended).
- ``unit_day_counters``: pre-aggregated counters per (level, unit_key, day). ``level`` is one of
  ``LEVELS``; ``unit_key`` the department or area name; ``day`` the LOCAL date, in the item's IANA
  zone, of the event's ``occurred_at``. Rankings sum these rows over a range of days.
- ``applied_events``: every event id applied, with where it came from (idempotency).
- ``projection_positions``: per (projection, topic, partition) the next Kafka offset to read, written
  in the same transaction as the rows it covers.
- ``dead_letters``: messages that could not be applied, with the reason.
- ``score_adjustments``: manual score adjustments, each from a ``ScoreAdjusted`` event.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    select,
)

from events.sql import UTCDateTime, add_missing_columns, create_schema

LEVELS = ("department", "district", "town", "community", "grid", "category", "order")
"""Levels of ``unit_day_counters``: a functional department, the leader-owned district (挂包: its
ranking is its leader's), an area of the three-level linkage, the item's category, or the
supervision order it belongs to."""

LEVEL_COLUMN = {"order": "order_id"}
"""The ``item_view`` column holding each level's key (the level's own name unless listed)."""

COUNTER_COLUMNS = (
    "registered",
    "closed",
    "closed_with_deadline",
    "closed_on_time",
    "closed_overdue",
    "closed_no_deadline",
    "cancelled",
    "warned",
    "breached",
    "escalated",
    "registered_with_deadline",
    "dispatched",
    "returned",
    "verified",
    "verified_passed",
    "rework",
    "extended",
    "merged",
    "suspended",
    "reported_in",
    "reported_in_late",
    "handling_seconds",
    "closed_with_calendar",
    "handling_working_seconds",
    "late",
    "cohort_rectified",
    "cohort_closed",
    "cohort_extended",
    "cohort_withdrawn",
)
"""Integer counter columns of ``unit_day_counters`` (events counted on their local day; the two
``handling_*`` columns are sums of seconds over the items closed that day). The ``cohort_*`` columns
count items by the day and units they were *registered* with (the department at registration):
rectified, closed, extended at least once, and withdrawn (cancelled or merged) so far, so that an
item rate over a period's cohort never exceeds 1. See ``projections.indicators``."""

PROJECTION_NAME = "item"
"""Name of the item projection in ``projection_positions``."""

_BIGINT = BigInteger().with_variant(Integer, "sqlite")

metadata = MetaData()

item_view = Table(
    "item_view",
    metadata,
    Column("item_id", String(128), primary_key=True),
    Column("category", String(256), nullable=False),
    Column("department", String(256), nullable=False),
    Column("unit", String(256), nullable=False),
    Column("town", String(256), nullable=False),
    Column("community", String(256), nullable=False),
    Column("grid", String(256), nullable=False),
    Column("zone", String(64), nullable=False),
    Column("order_id", String(128), nullable=False, default=""),
    Column("district", String(256), nullable=False, default=""),
    Column("calendar", String(32), nullable=False, default=""),
    Column("stage", String(32), nullable=False),
    Column("registered_at", UTCDateTime(), nullable=False),
    Column("resolution_deadline", UTCDateTime(), nullable=True),
    Column("closed_at", UTCDateTime(), nullable=True),
    Column("on_time", Boolean(), nullable=True),
    Column("overdue", Boolean(), nullable=False),
    Column("escalation_level", Integer, nullable=False),
    Column("warned", Boolean(), nullable=False),
    Column("intake_department", String(256), nullable=False, default=""),
    Column("extended", Boolean(), nullable=False, default=False),
    Column("suspended_at", UTCDateTime(), nullable=True),  # when the running suspension began
    Column("resume_stage", String(32), nullable=True),  # while suspended: the stage it resumes in
    Column("last_sequence", Integer, nullable=False),
    Column("last_event_at", UTCDateTime(), nullable=False),
)

unit_day_counters = Table(
    "unit_day_counters",
    metadata,
    Column("level", String(16), primary_key=True),
    Column("unit_key", String(256), primary_key=True),
    Column("day", Date, primary_key=True),
    *(Column(name, _BIGINT, nullable=False, default=0) for name in COUNTER_COLUMNS),
)

applied_events = Table(
    "applied_events",
    metadata,
    Column("event_id", String(64), primary_key=True),
    Column("item_id", String(128), nullable=False),
    Column("sequence", Integer, nullable=False),
    Column("topic", String(256), nullable=False),
    Column("partition", Integer, nullable=False),
    Column("offset", _BIGINT, nullable=False),
    Column("day", Date, nullable=True),  # the local day the event was counted on (late: moved on)
)

projection_positions = Table(
    "projection_positions",
    metadata,
    Column("projection", String(64), primary_key=True),
    Column("topic", String(256), primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("next_offset", _BIGINT, nullable=False),
)
POSITION_COLUMNS = ("projection", "topic", "partition", "next_offset")
"""The ``projection_positions`` columns in row order; the first three are its key. Positions are
written with ``events.sql_bulk.upsert_rows(…, merge="max")``: a position never moves back."""

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", _BIGINT, primary_key=True, autoincrement=True),
    Column("source", String(512), nullable=False, unique=True),
    Column("event_id", String(64), nullable=True),
    Column("item_id", String(128), nullable=True),
    Column("raw", LargeBinary, nullable=False),
    Column("reason", Text, nullable=False),
    Column("recorded_at", UTCDateTime(), nullable=False),
    Column("store_position", _BIGINT, nullable=True, index=True),
)
"""``source`` is ``"<topic>/<partition>/<offset>"`` for a Kafka message or ``"store/<position>"`` for
an event read from the event store; it is unique, so a redelivered bad message is kept once.
``store_position`` is set when the message is an event the store holds (same id and digest) that
could not be applied: that stored event is then handled, and no longer counts as backlog."""

score_adjustments = Table(
    "score_adjustments",
    metadata,
    Column("event_id", String(64), primary_key=True),
    Column("level", String(16), nullable=False),
    Column("unit_key", String(256), nullable=False),
    Column("day", Date, nullable=False),
    Column("points", String(32), nullable=False),  # an exact decimal, as text
    Column("reason", Text, nullable=False),
    Column("approver", String(256), nullable=False),
)
"""Manual score adjustments (``ScoreAdjusted`` events): points for a unit on a local day, with the
reason and the approver."""

interviews = Table(
    "interviews",
    metadata,
    Column("event_id", String(64), primary_key=True),
    Column("period", String(32), nullable=False, index=True),
    Column("level", String(16), nullable=False),
    Column("unit_key", String(256), nullable=False),
    Column("rules", Text, nullable=False),  # JSON list
    Column("reasons", Text, nullable=False),  # JSON list
    Column("scorebook_version", String(64), nullable=False),
    Column("recorded_at", UTCDateTime(), nullable=False),
)
"""Interviews (约谈) called by the office (``InterviewRequired`` events, ``projections.interviews``)."""

READ_MODEL_TABLES = ("item_view", "unit_day_counters", "score_adjustments", "interviews")
"""The tables whose checksum must agree between a live projection and a rebuild from the store."""


def create_tables(engine: Engine) -> None:
    """Create the projection tables if missing (idempotent); add the nullable columns a database
    made by an older duban lacks (``dead_letters.store_position``, ``item_view.suspended_at`` and
    ``item_view.resume_stage``: the items suspended before then show as suspended once the read
    models are rebuilt, ``duban rebuild-read-models``)."""
    create_schema(engine, metadata)
    add_missing_columns(engine, dead_letters)
    add_missing_columns(engine, item_view)


def drop_tables(engine: Engine) -> None:
    """Drop the projection tables if present (the event store is not touched)."""
    metadata.drop_all(engine)


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    return value  # None, bool, int, str


def table_checksum(engine: Engine, table_names: Iterable[str]) -> str:
    """SHA-256 hex digest of the named read-model tables' rows, sorted by primary key.

    Values are canonicalised (datetimes as UTC ISO strings, dates ISO, bytes hex) and rows are sorted
    in Python, not by the database's collation, so equal contents give equal digests on SQLite and
    PostgreSQL.

    Raises:
        KeyError: a name is not a table of ``projections.read_models``.
    """
    digest = hashlib.sha256()
    with engine.connect() as conn:
        for name in table_names:
            table = metadata.tables[name]
            columns = [c.name for c in table.c]
            pk = [columns.index(c.name) for c in table.primary_key.columns]
            rows = [[_canonical(v) for v in row] for row in conn.execute(select(table))]
            rows.sort(key=lambda row: json.dumps([row[i] for i in pk]))
            digest.update(json.dumps({"table": name, "columns": columns, "rows": rows}).encode())
    return digest.hexdigest()
