"""``duban audit recompute``: SLA repair — a closed period's deadlines and on-time outcomes
recomputed from the log under corrected rules, with the difference it makes.

When a rule or the calendar was wrong (a holiday missed, a limit mistyped), each item of the period
(registered in it, or closed in it) whose resolution deadline came from a rule is recomputed from
its stored events: the limit of its category and urgency in the corrected rulebook (the item's own
rulebook version), counted from its report on its calendar with the corrections (holidays added or
removed); an approved extension keeps the deadline it approved (an absolute date); a suspension
keeps the working time that was left and restarts it at the resumption. The item closed on time if
it closed at or before the corrected deadline; breaches and escalations that the corrected deadline
had not yet reached by the close (or by now, for an open item) are taken back. Items with a
deadline from their source, or without one, are not touched.

The difference is shown against the snapshot: the period is rebuilt from the log as ``duban audit
period`` does, the corrections are applied to its counters on the days they counted, and the
indicators, scores and ranks are compared. ``--apply`` records one ``OutcomeCorrected`` event per
corrected item (``events.types``); they count on the day they are recorded, or the first open day
after — the frozen-period rule — so the snapshot itself never changes and the next period shows the
correction.
"""

from __future__ import annotations

import dataclasses
import hashlib
import tempfile
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select, update

from duban import wiring
from duban.audit.period import Difference, _book, _compare, _copy, closed_snapshots
from events import types as t
from events.codec import encode_event, format_utc
from events.envelope import SCHEMA_VERSION, EventEnvelope, make_event_id
from events.errors import ValidationError
from events.sql import make_engine
from events.store import EventStore, check_readable
from events.working_calendar import WorkingCalendar, calendar_for
from projections import read_models as rm
from projections.indicators import indicator_dict, indicators
from projections.periods import canonical_period, parse_period
from projections.projector import ItemProjector
from projections.scoring import load_scorebook, period_scores
from workflows.rulebook import Rulebook, deadline


@dataclass(frozen=True)
class Correction:
    """One item's corrected deadline and outcome (``None``: unknown or open)."""

    item_id: str
    department: str
    previous_deadline: datetime | None
    deadline: datetime | None
    previous_on_time: bool | None
    on_time: bool | None
    breaches_reversed: int
    escalations_reversed: int


@dataclass
class Recomputed:
    """The corrections of a period and the differences they make against its snapshot."""

    period: str
    corrections: list[Correction]
    differences: list[Difference]


def check_corrections(added: frozenset[date], removed: frozenset[date]) -> None:
    """Refuse calendar corrections that contradict each other.

    Raises:
        ValidationError: field ``add_holiday, remove_holiday``, naming the days in both.
    """
    both = sorted(added & removed)
    if both:
        days = ", ".join(d.isoformat() for d in both)
        raise ValidationError(
            "add_holiday, remove_holiday",
            f"{days} given to both --add-holiday and --remove-holiday: a day is either added as a "
            "holiday or removed from the holidays, not both",
        )


def corrected_calendar(reference: str, added: frozenset[date], removed: frozenset[date]) -> WorkingCalendar:
    """The calendar ``reference`` (``name@version``) with holidays ``added`` and ``removed``."""
    base = calendar_for(reference)
    return dataclasses.replace(base, holidays=(base.holidays | added) - removed)


