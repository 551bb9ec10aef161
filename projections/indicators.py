"""Indicators per unit and period, each with its numerator and denominator, from the day counters.

DOMAIN.md "Indicators and scores": every indicator states what it counts. All of them are flows over
the period: numerator and denominator count events whose local day (in the item's zone) falls in
``[start, end)``, so an item registered in one period and closed in the next counts in each for what
happened then. Rates are exact decimals quantized to 0.0001 (ROUND_HALF_UP); mean handling times are
hours quantized to 0.01 (ROUND_HALF_UP). No floats anywhere.

The rectification, closure and extension rates are cohort rates instead: of the items registered
in the period (at department level, registered under the department), the share rectified, closed
or extended so far; they never exceed 1, and grow as the cohort's items progress.

Stated choices (``IndicatorOptions``):
- ``no_deadline``: closed items without a deadline are left out of the on-time and overdue rates
  (``exclude``, the default) or counted on time (``on_time``).
- ``cancelled``: cancelled and merged items are left out of the registered base of the rectification,
  closure and extension rates (``exclude``, the default) or kept in it (``include``).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import Engine, func, select

from projections import read_models as rm

RATE_QUANTUM = Decimal("0.0001")
HOURS_QUANTUM = Decimal("0.01")

Counts = Mapping[str, int]


@dataclass(frozen=True)
class IndicatorOptions:
    """How items without a deadline and cancelled/merged items enter the indicators (module doc)."""

    no_deadline: str = "exclude"
    cancelled: str = "exclude"

    def __post_init__(self) -> None:
        if self.no_deadline not in ("exclude", "on_time"):
            raise ValueError(f"no_deadline must be exclude or on_time, not {self.no_deadline!r}")
        if self.cancelled not in ("exclude", "include"):
            raise ValueError(f"cancelled must be exclude or include, not {self.cancelled!r}")


@dataclass(frozen=True)
class Definition:
    """One indicator: how its numerator and denominator come from the counters, said in words."""

    name: str
    numerator: Callable[[Counts, IndicatorOptions], int]
    denominator: Callable[[Counts, IndicatorOptions], int]
    numerator_rule: Callable[[IndicatorOptions], str]
    denominator_rule: Callable[[IndicatorOptions], str]
    unit: str = "rate"  # "rate" (a share) or "hours" (numerator in seconds, a mean per item)


def _base(c: Counts, o: IndicatorOptions) -> int:
    return c["registered"] - (c["cohort_withdrawn"] if o.cancelled == "exclude" else 0)


def _base_rule(o: IndicatorOptions) -> str:
    withdrawn = " less those since cancelled or merged" if o.cancelled == "exclude" else ""
    return f"items registered in the period (at department level: registered under it){withdrawn}"


def _closed_base(c: Counts, o: IndicatorOptions) -> int:
    return c["closed_with_deadline"] + (c["closed_no_deadline"] if o.no_deadline == "on_time" else 0)


def _closed_rule(o: IndicatorOptions) -> str:
    if o.no_deadline == "on_time":
        return "items closed (those without a deadline counted on time)"
    return "items closed with a deadline"


def _fixed(text: str) -> Callable[[IndicatorOptions], str]:
    return lambda _o: text


DEFINITIONS: tuple[Definition, ...] = (
    Definition(
        "rectification_rate",
        lambda c, o: c["cohort_rectified"],
        _base,
        _fixed("of those items, the ones whose rectification has passed verification (so far)"),
        _base_rule,
    ),
    Definition(
        "closure_rate",
        lambda c, o: c["cohort_closed"],
        _base,
        _fixed("of those items, the ones closed out (so far)"),
        _base_rule,
    ),
    Definition(
        "on_time_closure_rate",
        lambda c, o: c["closed_on_time"] + (c["closed_no_deadline"] if o.no_deadline == "on_time" else 0),
        _closed_base,
        lambda o: (
            "items closed at or before their deadline"
            + (" or without one" if o.no_deadline == "on_time" else "")
        ),
        _closed_rule,
    ),
    Definition(
        "overdue_rate",
        lambda c, o: c["closed_overdue"],
        _closed_base,
        _fixed("items closed after their deadline"),
        _closed_rule,
    ),
    Definition(
        "rework_rate",
        lambda c, o: c["rework"],
        lambda c, o: c["verified"],
        _fixed("verifications that failed (rework episodes)"),
        _fixed("verifications"),
    ),
    Definition(
        "extension_rate",
        lambda c, o: c["cohort_extended"],
        _base,
        _fixed("of those items, the ones granted an extension (so far)"),
        _base_rule,
    ),
    Definition(
        "accurate_dispatch_rate",
        lambda c, o: c["dispatched"] - c["returned"],
        lambda c, o: c["dispatched"],
        _fixed("dispatches not returned as sent to the wrong unit"),
        _fixed("dispatches"),
    ),
    Definition(
        "on_time_report_in_rate",
        lambda c, o: c["reported_in"] - c["reported_in_late"],
        lambda c, o: c["reported_in"],
        _fixed("report-ins by the arrival deadline (at department level: the department that came)"),
        _fixed("report-ins"),
    ),
    Definition(
        "mean_handling_working_hours",
        lambda c, o: c["handling_working_seconds"],
        lambda c, o: c["closed_with_calendar"],
        _fixed("working seconds from registration to close-out, on the item's calendar"),
        _fixed("items closed that have a working calendar (items under a rulebook)"),
        unit="hours",
    ),
    Definition(
        "mean_handling_hours",
        lambda c, o: c["handling_seconds"],
        lambda c, o: c["closed"],
        _fixed("clock seconds from registration to close-out"),
        _fixed("items closed"),
        unit="hours",
    ),
)
"""The indicators of the lifecycle issue, in the order they are printed."""

INDICATOR_NAMES = tuple(d.name for d in DEFINITIONS)
BY_NAME = {d.name: d for d in DEFINITIONS}
"""Each indicator's definition, by name."""


