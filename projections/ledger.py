"""The problem ledger (问题台账): every supervision item of a period or filter, one row each, streamed.

``ledger_rows`` reads the ``item_view`` read model left-joined to the event store (``event_store``):
the item's terminal event gives who closed it out (``ItemClosed``) or withdrew it (``ItemCancelled``,
``ItemMerged``), when, and for a withdrawal the reason and the item it was merged into. Rows come
from the database in batches (``yield_per``: a server-side cursor on PostgreSQL), ordered by
registration then item id; nothing holds all the rows.

Per row, at ``now`` (an aware instant, by default the time of the call):

- ``light``: ``projections.lights.clock_light`` for an open or closed item; ``None`` for an item
  without a deadline and for a withdrawn one (cancelled or merged: its clock no longer runs).
- ``overdue`` and ``days_overdue``: an open item past its resolution deadline is overdue by
  ``now − deadline``; a suspended one (stage ``suspended``: its clock stands still) by
  ``suspended_at − deadline``; a closed item closed after it, by ``closed_at − deadline``; any other
  item by 0.
  Days are exact decimals to 0.1 (ROUND_HALF_UP); ``overdue`` is exact (a few minutes late is
  overdue, shown as 0.0 days).

Filters (``LedgerFilter``) combine with AND: the period is the local days ``[start, end)`` of the
registration, each item in its own ``zone`` (``projections.periods.parse_period``); the department,
area and category names must equal the given ones; ``stage`` is a stage (``suspended``: the items
suspended now) or ``"open"`` (not closed out, cancelled or merged; a suspended item is open).
"""

from __future__ import annotations

import json
from collections.abc import Generator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, overload
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Engine, Select, and_, case, false, or_, select

from events import types as t
from events.errors import ValidationError
from events.store import stored_events
from projections import read_models as rm
from projections.lights import GREEN, RED, YELLOW, clock_end, clock_light
from projections.periods import parse_period

OPEN_STAGES = ("registered", "dispatched", "accepted", "rectified", "verified", "suspended")
"""The stages of an item not yet closed out (``projections.evolve``; ``suspended`` is what a suspended
item shows, ``events.stages``)."""
WITHDRAWN_STAGES = ("cancelled", "merged")
STAGES = (*OPEN_STAGES, "closed", *WITHDRAWN_STAGES)
"""Every stage ``item_view`` holds; the ledger's ``stage`` filter takes one of them or ``"open"``."""
LIGHTS = (GREEN, YELLOW, RED)
TERMINAL_EVENT = {"closed": t.ITEM_CLOSED, "cancelled": t.ITEM_CANCELLED, "merged": t.ITEM_MERGED}
"""The event that ended an item of each terminal stage."""
DAY = Decimal(86_400)
DAY_QUANTUM = Decimal("0.1")
BATCH_SIZE = 2000


@dataclass(frozen=True)
class LedgerFilter:
    """Which items the ledger holds; an empty string or ``None`` means any.

    ``period``: a period spelling of ``parse_period``; ``stage``: one of ``STAGES`` or ``"open"``;
    ``light``: one of ``LIGHTS`` (items without a light never match); ``overdue``: only overdue
    (``True``) or only not overdue (``False``) items, as the module docstring defines it.
    """

    period: str | None = None
    department: str = ""
    town: str = ""
    community: str = ""
    district: str = ""
    category: str = ""
    stage: str = ""
    light: str = ""
    overdue: bool | None = None

    def check(self) -> None:
        """Raises ``ValidationError`` (field ``period``, ``stage`` or ``light``) for a bad value."""
        if self.period is not None:
            parse_period(self.period)
        if self.stage and self.stage not in (*STAGES, "open"):
            raise ValidationError("stage", f"must be one of {', '.join(STAGES)} or open, not {self.stage!r}")
        if self.light and self.light not in LIGHTS:
            raise ValidationError("light", f"must be one of {', '.join(LIGHTS)}, not {self.light!r}")


@dataclass(frozen=True)
class LedgerRow:
    """One item of the ledger. Instants are aware UTC (``local`` shows one in the item's ``zone``);
    ``days_overdue`` is a decimal number of days to 0.1; ``ended_*`` describe the close-out or the
    withdrawal (empty for an open item, or if the event store lacks the event)."""

    item_id: str
    category: str
    department: str
    unit: str
    district: str
    town: str
    community: str
    grid: str
    order_id: str
    zone: str
    stage: str
    light: str | None
    registered_at: datetime
    resolution_deadline: datetime | None
    overdue: bool
    days_overdue: Decimal
    on_time: bool | None
    escalation_level: int
    extended: bool
    ended_at: datetime | None
    ended_by: str
    end_reason: str
    merged_into: str

    @overload
    def local(self, instant: datetime) -> datetime: ...
    @overload
    def local(self, instant: datetime | None) -> datetime | None: ...
    def local(self, instant: datetime | None) -> datetime | None:
        """``instant`` (aware) in the item's IANA zone, or ``None``."""
        return None if instant is None else instant.astimezone(ZoneInfo(self.zone))


def days(span: timedelta) -> Decimal:
    """``span`` in days to 0.1, half up (exact: microseconds count)."""
    micros = Decimal((span.days * 86_400 + span.seconds) * 1_000_000 + span.microseconds)
    return (micros / 1_000_000 / DAY).quantize(DAY_QUANTUM, rounding=ROUND_HALF_UP)