def _corrected(
    events: list[EventEnvelope], rulebook: Rulebook, calendar: WorkingCalendar, now: datetime
) -> Correction | None:
    reg = events[0]
    p = reg.payload
    if (
        reg.event_type != t.ITEM_REGISTERED
        or p.get("deadline_origin") != "rule"
        or not p.get("rulebook_version")
    ):
        return None
    limit = rulebook.version(p["rulebook_version"]).limit_for(
        p["category"], p.get("urgency", "normal"), "resolution"
    )
    if limit is None:
        return None
    new = deadline(limit, reg.occurred_at, calendar)
    old = datetime.fromisoformat(p["resolution_deadline"]) if p.get("resolution_deadline") else None
    suspended_at: datetime | None = None
    closed_at, old_on_time, breaches, escalations = None, None, [], []
    for e in events[1:]:
        q = e.payload
        if e.event_type == t.EXTENSION_APPROVED and q["milestone"] == "resolution":
            new = old = datetime.fromisoformat(q["deadline"])
        elif e.event_type == t.ITEM_SUSPENDED:
            suspended_at = e.occurred_at
        elif e.event_type == t.ITEM_RESUMED and suspended_at is not None:
            left = (
                calendar.working_seconds_between(suspended_at, new)
                if limit.unit.startswith("working")
                else max(0, int((new - suspended_at).total_seconds()))
            )
            new = (
                calendar.add_working_seconds(e.occurred_at, left)
                if limit.unit.startswith("working")
                else e.occurred_at + timedelta(seconds=left)
            )
            if q.get("resolution_deadline"):
                old = datetime.fromisoformat(q["resolution_deadline"])
            suspended_at = None
        elif e.event_type == t.DEADLINE_BREACHED and q["milestone"] == "resolution":
            breaches.append(e)
        elif e.event_type == t.ITEM_ESCALATED and q["milestone"] == "resolution":
            escalations.append(e)
        elif e.event_type == t.ITEM_CLOSED:
            closed_at, old_on_time = e.occurred_at, q.get("on_time")
    on_time = None if closed_at is None else closed_at <= new
    unreached = new >= (closed_at or now)
    undo_breaches = len(breaches) if unreached else 0
    undo_escalations = len(escalations) if unreached else 0
    if new == old and on_time == old_on_time and not undo_breaches:
        return None
    return Correction(
        reg.item_id, str(p["department"]), old, new, old_on_time, on_time, undo_breaches, undo_escalations
    )


def _period_items(engine: Engine, start: date, end: date) -> list[str]:
    v = rm.item_view.c
    out = []
    with engine.connect() as conn:
        for row in conn.execute(select(v.item_id, v.zone, v.registered_at, v.closed_at)):
            zone = ZoneInfo(row.zone)
            days = [row.registered_at.astimezone(zone).date()] + (
                [row.closed_at.astimezone(zone).date()] if row.closed_at else []
            )
            if any(start <= d < end for d in days):
                out.append(str(row.item_id))
    return sorted(out)


def corrections(
    engine: Engine,
    period: str,
    rulebook: Rulebook,
    added: frozenset[date],
    removed: frozenset[date],
    now: datetime,
) -> list[Correction]:
    """The corrected items of ``period`` (module docstring), by item id."""
    start, end = parse_period(period)
    store = EventStore(engine)
    found = []
    for item_id in _period_items(engine, start, end):
        events = sorted(store.read(item_id), key=lambda e: e.sequence)
        if not events or not events[0].payload.get("calendar"):
            continue
        calendar = corrected_calendar(events[0].payload["calendar"], added, removed)
        fixed = _corrected(events, rulebook, calendar, now)
        if fixed is not None:
            found.append(fixed)
    return found


def _shift(scratch: Engine, fix: Correction, events: list[EventEnvelope]) -> None:
    """Move the scratch counters as the correction would have on the days its events counted."""
    ap, v = rm.applied_events.c, rm.item_view.c
    with scratch.begin() as conn:
        view = conn.execute(select(rm.item_view).where(v.item_id == fix.item_id)).one()
        days = dict(conn.execute(select(ap.event_id, ap.day).where(ap.item_id == fix.item_id)).all())
        moves: list[tuple[date, dict[str, int]]] = []
        for e in events:
            if (
                e.event_type == t.ITEM_CLOSED
                and fix.previous_on_time is not None
                and fix.on_time != fix.previous_on_time
            ):
                moves.append(
                    (
                        days[e.event_id],
                        {
                            "closed_on_time": 1 if fix.on_time else -1,
                            "closed_overdue": -1 if fix.on_time else 1,
                        },
                    )
                )
        undo = {
            t.DEADLINE_BREACHED: ("breached", fix.breaches_reversed),
            t.ITEM_ESCALATED: ("escalated", fix.escalations_reversed),
        }
        for e in events:
            if e.event_type in undo and undo[e.event_type][1] and e.payload.get("milestone") == "resolution":
                moves.append((days[e.event_id], {undo[e.event_type][0]: -1}))
        c = rm.unit_day_counters.c
        for level in rm.LEVELS:
            key = getattr(view, rm.LEVEL_COLUMN.get(level, level))
            for day, bumps in moves if key else []:
                where = (c.level == level) & (c.unit_key == key) & (c.day == day)
                conn.execute(
                    update(rm.unit_day_counters).where(where).values({n: c[n] + d for n, d in bumps.items()})
                )


