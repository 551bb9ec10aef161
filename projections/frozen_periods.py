"""Closing a reporting period: a frozen snapshot of its indicators and scores that never changes.

With the snapshot, the close freezes the period's findings — the items, boards and roll-ups a
notice names (``projections.findings``) — and, when a month closes, the interviews its scorebook's
rules call (``projections.interviews``), in the same transaction; then it seals the event log
(``events.seals``: a root over every stream's head), which the period's documents print.

DOMAIN.md "Cadence": a published period is frozen — its inputs, rule version and results never
change; corrections are new events that show in the next period. Closing a period stores, per level,
the indicators and scores computed from the read models at that moment, the scorebook version, and a
SHA-256 of the ids of the events it read (the events counted on its days). Closing again returns the
stored snapshot unchanged.

Late events: the projection counts an event on its local day unless a snapshot covering that day was
frozen before the event was recorded (``recorded_at``, stamped by the recording activity); then it
counts on the first day after that period (and again, while that day is frozen too), as ``late``.
The rule reads only data (snapshot times and event times), so a rebuild gives the same counters.
A period is closed only once the projection has applied every event stored before the close
(``freeze_when_projected``; ``duban close-period`` waits for it, and so does the scheduled close).

The snapshots live in their own tables (``ledger_metadata``): rebuilding the read models keeps them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Column, Date, Engine, Integer, MetaData, String, Table, Text, select

from events.errors import DubanError, ValidationError
from events.seals import take_seal
from events.sql import UTCDateTime, create_schema
from events.store import EventStore
from projections import read_models as rm
from projections.findings import compute_findings, create_findings_table, findings_row, period_findings
from projections.indicators import IndicatorOptions, indicator_dict, indicators
from projections.interviews import evaluate_interviews
from projections.periods import canonical_period, parse_period
from projections.scoring import Scorebook, period_scores
from projections.store_sync import backlog

MONTH = re.compile(r"^\d{4}-\d{2}$", re.ASCII)
ledger_metadata = MetaData()

period_snapshots = Table(
    "period_snapshots",
    ledger_metadata,
    Column("period", String(16), primary_key=True),
    Column("level", String(16), primary_key=True),
    Column("start", Date, nullable=False),
    Column("end", Date, nullable=False),
    Column("frozen_at", UTCDateTime(), nullable=False),
    Column("scorebook_version", String(64), nullable=False),
    Column("events_hash", String(64), nullable=False),
    Column("events_count", Integer, nullable=False),
    Column("indicators", Text, nullable=False),
    Column("scores", Text, nullable=False),
)


@dataclass(frozen=True)
class Snapshot:
    """One level of a frozen period: its results as they were published."""

    period: str
    level: str
    start: date
    end: date
    frozen_at: datetime
    scorebook_version: str
    events_hash: str
    events_count: int
    indicators: list[dict[str, object]]
    scores: list[dict[str, object]]


def create_ledger(engine: Engine) -> None:
    """Create the snapshot table if missing (idempotent)."""
    create_schema(engine, ledger_metadata)


def drop_ledger(engine: Engine) -> None:
    """Drop the snapshot and findings tables (tests and throwaway databases only: closed periods are
    records)."""
    ledger_metadata.drop_all(engine)
    period_findings.drop(engine, checkfirst=True)


def frozen_spans(engine: Engine) -> list[tuple[date, date, datetime]]:
    """``(start, end, frozen_at)`` of every frozen period (one per period), for the projector."""
    create_ledger(engine)
    c = period_snapshots.c
    query = select(c.start, c.end, c.frozen_at).distinct().order_by(c.start, c.end)
    with engine.connect() as conn:
        return [(r.start, r.end, r.frozen_at) for r in conn.execute(query)]


def counted_day(day: date, recorded_at: datetime, spans: list[tuple[date, date, datetime]]) -> date:
    """The day an event is counted on: ``day``, or past every period frozen before it was recorded."""
    moved = True
    while moved:
        moved = False
        for start, end, frozen_at in spans:
            if start <= day < end and frozen_at < recorded_at:
                day, moved = end, True
    return day


def events_digest(engine: Engine, start: date, end: date) -> tuple[str, int]:
    """SHA-256 of the sorted ids of the events counted on ``[start, end)``, and how many there are."""
    c = rm.applied_events.c
    query = select(c.event_id).where(c.day >= start, c.day < end).order_by(c.event_id)
    digest = hashlib.sha256()
    count = 0
    with engine.connect() as conn:
        for event_id in conn.execute(query).scalars():
            digest.update(event_id.encode() + b"\n")
            count += 1
    return digest.hexdigest(), count


LATEST_ZONE_LAG: Final = timedelta(hours=12)
"""The most a local day ends after the UTC one (UTC−12, the last zone on Earth): a period ends there
when no item in the read models names a zone."""


def period_ends_at(engine: Engine, end: date) -> datetime:
    """The UTC instant a period with exclusive local end ``end`` has ended in every area zone of the
    read models' items (the latest of their local midnights at ``end``; UTC−12's without items)."""
    with engine.connect() as conn:
        zones = conn.execute(select(rm.item_view.c.zone).distinct()).scalars().all()
    latest = None
    for name in zones:
        try:
            at = datetime.combine(end, time(), ZoneInfo(name)).astimezone(UTC)
        except (ZoneInfoNotFoundError, ValueError):  # stored zones were checked; never trust blindly
            at = datetime.combine(end, time(), UTC) + LATEST_ZONE_LAG
        latest = at if latest is None else max(latest, at)
    return latest or datetime.combine(end, time(), UTC) + LATEST_ZONE_LAG


def check_period_ended(engine: Engine, period: str, now: datetime) -> None:
    """Raise ``ValidationError`` (field ``period``) unless ``period`` has ended at ``now`` (aware) in
    every area zone of the read models: a period still open somewhere cannot be frozen."""
    _start, end = parse_period(period)
    ends = period_ends_at(engine, end)
    if now < ends:
        raise ValidationError(
            "period",
            f"{period} has not ended yet (it runs until {end - timedelta(days=1)} in every area zone, "
            f"that is until {ends:%Y-%m-%d %H:%M} UTC)",
        )


def freeze_period(
    engine: Engine,
    period: str,
    scorebook: Scorebook,
    frozen_at: datetime,
    options: IndicatorOptions | None = None,
) -> list[Snapshot]:
    """Close ``period`` (e.g. ``2026-11``, ``2026-11-H1``, ``2026-W45``, ``2026-11-02``) at ``frozen_at``
    (aware UTC): store one snapshot per level; if it is already closed, return what was stored.

    Raises:
        ValidationError: a bad period, a naive ``frozen_at``, a period before the scorebook, a
            period that has not ended at ``frozen_at`` in every area zone (``check_period_ended``).
    """
    if frozen_at.tzinfo is None:
        raise ValidationError("frozen_at", "must be an aware datetime (UTC)")
    period = canonical_period(period)
    create_ledger(engine)
    rm.create_tables(engine)
    existing = read_snapshots(engine, period)
    if existing:
        return existing
    check_period_ended(engine, period, frozen_at)
    start, end = parse_period(period)
    in_force = scorebook.in_force(start)
    version = in_force.version
    digest, count = events_digest(engine, start, end)
    rows = []
    scores_by_level: dict[str, list[dict[str, object]]] = {}
    for level in rm.LEVELS:
        ind = [indicator_dict(r) for r in indicators(engine, level, start, end, options)]
        sc = scores_by_level[level] = period_scores(engine, level, period, scorebook, options)
        rows.append(
            {
                "period": period, "level": level, "start": start, "end": end, "frozen_at": frozen_at,
                "scorebook_version": version, "events_hash": digest, "events_count": count,
                "indicators": json.dumps(ind, ensure_ascii=False),
                "scores": json.dumps(sc, ensure_ascii=False),
            }
        )  # fmt: skip
    found = compute_findings(engine, start, end, frozen_at)
    if MONTH.match(period):  # interviews are called when a month closes
        found["interviews"] = evaluate_interviews(
            engine, in_force, period, (start, end), scores_by_level, frozen_at, _frozen_scores(engine)
        )
    create_findings_table(engine)
    with engine.begin() as conn:
        conn.execute(period_snapshots.insert(), rows)
        conn.execute(period_findings.insert(), [findings_row(period, frozen_at, found)])
    take_seal(engine, frozen_at, period)  # the log as it stood, for auditors (events.seals)
    return read_snapshots(engine, period)


def _frozen_scores(engine: Engine) -> Callable[[str, str], list[dict[str, object]]]:
    def scores(period: str, level: str) -> list[dict[str, object]]:
        frozen = read_snapshots(engine, period, level)
        return frozen[0].scores if frozen else []

    return scores


class ProjectionBehind(DubanError):
    """A period cannot be closed yet: the projection has not applied every stored event recorded
    before the close (``backlog`` of them), so the snapshot would miss them."""

    def __init__(self, period: str, backlog: int) -> None:
        super().__init__(
            f"period {period} cannot be closed yet: the projection has {backlog} stored events to apply "
            "(is duban project running?)"
        )
        self.period, self.backlog = period, backlog


def freeze_when_projected(
    engine: Engine,
    period: str,
    scorebook: Scorebook,
    frozen_at: datetime,
    options: IndicatorOptions | None = None,
) -> list[Snapshot]:
    """``freeze_period``, once every event stored before ``frozen_at`` is projected (a closed
    period is returned as stored, whatever the projection does).

    Raises:
        ProjectionBehind: stored events recorded before ``frozen_at`` are not yet projected.
        ValidationError: as ``freeze_period``.
    """
    existing = read_snapshots(engine, period)
    if existing:
        return existing
    rm.create_tables(engine)
    EventStore(engine).create()
    check_period_ended(engine, canonical_period(period), frozen_at)  # no wait for a period still open
    behind = backlog(engine, recorded_before=frozen_at)
    if behind:
        raise ProjectionBehind(canonical_period(period), behind)
    return freeze_period(engine, period, scorebook, frozen_at, options)


def read_snapshots(engine: Engine, period: str, level: str | None = None) -> list[Snapshot]:
    """The stored snapshots of ``period`` (all levels, or ``level``); empty if it is not closed."""
    create_ledger(engine)
    c = period_snapshots.c
    query = select(period_snapshots).where(c.period == canonical_period(period)).order_by(c.level)
    if level is not None:
        query = query.where(c.level == level)
    with engine.connect() as conn:
        return [
            Snapshot(
                r.period, r.level, r.start, r.end, r.frozen_at, r.scorebook_version, r.events_hash,
                r.events_count, json.loads(r.indicators), json.loads(r.scores),
            )
            for r in conn.execute(query)
        ]  # fmt: skip
