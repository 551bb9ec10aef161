"""What a notice says, as data: the office's weekly notice (每周通报), half-monthly report to the
leadership (每半月报告) and monthly notice (月通报) of a period (DOMAIN.md "Cadence").

``build_notice`` reads a closed period from its frozen snapshot and findings (so a document rebuilt
later gives the same numbers, and carries the snapshot's events hash), and an open one from the read
models as they stand (``provisional``), as at its cut-off: the close for a closed period, else the
period's end if it has ended (its findings then name the items open past their deadline at that
instant, not now), else now. A period that has not begun is refused. Every number comes with what
it counts:

- the summary (city-wide; the sum over departments of the department-level indicators): items
  received — registered in the period, less those since cancelled or merged —, rectified (their
  rectification passed verification), the rectification rate, items closed with a deadline and on
  time, the on-time closure rate, items closed late, and items open past their deadline at the
  cut-off; and the same rates of the previous period of the same kind, with the movement in
  percentage points;
- per level (department, town, community, leader-owned district): the ranking by score, with the
  rectification and on-time closure rates' numerators and denominators, the score and its band;
- the findings (``projections.findings``): overdue and closed-late items named with unit and days,
  items about to breach, lights by department, open supervision orders, the weekly trend;
- repeat offenders: departments with deadline breaches (``breached`` counter) in this period and in
  the previous one of the same kind;
- interviews (``projections.interviews``), for a month.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, select

from events.errors import ValidationError
from events.seals import read_seals
from projections import read_models as rm
from projections.findings import compute_findings, read_findings
from projections.frozen_periods import Snapshot, read_snapshots
from projections.indicators import IndicatorOptions, indicator_dict, indicators
from projections.periods import canonical_period, parse_period, previous_period
from projections.scoring import Scorebook, period_scores

KINDS = {"weekly": r"^\d{4}-W\d{2}$", "half-monthly": r"^\d{4}-\d{2}-H[12]$", "monthly": r"^\d{4}-\d{2}$"}
"""Notice kinds and the period spelling each takes."""
RANKED_LEVELS = ("department", "town", "community", "district")
"""The levels a notice ranks (the three-level linkage's areas and the leader-owned districts)."""
PERCENT_POINTS = Decimal("0.01")


@dataclass
class Summary:
    """City-wide figures of the period (module docstring); rates are decimal strings or ``None``."""

    received: int
    rectified: int
    rectification_rate: str | None
    closed_with_deadline: int
    closed_on_time: int
    on_time_closure_rate: str | None
    closed_late: int
    overdue_open: int
    previous_rectification_rate: str | None = None
    previous_on_time_closure_rate: str | None = None
    rectification_movement_points: str | None = None
    on_time_movement_points: str | None = None


@dataclass
class Notice:
    """A notice's content (module docstring). ``cut_off`` is when its findings were taken (aware
    UTC): the close of a closed period, the build time of a provisional one."""

    kind: str
    period: str
    start: date
    end: date
    previous: str
    provisional: bool
    cut_off: datetime
    scorebook_version: str
    events_hash: str | None
    events_count: int | None
    summary: Summary
    rankings: dict[str, list[dict[str, Any]]]
    findings: dict[str, Any]
    repeat_offenders: list[dict[str, Any]] = field(default_factory=list)
    zone: str = "UTC"
    seal_root: str | None = None

    def to_json(self) -> str:
        """The whole notice as JSON (what the documents render)."""
        from dataclasses import asdict

        def plain(value: Any) -> Any:
            return value.isoformat() if isinstance(value, date | datetime) else str(value)

        return json.dumps(asdict(self), ensure_ascii=False, default=plain, sort_keys=True)


def check_kind(kind: str, period: str) -> str:
    """``period`` in its canonical spelling if it suits notice ``kind``.

    Raises:
        ValidationError: ``kind`` unknown, or ``period`` not of that kind (field named).
    """
    import re

    if kind not in KINDS:
        raise ValidationError("kind", f"must be one of {', '.join(KINDS)}, not {kind!r}")
    parse_period(period)
    canonical = canonical_period(period)
    if not re.match(KINDS[kind], canonical):
        raise ValidationError("period", f"{period!r} is not a {kind} period (e.g. {_example(kind)})")
    return canonical


def _example(kind: str) -> str:
    return {"weekly": "2022-W19", "half-monthly": "2022-05-H1", "monthly": "2022-05"}[kind]


def rate_of(numerator: int, denominator: int) -> str | None:
    """``numerator / denominator`` to 0.0001 half up, as a decimal string (``None`` over 0)."""
    if not denominator:
        return None
    return str(
        (Decimal(numerator) / Decimal(denominator)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)
    )


def _points(now: str | None, before: str | None) -> str | None:
    if now is None or before is None:
        return None
    return str(((Decimal(now) - Decimal(before)) * 100).quantize(PERCENT_POINTS, rounding=ROUND_HALF_UP))


def city_totals(rows: list[dict[str, Any]]) -> dict[str, int]:
    """Sums over department-level indicator rows: received, rectified, closed_with_deadline,
    on_time, late."""
    out = dict.fromkeys(("received", "rectified", "closed_with_deadline", "on_time", "late"), 0)
    for r in rows:
        out["received"] += int(r["rectification_rate"]["denominator"])
        out["rectified"] += int(r["rectification_rate"]["numerator"])
        out["closed_with_deadline"] += int(r["on_time_closure_rate"]["denominator"])
        out["on_time"] += int(r["on_time_closure_rate"]["numerator"])
        out["late"] += int(r["overdue_rate"]["numerator"])
    return out


def _ranking(ind_rows: list[dict[str, Any]], score_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_unit = {str(r["unit_key"]): r for r in ind_rows}
    out = []
    for s in score_rows:
        ind = by_unit.get(str(s["unit_key"]))
        if ind is None:
            continue
        rect, on_time = ind["rectification_rate"], ind["on_time_closure_rate"]
        out.append(
            {
                "rank": s["rank"],
                "movement": s["movement"],
                "unit_key": s["unit_key"],
                "score": s["score"],
                "band": s["band"],
                "rectification": {k: rect[k] for k in ("numerator", "denominator", "value")},
                "on_time_closure": {k: on_time[k] for k in ("numerator", "denominator", "value")},
                "overdue_closed": ind["overdue_rate"]["numerator"],
            }
        )
    return out


def _breaches(engine: Engine, start: date, end: date) -> dict[str, int]:
    c = rm.unit_day_counters.c
    query = (
        select(c.unit_key, func.sum(c.breached))
        .where(c.level == "department", c.day >= start, c.day < end)
        .group_by(c.unit_key)
    )
    with engine.connect() as conn:
        return {str(unit): int(n or 0) for unit, n in conn.execute(query) if n}


def _zone(engine: Engine) -> str:
    with engine.connect() as conn:
        zones = conn.execute(select(rm.item_view.c.zone).distinct().limit(2)).scalars().all()
    return zones[0] if len(zones) == 1 else "UTC"


def _period_data(
    engine: Engine, period: str, scorebook: Scorebook, options: IndicatorOptions
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[dict[str, Any]]], list[Snapshot]]:
    """(indicator rows by level, score rows by level, snapshots): frozen if closed, else live."""
    frozen = read_snapshots(engine, period)
    if frozen:
        return (
            {s.level: s.indicators for s in frozen},
            {s.level: s.scores for s in frozen},
            frozen,
        )
    start, end = parse_period(period)
    levels = RANKED_LEVELS
    ind = {lv: [indicator_dict(r) for r in indicators(engine, lv, start, end, options)] for lv in levels}
    return ind, {lv: period_scores(engine, lv, period, scorebook, options) for lv in levels}, []


def build_notice(
    engine: Engine,
    kind: str,
    period: str,
    scorebook: Scorebook,
    now: datetime | None = None,
    options: IndicatorOptions | None = None,
) -> Notice:
    """The notice of ``kind`` for ``period`` (module docstring).

    Raises:
        ValidationError: a bad kind or period, a period that has not begun (field ``period``), or no
            scorebook version for it.
    """
    period = check_kind(kind, period)
    options = options or IndicatorOptions()
    now = now or datetime.now(UTC)
    start, end = parse_period(period)
    zone = _zone(engine)
    today = now.astimezone(ZoneInfo(zone)).date()
    if start > today:
        raise ValidationError(
            "period", f"{period} has not begun (it starts {start}; today is {today} in {zone}): no notice yet"
        )
    ind, scores, frozen = _period_data(engine, period, scorebook, options)
    previous = previous_period(period)
    try:
        prev_ind, _, _ = _period_data(engine, previous, scorebook, options)
    except ValidationError:  # no scorebook version for the period before
        prev_ind = {}
    found = read_findings(engine, period) if frozen else None
    period_end = datetime.combine(end, time(), ZoneInfo(zone)).astimezone(UTC)
    cut_off = frozen[0].frozen_at if frozen else min(now, period_end)
    if found is None:
        found = compute_findings(engine, start, end, cut_off)
    totals = city_totals(ind.get("department", []))
    before = city_totals(prev_ind.get("department", []))
    rect, on_time = (
        rate_of(totals["rectified"], totals["received"]),
        rate_of(totals["on_time"], totals["closed_with_deadline"]),
    )
    prev_rect = rate_of(before["rectified"], before["received"])
    prev_on_time = rate_of(before["on_time"], before["closed_with_deadline"])
    summary = Summary(
        received=totals["received"],
        rectified=totals["rectified"],
        rectification_rate=rect,
        closed_with_deadline=totals["closed_with_deadline"],
        closed_on_time=totals["on_time"],
        on_time_closure_rate=on_time,
        closed_late=totals["late"],
        overdue_open=int(found["overdue_open"]["total"]),
        previous_rectification_rate=prev_rect,
        previous_on_time_closure_rate=prev_on_time,
        rectification_movement_points=_points(rect, prev_rect),
        on_time_movement_points=_points(on_time, prev_on_time),
    )
    now_breaches = _breaches(engine, start, end)
    then_breaches = _breaches(engine, *parse_period(previous))
    repeat = [
        {"unit_key": unit, "breaches": n, "previous_breaches": then_breaches[unit]}
        for unit, n in sorted(now_breaches.items(), key=lambda kv: (-kv[1], kv[0]))
        if then_breaches.get(unit)
    ]
    return Notice(
        kind=kind,
        period=period,
        start=start,
        end=end,
        previous=previous,
        provisional=not frozen,
        cut_off=cut_off,
        scorebook_version=frozen[0].scorebook_version if frozen else scorebook.in_force(start).version,
        events_hash=frozen[0].events_hash if frozen else None,
        events_count=frozen[0].events_count if frozen else None,
        summary=summary,
        rankings={lv: _ranking(ind.get(lv, []), scores.get(lv, [])) for lv in RANKED_LEVELS},
        findings=found,
        repeat_offenders=repeat,
        zone=zone,
        seal_root=next((s.root for s in read_seals(engine, period)), None) if frozen else None,
    )


def level_ranking(
    engine: Engine, level: str, period: str, scorebook: Scorebook, options: IndicatorOptions | None = None
) -> list[dict[str, Any]]:
    """The ranking of ``level`` for ``period`` as the notices print it (rank, movement, unit, score,
    band, the rectification and on-time closure rates with their numerators and denominators):
    frozen if the period is closed, else as it stands.

    Raises:
        ValidationError: a bad period or level, or no scorebook version for it.
    """
    if level not in rm.LEVELS:
        raise ValidationError("level", f"must be one of {', '.join(rm.LEVELS)}, not {level!r}")
    period = canonical_period(period)
    frozen = read_snapshots(engine, period, level)
    if frozen:
        return _ranking(frozen[0].indicators, frozen[0].scores)
    start, end = parse_period(period)
    ind = [indicator_dict(r) for r in indicators(engine, level, start, end, options or IndicatorOptions())]
    return _ranking(ind, period_scores(engine, level, period, scorebook, options or IndicatorOptions()))