def recompute(
    url: str | Engine,
    period: str,
    rulebook: Rulebook,
    added: frozenset[date] = frozenset(),
    removed: frozenset[date] = frozenset(),
    scorebook: Path | None = None,
    now: datetime | None = None,
) -> Recomputed:
    """Recompute closed ``period`` under ``rulebook`` and the calendar corrections (module docstring).
    ``url``'s database is only read.

    Raises:
        ValidationError: a bad or open period; a rulebook without an item's version; a day both
            ``added`` and ``removed``.
    """
    check_corrections(added, removed)
    engine = wiring.read_models(url)
    check_readable(engine)
    period = canonical_period(period)
    snapshots = closed_snapshots(engine, period)
    if not snapshots:
        raise ValidationError("period", f"{period} is not closed: there is no snapshot to compare with")
    fixes = corrections(engine, period, rulebook, added, removed, now or datetime.now(UTC))
    start, end = parse_period(period)
    book = _book(load_scorebook(scorebook) if scorebook else load_scorebook(), snapshots[0].scorebook_version)
    differences: list[Difference] = []
    with tempfile.TemporaryDirectory(prefix="duban-recompute-") as folder:
        scratch = make_engine(f"sqlite:///{Path(folder) / 'scratch.db'}")
        try:
            _copy(engine, scratch, snapshots[0].frozen_at)
            ItemProjector(scratch).rebuild_from_store(EventStore(scratch))
            for fix in fixes:
                _shift(scratch, fix, list(EventStore(scratch).read(fix.item_id)))
            for snap in snapshots:
                fresh = [indicator_dict(r) for r in indicators(scratch, snap.level, start, end)]
                differences += _compare("indicators", snap.level, snap.indicators, fresh)
                differences += _compare(
                    "scores", snap.level, snap.scores, period_scores(scratch, snap.level, period, book)
                )
        finally:
            scratch.dispose()
    return Recomputed(period, fixes, differences)


def correction_events(period: str, fixes: list[Correction], reason: str, at: datetime) -> list[EventEnvelope]:
    """One ``OutcomeCorrected`` event per correction, recorded at ``at``; their ids derive from the
    period and the item, so recording them again stores nothing new."""
    events = []
    for fix in fixes:
        stream = "correction:" + hashlib.sha256(f"{period}\0{fix.item_id}".encode()).hexdigest()[:32]
        payload: dict[str, Any] = {
            "item": fix.item_id,
            "period": period,
            "previous_deadline": format_utc(fix.previous_deadline) if fix.previous_deadline else None,
            "deadline": format_utc(fix.deadline) if fix.deadline else None,
            "previous_on_time": fix.previous_on_time,
            "on_time": fix.on_time,
            "breaches_reversed": fix.breaches_reversed,
            "escalations_reversed": fix.escalations_reversed,
            "reason": reason,
        }
        events.append(
            EventEnvelope(
                make_event_id(stream, 1),
                t.OUTCOME_CORRECTED,
                SCHEMA_VERSION,
                stream,
                1,
                at,
                at,
                "office:sla-repair",
                payload,
                f"recompute:{period}",
                f"recompute:{period}",
            )
        )
    return events


def apply_corrections(url: str | Engine, period: str, fixes: list[Correction], reason: str) -> int:
    """Record the corrections in the event store (the projection applies them from there); how many
    were new (a correction recorded before, for the same period and item, is not recorded again)."""
    engine = url if isinstance(url, Engine) else wiring.existing_database(url)
    store = EventStore(engine)
    store.create()
    events = correction_events(canonical_period(period), fixes, reason, datetime.now(UTC))
    events = [e for e in events if next(store.read(e.item_id), None) is None]  # recorded once
    if not events:
        return 0
    new, _ = store.record(events, [encode_event(e) for e in events])
    return new
