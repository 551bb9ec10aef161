"""What a notice names beyond the numbers — the items, boards and roll-ups of a period as they stood
at its cut-off — frozen with the period's snapshot so a document rebuilt later names the same ones.

``compute_findings`` reads the read models at ``cut_off`` (an aware UTC instant: the close time of a
closed period, or now for an open one):

- ``overdue_open``: items registered before the period's end, still open at the cut-off and past
  their resolution deadline (their light is red), with unit and days overdue at the cut-off (an
  item closed out after the cut-off was open at it; a suspended item is overdue by how far its
  clock had run past the deadline when it stopped: ``projections.lights.clock_end``);
- ``closed_late``: items closed in the period after their deadline, with days late;
- ``due_soon``: open items whose deadline falls in the 72 hours after the cut-off (about to breach;
  not a suspended one, whose clock stands still);
- ``lights``: open items with a deadline by department and light (green / yellow / red) at the
  cut-off, on clock time (``projections.lights``);
- ``orders``: supervision orders with open items: items, closed, open, overdue;
- ``trend``: the rectification rate (cohort, city-wide: ``rectification_rate`` summed over
  departments) of the ISO weeks ending with the period, as it stood at the cut-off.

Days are exact decimals to 0.1 (ROUND_HALF_UP); each list keeps at most ``LIST_LIMIT`` items (most
overdue first) and says how many there were. Stored in ``period_findings`` beside the snapshots
(``projections.frozen_periods``), which a rebuild of the read models keeps.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Column, Connection, Engine, MetaData, String, Text, func, select
from sqlalchemy import Table as SqlTable

from events.sql import UTCDateTime, create_schema
from projections import read_models as rm
from projections.indicators import BY_NAME, IndicatorOptions, evaluate
from projections.lights import clock_end, clock_light

LIST_LIMIT = 500
DUE_SOON = timedelta(hours=72)
TREND_WEEKS = 8
DAY_QUANTUM = Decimal("0.1")
TERMINAL = ("closed", "cancelled", "merged")

findings_metadata = MetaData()
period_findings = SqlTable(
    "period_findings",
    findings_metadata,
    Column("period", String(16), primary_key=True),
    Column("cut_off", UTCDateTime(), nullable=False),
    Column("findings", Text, nullable=False),  # JSON (the module docstring's keys)
)


def days_between(later: datetime, earlier: datetime) -> str:
    """``later − earlier`` in days, to 0.1 half up, as a decimal string."""
    seconds = Decimal(int((later - earlier).total_seconds()))
    return str((seconds / Decimal(86_400)).quantize(DAY_QUANTUM, rounding=ROUND_HALF_UP))


def _local(value: datetime | None, zone: str) -> str | None:
    return value.astimezone(ZoneInfo(zone)).isoformat() if value is not None else None


def _line(row: Any, days: str) -> dict[str, Any]:
    return {
        "item_id": row.item_id,
        "category": row.category,
        "department": row.department,
        "unit": row.unit,
        "town": row.town,
        "community": row.community,
        "deadline": _local(row.resolution_deadline, row.zone),
        "days": days,
        "escalation_level": row.escalation_level,
    }


def _limited(lines: list[dict[str, Any]]) -> dict[str, Any]:
    ordered = sorted(lines, key=lambda line: (-Decimal(line["days"]), line["item_id"]))
    return {"total": len(ordered), "items": ordered[:LIST_LIMIT]}


def _period_instants(start: date, end: date, zone: str) -> tuple[datetime, datetime]:
    tz = ZoneInfo(zone)
    return datetime.combine(start, time(), tz).astimezone(UTC), datetime.combine(end, time(), tz).astimezone(
        UTC
    )


def weekly_trend(conn: Connection, end: date, count: int = TREND_WEEKS) -> list[dict[str, Any]]:
    """The city-wide cohort rectification rate of each of the ``count`` ISO weeks before ``end``:
    ``{"week", "numerator", "denominator", "value"}`` (value a decimal string, or ``None``)."""
    monday = end - timedelta(days=end.weekday() or 7)  # the last Monday strictly before ``end``
    weeks = [monday - timedelta(weeks=k) for k in range(count - 1, -1, -1)]
    c = rm.unit_day_counters.c
    definition, options = BY_NAME["rectification_rate"], IndicatorOptions()
    out = []
    for first in weeks:
        query = select(*(func.sum(c[n]).label(n) for n in rm.COUNTER_COLUMNS)).where(
            c.level == "department", c.day >= first, c.day < first + timedelta(days=7)
        )
        sums = conn.execute(query).mappings().one()
        ind = evaluate(definition, {n: int(sums[n] or 0) for n in rm.COUNTER_COLUMNS}, options)
        year, week, _ = first.isocalendar()
        out.append(
            {
                "week": f"{year}-W{week:02d}",
                "numerator": ind.numerator,
                "denominator": ind.denominator,
                "value": None if ind.value is None else str(ind.value),
            }
        )
    return out


def compute_findings(engine: Engine, start: date, end: date, cut_off: datetime) -> dict[str, Any]:
    """The findings of the period of local days ``[start, end)`` at ``cut_off`` (module docstring).

    Raises:
        ValueError: a naive ``cut_off``.
    """
    if cut_off.tzinfo is None:
        raise ValueError("cut_off must be aware (UTC)")
    overdue, late, soon = [], [], []
    lights: dict[str, Counter[str]] = defaultdict(Counter)
    orders: dict[str, Counter[str]] = defaultdict(Counter)
    with engine.connect() as conn:
        for row in conn.execution_options(yield_per=5000).execute(select(rm.item_view)):
            first, after = _period_instants(start, end, row.zone)
            closed_later = row.stage == "closed" and row.closed_at is not None and row.closed_at > cut_off
            is_open = row.stage not in TERMINAL or closed_later  # as it stood at the cut-off
            deadline = row.resolution_deadline
            if row.order_id:
                counts = orders[row.order_id]
                counts["items"] += 1
                counts["open" if is_open else "closed" if row.stage == "closed" else "withdrawn"] += 1
                counts["overdue"] += int(
                    is_open and deadline is not None and deadline < clock_end(row, cut_off)
                )
            if not is_open:
                closed = row.closed_at if row.stage == "closed" else None
                if deadline and closed and closed > deadline and first <= closed < after:
                    late.append(_line(row, days_between(closed, deadline)))
                continue
            if row.registered_at >= after:
                continue
            light = clock_light(row, cut_off)
            if light is not None:
                lights[row.department or "(none)"][light] += 1
            stood = clock_end(row, cut_off)  # the cut-off, or when a suspension stopped its clock
            if deadline is not None and deadline < stood:
                overdue.append(_line(row, days_between(stood, deadline)))
            elif stood == cut_off and deadline is not None and deadline < cut_off + DUE_SOON:
                soon.append(_line(row, days_between(deadline, cut_off)))
        trend = weekly_trend(conn, end)
    open_orders = [
        {"order_id": key, **{k: counts[k] for k in ("items", "closed", "open", "overdue", "withdrawn")}}
        for key, counts in sorted(orders.items())
        if counts["open"]
    ]
    return {
        "cut_off": cut_off.astimezone(UTC).isoformat(),
        "overdue_open": _limited(overdue),
        "closed_late": _limited(late),
        "due_soon": {
            "total": len(soon),
            "items": sorted(soon, key=lambda x: (Decimal(x["days"]), x["item_id"]))[:LIST_LIMIT],
        },
        "lights": {
            dept: {k: counts[k] for k in ("green", "yellow", "red")}
            for dept, counts in sorted(lights.items())
        },
        "orders": open_orders,
        "trend": trend,
        "interviews": [],
    }


def create_findings_table(engine: Engine) -> None:
    create_schema(engine, findings_metadata)


def findings_row(period: str, cut_off: datetime, findings: dict[str, Any]) -> dict[str, Any]:
    """The ``period_findings`` row of a period's findings."""
    return {"period": period, "cut_off": cut_off, "findings": json.dumps(findings, ensure_ascii=False)}


def read_findings(engine: Engine, period: str) -> dict[str, Any] | None:
    """The frozen findings of ``period`` (canonical spelling), or ``None`` if none were frozen."""
    create_findings_table(engine)
    with engine.connect() as conn:
        text = conn.execute(
            select(period_findings.c.findings).where(period_findings.c.period == period)
        ).scalar()
    return None if text is None else dict(json.loads(text))