def overdue_span(row: Any, now: datetime) -> timedelta:
    """How long an ``item_view`` row (``stage``, ``resolution_deadline``, ``closed_at``,
    ``suspended_at``) is overdue at ``now``: positive for an open item past its deadline (a suspended
    one as its clock stood when suspended) or an item closed after it, else zero."""
    deadline = row.resolution_deadline
    if deadline is None:
        return timedelta(0)
    if row.stage in OPEN_STAGES:
        return max(clock_end(row, now) - deadline, timedelta(0))
    if row.stage == "closed" and row.closed_at is not None:
        return max(row.closed_at - deadline, timedelta(0))
    return timedelta(0)


def _period_clause(engine: Engine, period: str) -> ColumnElement[bool]:
    """Registered on a local day of ``period`` in the item's zone: one UTC range per zone present."""
    start, end = parse_period(period)
    iv = rm.item_view.c
    with engine.connect() as conn:
        zones = sorted(conn.execute(select(iv.zone).distinct()).scalars())
    ranges = []
    for zone in zones:
        tz = ZoneInfo(zone)
        first = datetime.combine(start, time(), tz).astimezone(UTC)
        after = datetime.combine(end, time(), tz).astimezone(UTC)
        ranges.append(and_(iv.zone == zone, iv.registered_at >= first, iv.registered_at < after))
    return or_(*ranges) if ranges else false()


def ledger_query(engine: Engine, flt: LedgerFilter) -> Select[Any]:
    """The SQL of the ledger: ``item_view`` rows that pass the filters SQL can decide, with the
    terminal event's ``ended_by``, ``ended_at`` and ``end_payload`` (``NULL`` when none is stored).
    Light and overdue are decided on each row as well (``ledger_rows``).

    Raises:
        ValidationError: as ``LedgerFilter.check``.
    """
    flt.check()
    iv, es = rm.item_view.c, stored_events.c
    terminal = case(TERMINAL_EVENT, value=iv.stage)  # NULL for an open item: nothing joins
    joined = rm.item_view.outerjoin(stored_events, and_(es.item_id == iv.item_id, es.event_type == terminal))
    query = select(
        rm.item_view,
        es.actor.label("ended_by"),
        es.occurred_at.label("ended_at"),
        es.payload.label("end_payload"),
    ).select_from(joined)
    for name in ("department", "town", "community", "district", "category"):
        if getattr(flt, name):
            query = query.where(iv[name] == getattr(flt, name))
    if flt.stage == "open":
        query = query.where(iv.stage.in_(OPEN_STAGES))
    elif flt.stage:
        query = query.where(iv.stage == flt.stage)
    if flt.light or flt.overdue:  # both need a deadline and a running or closed clock
        query = query.where(iv.resolution_deadline.is_not(None), iv.stage.not_in(WITHDRAWN_STAGES))
    if flt.period is not None:
        query = query.where(_period_clause(engine, flt.period))
    return query.order_by(iv.registered_at, iv.item_id)


def _row(r: Any, now: datetime) -> LedgerRow:
    withdrawn = r.stage in WITHDRAWN_STAGES
    payload = json.loads(r.end_payload) if withdrawn and r.end_payload else {}
    late = overdue_span(r, now)
    return LedgerRow(
        item_id=r.item_id,
        category=r.category,
        department=r.department,
        unit=r.unit,
        district=r.district,
        town=r.town,
        community=r.community,
        grid=r.grid,
        order_id=r.order_id,
        zone=r.zone,
        stage=r.stage,
        light=None if withdrawn else clock_light(r, now),
        registered_at=r.registered_at,
        resolution_deadline=r.resolution_deadline,
        overdue=late > timedelta(0),
        days_overdue=days(late),
        on_time=r.on_time,
        escalation_level=r.escalation_level,
        extended=r.extended,
        ended_at=r.ended_at if r.ended_at is not None else r.closed_at,
        ended_by=r.ended_by or "",
        end_reason=str(payload.get("reason", "")),
        merged_into=str(payload.get("into_item_id", "")),
    )


def ledger_rows(
    engine: Engine, flt: LedgerFilter, now: datetime | None = None, batch_size: int = BATCH_SIZE
) -> Generator[LedgerRow, None, None]:
    """The ledger's rows (module docstring), streamed ``batch_size`` database rows at a time.

    The filters are checked at once (not on the first ``next``); the connection stays open until the
    generator is exhausted or closed (``close()``).

    Raises:
        ValidationError: as ``LedgerFilter.check``.
        ValueError: a naive ``now`` or a ``batch_size`` below 1.
        sqlalchemy.exc.SQLAlchemyError: the database cannot be read (also while iterating).
    """
    now = datetime.now(UTC) if now is None else now
    if now.tzinfo is None:
        raise ValueError("now must be aware (UTC)")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    query = ledger_query(engine, flt)
    return _stream(engine, query, flt, now.astimezone(UTC), batch_size)


def _stream(
    engine: Engine, query: Select[Any], flt: LedgerFilter, now: datetime, batch_size: int
) -> Generator[LedgerRow, None, None]:
    with engine.connect() as conn:
        for r in conn.execution_options(yield_per=batch_size).execute(query):
            row = _row(r, now)
            if flt.light and row.light != flt.light:
                continue
            if flt.overdue is not None and row.overdue != flt.overdue:
                continue
            yield row
