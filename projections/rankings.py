"""Rankings of departments and areas by on-time closure rate, from the day counters.

The rate's denominator is stated on every row (DOMAIN.md "Indicators and scores": each indicator
states its denominator). Rates are exact decimals quantized to 0.0001 with ROUND_HALF_UP; units are
ranked on that published rate, so units showing the same rate share a rank.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, fields
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import Engine, case, func, select

from projections import read_models as rm

RATE_QUANTUM = Decimal("0.0001")

NO_DEADLINE_RULES = {
    "exclude": "closed items with a deadline",
    "on_time": "closed items, those without a deadline counted on time",
    "overdue": "closed items, those without a deadline counted not on time",
}
"""How closed items without a deadline enter the on-time rate, and the denominator rule stated."""


@dataclass(frozen=True)
class RankingRow:
    """One ranked unit over a period. Counts are items closed / cancelled in the period.

    ``on_time`` counts items closed at or before their deadline and ``overdue`` those closed after
    it; ``no_deadline`` those closed without a deadline. ``on_time_rate`` is
    ``numerator / denominator`` (``None`` when the denominator is 0), as ``denominator_rule`` says.
    """

    rank: int
    level: str
    unit_key: str
    closed: int
    closed_with_deadline: int
    on_time: int
    overdue: int
    no_deadline: int
    cancelled: int
    on_time_rate: Decimal | None
    numerator: int
    denominator: int
    denominator_rule: str


def _rate(numerator: int, denominator: int) -> Decimal | None:
    if denominator == 0:
        return None
    return (Decimal(numerator) / Decimal(denominator)).quantize(RATE_QUANTUM, rounding=ROUND_HALF_UP)


def rank_units(
    engine: Engine,
    level: str,
    start: date | None = None,
    end: date | None = None,
    no_deadline: str = "exclude",
) -> list[RankingRow]:
    """Rank the units of ``level`` on their on-time closure rate over local days ``[start, end)``.

    Args:
        level: one of ``read_models.LEVELS`` (department, district, town, community, grid,
            category, order).
        start, end: first local day included and first excluded; ``None`` leaves that side open.
        no_deadline: "exclude" (denominator: closed items with a deadline), "on_time" (all closed
            items, those without a deadline counted on time) or "overdue" (all closed items,
            those without a deadline counted not on time).

    Returns:
        Rows ordered by rate descending (no rate last), then denominator descending, then unit key;
        competition ranks (1, 1, 3) on equal rates. Every unit with any counter in the period appears.

    Raises:
        ValueError: unknown ``level`` or ``no_deadline``, or ``end`` before ``start``.
    """
    if level not in rm.LEVELS:
        raise ValueError(f"unknown level {level!r}; expected one of {', '.join(rm.LEVELS)}")
    if no_deadline not in NO_DEADLINE_RULES:
        raise ValueError(
            f"unknown no_deadline rule {no_deadline!r}; expected one of {', '.join(NO_DEADLINE_RULES)}"
        )
    if start is not None and end is not None and end < start:
        raise ValueError(f"end {end} is before start {start}")
    c = rm.unit_day_counters.c
    names = (
        "closed",
        "closed_with_deadline",
        "closed_on_time",
        "closed_overdue",
        "closed_no_deadline",
        "cancelled",
    )
    query = select(c.unit_key, *(func.sum(c[n]).label(n) for n in names)).where(c.level == level)
    if start is not None:
        query = query.where(c.day >= start)
    if end is not None:
        query = query.where(c.day < end)
    query = query.group_by(c.unit_key)
    with engine.connect() as conn:
        sums = [dict(row) for row in conn.execute(query).mappings()]
    unranked = []
    for s in sums:
        counts = {n: int(s[n] or 0) for n in names}
        if no_deadline == "exclude":
            numerator, denominator = counts["closed_on_time"], counts["closed_with_deadline"]
        else:
            extra = counts["closed_no_deadline"] if no_deadline == "on_time" else 0
            numerator = counts["closed_on_time"] + extra
            denominator = counts["closed_with_deadline"] + counts["closed_no_deadline"]
        unranked.append(
            RankingRow(
                rank=0,
                level=level,
                unit_key=s["unit_key"],
                closed=counts["closed"],
                closed_with_deadline=counts["closed_with_deadline"],
                on_time=counts["closed_on_time"],
                overdue=counts["closed_overdue"],
                no_deadline=counts["closed_no_deadline"],
                cancelled=counts["cancelled"],
                on_time_rate=_rate(numerator, denominator),
                numerator=numerator,
                denominator=denominator,
                denominator_rule=NO_DEADLINE_RULES[no_deadline],
            )
        )
    unranked.sort(key=lambda r: (r.on_time_rate is None, -(r.on_time_rate or 0), -r.denominator, r.unit_key))
    ranked: list[RankingRow] = []
    for position, row in enumerate(unranked, start=1):
        tied = ranked and ranked[-1].on_time_rate == row.on_time_rate
        ranked.append(_with_rank(row, ranked[-1].rank if tied else position))
    return ranked


def _with_rank(row: RankingRow, rank: int) -> RankingRow:
    return RankingRow(**{**asdict(row), "rank": rank})


def _cell(value: object) -> str:
    return "" if value is None else str(value)


COLUMNS = [f.name for f in fields(RankingRow)]


def format_table(rows: list[RankingRow]) -> str:
    """A plain-text table of ``rows`` (rank, unit, counts, rate, denominator), one line per unit.

    The denominator rule is printed once, under the table; an empty list gives a header only.
    """
    head = [
        "rank",
        "unit",
        "closed",
        "with deadline",
        "on time",
        "overdue",
        "no deadline",
        "cancelled",
        "rate",
        "of",
    ]
    body = [
        [
            str(r.rank),
            r.unit_key,
            str(r.closed),
            str(r.closed_with_deadline),
            str(r.on_time),
            str(r.overdue),
            str(r.no_deadline),
            str(r.cancelled),
            "-" if r.on_time_rate is None else str(r.on_time_rate),
            str(r.denominator),
        ]
        for r in rows
    ]
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]
    lines = [
        "  ".join(
            v.ljust(w) if i == 1 else v.rjust(w) for i, (v, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in [head, *body]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if rows:
        lines.append(f"rate = on time / {rows[0].denominator_rule}")
    return "\n".join(line.rstrip() for line in lines) + "\n"


def to_csv(rows: list[RankingRow]) -> str:
    """CSV text with a header of ``RankingRow`` field names; rates as decimal strings, no rate empty."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in rows:
        writer.writerow([_cell(getattr(r, name)) for name in COLUMNS])
    return out.getvalue()


def to_json(rows: list[RankingRow]) -> str:
    """JSON array of objects keyed by ``RankingRow`` field names; rates as strings ("0.6667") or null."""
    data = [{**asdict(r), "on_time_rate": _cell(r.on_time_rate) or None} for r in rows]
    return json.dumps(data, ensure_ascii=False, indent=2)


def overdue_by_department(engine: Engine) -> dict[str, tuple[int, int]]:
    """Per current department of the items: (items overdue, items with a resolution deadline).

    Counted over all items in ``item_view`` (open and closed); overdue means past the resolution
    deadline while open or closed after it.
    """
    v = rm.item_view.c
    query = (
        select(
            v.department,
            func.sum(case((v.overdue, 1), else_=0)),
            func.sum(case((v.resolution_deadline.is_not(None), 1), else_=0)),
        )
        .group_by(v.department)
        .order_by(v.department)
    )
    with engine.connect() as conn:
        return {dept: (int(over or 0), int(due or 0)) for dept, over, due in conn.execute(query)}