@dataclass(frozen=True)
class Indicator:
    """One indicator of one unit: ``value`` is ``None`` when the denominator is 0."""

    name: str
    numerator: int
    denominator: int
    value: Decimal | None
    numerator_rule: str
    denominator_rule: str
    unit: str


@dataclass(frozen=True)
class IndicatorRow:
    """Every indicator of one unit of ``level`` over the period."""

    level: str
    unit_key: str
    indicators: dict[str, Indicator] = field(default_factory=dict)


def evaluate(definition: Definition, counts: Counts, options: IndicatorOptions) -> Indicator:
    """The indicator of ``counts`` (sums of the counter columns) under ``options``."""
    numerator, denominator = definition.numerator(counts, options), definition.denominator(counts, options)
    value: Decimal | None = None
    if denominator:
        if definition.unit == "hours":
            value = (Decimal(numerator) / Decimal(3600) / Decimal(denominator)).quantize(
                HOURS_QUANTUM, rounding=ROUND_HALF_UP
            )
        else:
            value = (Decimal(numerator) / Decimal(denominator)).quantize(RATE_QUANTUM, rounding=ROUND_HALF_UP)
    return Indicator(
        definition.name,
        numerator,
        denominator,
        value,
        definition.numerator_rule(options),
        definition.denominator_rule(options),
        definition.unit,
    )


def indicators(
    engine: Engine,
    level: str,
    start: date | None = None,
    end: date | None = None,
    options: IndicatorOptions | None = None,
) -> list[IndicatorRow]:
    """Every indicator of every unit of ``level`` over local days ``[start, end)``, by unit key.

    Reads the pre-aggregated ``unit_day_counters`` (one grouped sum; no item is scanned).

    Raises:
        ValueError: unknown ``level``, or ``end`` before ``start``.
    """
    if level not in rm.LEVELS:
        raise ValueError(f"unknown level {level!r}; expected one of {', '.join(rm.LEVELS)}")
    if start is not None and end is not None and end < start:
        raise ValueError(f"end {end} is before start {start}")
    options = options or IndicatorOptions()
    c = rm.unit_day_counters.c
    query = select(c.unit_key, *(func.sum(c[n]).label(n) for n in rm.COUNTER_COLUMNS)).where(c.level == level)
    if start is not None:
        query = query.where(c.day >= start)
    if end is not None:
        query = query.where(c.day < end)
    with engine.connect() as conn:
        sums = [dict(row) for row in conn.execute(query.group_by(c.unit_key)).mappings()]
    rows = []
    for s in sorted(sums, key=lambda s: s["unit_key"]):
        counts = {n: int(s[n] or 0) for n in rm.COUNTER_COLUMNS}
        values = {d.name: evaluate(d, counts, options) for d in DEFINITIONS}
        rows.append(IndicatorRow(level, s["unit_key"], values))
    return rows


def indicator_dict(row: IndicatorRow) -> dict[str, object]:
    """The JSON-ready form of a row (see :func:`to_json`)."""
    return {
        "level": row.level,
        "unit_key": row.unit_key,
        **{
            name: {
                "numerator": i.numerator,
                "denominator": i.denominator,
                "value": None if i.value is None else str(i.value),
                "unit": i.unit,
                "numerator_rule": i.numerator_rule,
                "denominator_rule": i.denominator_rule,
            }
            for name, i in row.indicators.items()
        },
    }


def to_json(rows: list[IndicatorRow]) -> str:
    """A JSON list of rows: level, unit key and, per indicator, numerator, denominator, value (a
    decimal string, or null), unit and the rules in words."""
    return json.dumps([indicator_dict(r) for r in rows], ensure_ascii=False, indent=2)


def to_csv(rows: list[IndicatorRow]) -> str:
    """CSV: level, unit_key, then ``<indicator>_numerator``, ``_denominator`` and ``_value`` columns."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [
            "level",
            "unit_key",
            *(f"{n}_{part}" for n in INDICATOR_NAMES for part in ("numerator", "denominator", "value")),
        ]
    )
    for r in rows:
        cells: list[object] = [r.level, r.unit_key]
        for n in INDICATOR_NAMES:
            i = r.indicators[n]
            cells += [i.numerator, i.denominator, "" if i.value is None else i.value]
        writer.writerow(cells)
    return out.getvalue()


def format_table(rows: list[IndicatorRow]) -> str:
    """A plain-text table: one line per unit, ``value (numerator/denominator)`` per indicator."""
    short = {
        "rectification_rate": "rectified",
        "closure_rate": "closed",
        "on_time_closure_rate": "on time",
        "overdue_rate": "overdue",
        "rework_rate": "rework",
        "extension_rate": "extended",
        "accurate_dispatch_rate": "dispatch ok",
        "on_time_report_in_rate": "report-in ok",
        "mean_handling_working_hours": "work h",
        "mean_handling_hours": "clock h",
    }
    header = ["unit", *(short[n] for n in INDICATOR_NAMES)]
    body = [
        [r.unit_key or "(unknown)"]
        + [
            f"{'-' if i.value is None else i.value} ({i.numerator}/{i.denominator})"
            if i.unit == "rate"
            else f"{'-' if i.value is None else i.value} (n={i.denominator})"
            for i in (r.indicators[n] for n in INDICATOR_NAMES)
        ]
        for r in rows
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)) for line in body]
    return "\n".join(line.rstrip() for line in lines)
