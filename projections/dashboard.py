"""What the leaders' dashboard shows, as data (the gateway's ``/dashboard`` renders it; the API's
``/v1/dashboard`` returns it): read from the read models and the frozen snapshots only.

- ``cards``: open items now; their lights (green, yellow, red, on clock time: ``projections.lights``;
  a suspended item keeps the light it had when its clock stopped); open items past their deadline;
  the rectification and on-time closure rates of the chosen month (city-wide: the sum over
  departments) against the month before, each from the month's frozen snapshot once it is closed
  (``"frozen": true``), else live from the read models (``"frozen": false``, figures may change);
- ``ranking``: the chosen level's ranking for the chosen period (``notices.level_ranking``);
- ``board``: open items by department × town and light;
- ``due_soon``: open items whose deadline falls within the next 24 hours, soonest first (not the
  suspended ones: their clocks stand still);
- ``trend``: the rectification rate of the 12 ISO weeks up to the end of the chosen period (or now,
  if that is earlier) (``findings``);
- ``map``: open items with coordinates (``service_requests``, written by the gateway), as points.

``periods`` lists the months that have items and that the scorebook covers (newest first), for the
period picker: a month before the scorebook's first version has no scores to rank.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, MetaData, Table, func, inspect, select

from projections import read_models as rm
from projections.findings import weekly_trend
from projections.frozen_periods import read_snapshots
from projections.indicators import IndicatorOptions, indicator_dict, indicators
from projections.lights import clock_end, clock_light
from projections.notices import city_totals, level_ranking, rate_of
from projections.periods import parse_period, previous_period
from projections.scoring import Scorebook

DUE_WINDOW = timedelta(hours=24)
TREND_WEEKS = 12
LIST_LIMIT = 100
MAP_LIMIT = 2000
TERMINAL = ("closed", "cancelled", "merged")


def months_with_items(engine: Engine, scorebook: Scorebook | None = None) -> list[str]:
    """The months (UTC) in which items were registered, newest first; with ``scorebook``, only those
    it has a version for (a month starting before its first version cannot be scored)."""
    with engine.connect() as conn:
        stamps = conn.execute(
            select(func.min(rm.item_view.c.registered_at), func.max(rm.item_view.c.registered_at))
        ).one()
    if stamps[0] is None:
        return []
    first, last = stamps[0].date().replace(day=1), stamps[1].date().replace(day=1)
    months: list[str] = []
    month = last
    earliest = scorebook.versions[0].effective_from if scorebook is not None else first
    while month >= first and month >= earliest and len(months) < 240:
        months.append(f"{month:%Y-%m}")
        month = (month - timedelta(days=1)).replace(day=1)
    return months


def _month_rates(engine: Engine, month: str) -> dict[str, Any]:
    frozen = read_snapshots(engine, month, "department")
    if frozen:  # a closed month: as published
        rows = frozen[0].indicators
    else:
        start, end = parse_period(month)
        rows = [indicator_dict(r) for r in indicators(engine, "department", start, end, IndicatorOptions())]
    t = city_totals(rows)
    return {
        "frozen": bool(frozen),
        "rectification": {
            "numerator": t["rectified"],
            "denominator": t["received"],
            "value": rate_of(t["rectified"], t["received"]),
        },
        "on_time_closure": {
            "numerator": t["on_time"],
            "denominator": t["closed_with_deadline"],
            "value": rate_of(t["on_time"], t["closed_with_deadline"]),
        },
    }


def _coordinates(engine: Engine) -> dict[str, tuple[float, float]]:
    if not inspect(engine).has_table("service_requests"):
        return {}
    requests = Table("service_requests", MetaData(), autoload_with=engine)
    query = select(requests.c.item_id, requests.c.lat, requests.c.long).where(requests.c.lat.is_not(None))
    with engine.connect() as conn:
        return {r.item_id: (float(r.lat), float(r.long)) for r in conn.execute(query)}


def dashboard_data(
    engine: Engine, period: str | None, level: str, scorebook: Scorebook, now: datetime | None = None
) -> dict[str, Any]:
    """Everything the dashboard shows (module docstring) for ``period`` (a month, or any period
    ``duban rank`` takes; default: the newest month with items) at ``level``.

    Raises:
        ValidationError: a bad period or level.
    """
    now = now or datetime.now(UTC)
    months = months_with_items(engine, scorebook)
    period = period or (months[0] if months else f"{now:%Y-%m}")
    parse_period(period)
    lights: Counter[str] = Counter()
    board: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    due: list[dict[str, Any]] = []
    points: list[dict[str, Any]] = []
    open_count = overdue = 0
    where = _coordinates(engine)
    with engine.connect() as conn:
        query = select(rm.item_view).where(rm.item_view.c.stage.not_in(TERMINAL))
        for row in conn.execution_options(yield_per=5000).execute(query):
            open_count += 1
            light = clock_light(row, now)
            deadline, stood = row.resolution_deadline, clock_end(row, now)  # stood: a suspension's start
            if light is not None:
                lights[light] += 1
                board[(row.department or "(none)", row.town or "(none)")][light] += 1
            if deadline is not None and deadline < stood:
                overdue += 1
            elif stood == now and deadline is not None and deadline <= now + DUE_WINDOW:
                due.append({"item_id": row.item_id, "department": row.department, "unit": row.unit,
                            "town": row.town, "deadline": deadline.isoformat(),
                            "hours_left": round((deadline - now).total_seconds() / 3600, 1)})  # fmt: skip
            if row.item_id in where and len(points) < MAP_LIMIT:
                lat, long = where[row.item_id]
                points.append({"item_id": row.item_id, "lat": lat, "long": long, "light": light or "none"})
        period_end = parse_period(period)[1]
        trend = weekly_trend(conn, _next_monday(min(now.date(), period_end - timedelta(days=1))), TREND_WEEKS)
    month = period if len(period) == 7 else f"{parse_period(period)[0]:%Y-%m}"
    cards = {
        "open": open_count,
        "green": lights["green"],
        "yellow": lights["yellow"],
        "red": lights["red"],
        "overdue": overdue,
        "month": month,
        "previous_month": previous_period(month),
        "this_month": _month_rates(engine, month),
        "last_month": _month_rates(engine, previous_period(month)),
    }
    return {
        "period": period,
        "level": level,
        "periods": months,
        "now": now.isoformat(),
        "cards": cards,
        "ranking": level_ranking(engine, level, period, scorebook),
        "board": [
            {"department": d, "town": tw, **{k: c[k] for k in ("green", "yellow", "red")}}
            for (d, tw), c in sorted(board.items())
        ],
        "due_soon": sorted(due, key=lambda x: (x["deadline"], x["item_id"]))[:LIST_LIMIT],
        "trend": trend,
        "map": {"points": points, "open": open_count},
    }


def _next_monday(day: date) -> date:
    return day + timedelta(days=7 - day.weekday())
