"""Scores of units for a period: a weighted composite of indicators, capped deductions and bonuses per
event kind, manual adjustments, rating bands; exact to 0.01 (DOMAIN.md "Indicators and scores").

The rules live in a versioned, effective-dated scorebook (``scorebooks/default.yaml``, whose header
states the formula). Arithmetic is exact (``fractions.Fraction``) until the single rounding of the
score to 0.01, half up; no float is involved. Ranking: higher score first, equal scores share a rank
(1, 1, 3), units without a score last; movement is the previous period's rank minus this one's.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext
from fractions import Fraction

from sqlalchemy import Engine, func, select

from events import bounds
from events import types as t
from events.envelope import SCHEMA_VERSION, EventEnvelope, make_event_id
from events.errors import ValidationError
from projections import read_models as rm
from projections.indicators import BY_NAME, IndicatorOptions, evaluate
from projections.periods import parse_period, previous_period
from projections.scorebook import (
    DEFAULT_SCOREBOOK_PATH,
    Band,
    PointRule,
    Scorebook,
    ScoreVersion,
    Weight,
    load_scorebook,
    parse_scorebook,
)

__all__ = [
    "DEFAULT_SCOREBOOK_PATH",
    "Band",
    "PointRule",
    "Score",
    "ScoreVersion",
    "Scorebook",
    "Weight",
    "composite",
    "format_scores",
    "load_scorebook",
    "parse_scorebook",
    "round_score",
    "score_adjustment",
    "score_dicts",
    "score_units",
    "with_movement",
]

SCORE_QUANTUM = Decimal("0.01")


@dataclass(frozen=True)
class Score:
    """A unit's score for a period and how it was made (every part exact, the total rounded)."""

    level: str
    unit_key: str
    rank: int
    score: Decimal | None
    band: str
    composite: Fraction | None
    deductions: Fraction
    bonuses: Fraction
    adjustments: Fraction
    version: str
    movement: int | None = None


def _capped(rules: tuple[PointRule, ...], counts: Mapping[str, int]) -> Fraction:
    return sum((min(Fraction(r.points) * counts[r.counter], Fraction(r.cap)) for r in rules), Fraction(0))


def composite(version: ScoreVersion, counts: Mapping[str, int], options: IndicatorOptions) -> Fraction | None:
    """100 × the weighted mean share of the weighted indicators that have a denominator in the period;
    ``None`` if none has one."""
    total, weight = Fraction(0), Fraction(0)
    for w in version.weights:
        ind = evaluate(BY_NAME[w.indicator], counts, options)
        if ind.denominator == 0:
            continue
        share = Fraction(ind.numerator, ind.denominator)
        total += Fraction(w.weight) * (share if w.better == "higher" else 1 - share)
        weight += Fraction(w.weight)
    return None if weight == 0 else 100 * total / weight


def round_score(value: Fraction) -> Decimal:
    """``value`` rounded to 0.01, half up (exact: the division is carried to 50 digits first)."""
    with localcontext() as ctx:
        ctx.prec = 50
        return (Decimal(value.numerator) / Decimal(value.denominator)).quantize(
            SCORE_QUANTUM, rounding=ROUND_HALF_UP
        )


def score_units(
    engine: Engine,
    level: str,
    start: date,
    end: date,
    scorebook: Scorebook,
    options: IndicatorOptions | None = None,
) -> list[Score]:
    """Scores of every unit of ``level`` over local days ``[start, end)`` under the version in force on
    ``start``, ranked (module docstring). Adjustments are the ``score_adjustments`` of the period.

    Raises:
        ValueError: unknown ``level``; ValidationError: the period starts before the scorebook.
    """
    if level not in rm.LEVELS:
        raise ValueError(f"unknown level {level!r}; expected one of {', '.join(rm.LEVELS)}")
    version, options = scorebook.in_force(start), options or IndicatorOptions()
    c, a = rm.unit_day_counters.c, rm.score_adjustments.c
    query = (
        select(c.unit_key, *(func.sum(c[n]).label(n) for n in rm.COUNTER_COLUMNS))
        .where(c.level == level, c.day >= start, c.day < end)
        .group_by(c.unit_key)
    )
    adjust = select(a.unit_key, a.points).where(a.level == level, a.day >= start, a.day < end)
    with engine.connect() as conn:
        sums = {
            r["unit_key"]: {n: int(r[n] or 0) for n in rm.COUNTER_COLUMNS}
            for r in conn.execute(query).mappings()
        }
        adjustments: dict[str, Fraction] = {}
        for key, points in conn.execute(adjust):
            adjustments[key] = adjustments.get(key, Fraction(0)) + Fraction(Decimal(points))
    zero = dict.fromkeys(rm.COUNTER_COLUMNS, 0)
    scores = []
    for key in sorted(set(sums) | set(adjustments)):
        counts = sums.get(key, zero)
        base = composite(version, counts, options)
        minus, plus = _capped(version.deductions, counts), _capped(version.bonuses, counts)
        extra = adjustments.get(key, Fraction(0))
        total = None if base is None else round_score(base - minus + plus + extra)
        band = "" if total is None else version.band(total)
        scores.append(Score(level, key, 0, total, band, base, minus, plus, extra, version.version))
    return _ranked(scores)


def _ranked(scores: list[Score]) -> list[Score]:
    ordered = sorted(scores, key=lambda s: (s.score is None, -(s.score or 0), s.unit_key))
    out: list[Score] = []
    for position, s in enumerate(ordered, start=1):
        tied = out and out[-1].score == s.score
        out.append(dataclasses.replace(s, rank=out[-1].rank if tied else position))
    return out


def with_movement(current: list[Score], previous: list[Score]) -> list[Score]:
    """``current`` with ``movement`` = previous rank − current rank (positive: moved up); ``None``
    for a unit unranked in either period."""
    before = {s.unit_key: s.rank for s in previous if s.score is not None}
    return [
        dataclasses.replace(
            s, movement=before[s.unit_key] - s.rank if s.unit_key in before and s.score is not None else None
        )
        for s in current
    ]


def score_adjustment(
    adjustment_id: str,
    level: str,
    unit_key: str,
    day: date,
    points: Decimal,
    reason: str,
    approver: str,
    at: datetime,
) -> EventEnvelope:
    """The ``ScoreAdjusted`` event of a manual adjustment (the only way to change a score by hand):
    ``points`` (exact; negative to deduct) for ``unit_key`` of ``level`` on local day ``day``, with
    the reason and the approver, recorded at ``at`` (aware UTC). Its id derives from
    ``adjustment_id``, so recording it twice stores it once.

    Raises:
        ValidationError: empty id, unit, reason or approver, or one outside its bounds
            (``events.bounds``: an id of at most 96 characters, a unit key of 128 without surrounding
            whitespace, names of 128, a reason of 2,000, no control characters); an unknown level;
            ``points`` beyond ±1000 or finer than 0.01; a day outside 1990–2099.
    """
    texts = {
        "adjustment_id": (adjustment_id, bounds.ADJUSTMENT_ID),
        "unit_key": (unit_key, bounds.IDENTIFIER),
        "reason": (reason, bounds.REASON),
        "approver": (approver, bounds.NAME),
    }
    for name, (value, bound) in texts.items():
        problem = bounds.text_problem(value, bound) or ("must not be empty" if not value.strip() else None)
        if problem is not None:
            raise ValidationError(name, problem)
    if level not in rm.LEVELS:
        raise ValidationError("level", f"must be one of {', '.join(rm.LEVELS)}")
    if (problem := bounds.points_problem(str(points))) is not None:
        raise ValidationError("points", problem)
    if not bounds.EARLIEST.date() <= day < bounds.LATEST.date():
        last = bounds.LATEST.date() - timedelta(days=1)
        raise ValidationError(
            "day", f"must lie from {bounds.EARLIEST:%Y-%m-%d} to {last:%Y-%m-%d}, got {day}"
        )
    item_id = f"score-adjustment:{adjustment_id}"
    return EventEnvelope(
        event_id=make_event_id(item_id, 1),
        event_type=t.SCORE_ADJUSTED,
        schema_version=SCHEMA_VERSION,
        item_id=item_id,
        sequence=1,
        occurred_at=at,
        recorded_at=at,
        actor=approver,
        payload={
            "level": level, "unit_key": unit_key, "day": day.isoformat(), "points": str(points),
            "reason": reason, "approver": approver,
        },
        correlation_id=item_id,
        causation_id=f"adjust:{adjustment_id}",
    )  # fmt: skip


def period_scores(
    engine: Engine, level: str, period: str, scorebook: Scorebook, options: IndicatorOptions | None = None
) -> list[dict[str, object]]:
    """The scores of every unit of ``level`` for ``period`` as they stand now (``score_dicts`` rows),
    with the movement against the previous period of the same kind (none when the scorebook has no
    version for it). What a closed period freezes, and what ``duban scores`` shows for an open one.

    Raises:
        ValidationError: a bad period, or no scorebook version in force on its first day.
    """
    start, end = parse_period(period)
    previous: list[Score] = []
    with contextlib.suppress(ValidationError):  # no scorebook for the period before: no movement
        previous = score_units(engine, level, *parse_period(previous_period(period)), scorebook, options)
    return score_dicts(with_movement(score_units(engine, level, start, end, scorebook, options), previous))


def _shown(value: Fraction | None) -> str | None:
    """A part of a score for display, to 0.0001 half up (the score itself is rounded once, exactly)."""
    if value is None:
        return None
    with localcontext() as ctx:
        ctx.prec = 50
        exact = Decimal(value.numerator) / Decimal(value.denominator)
        return str(exact.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP))


def score_dicts(scores: list[Score]) -> list[dict[str, object]]:
    """JSON-ready rows: rank, movement, unit, score and band, the parts of the score, the version."""
    return [
        {
            "rank": s.rank,
            "movement": s.movement,
            "level": s.level,
            "unit_key": s.unit_key,
            "score": None if s.score is None else str(s.score),
            "band": s.band or None,
            "composite": _shown(s.composite),
            "deductions": _shown(s.deductions),
            "bonuses": _shown(s.bonuses),
            "adjustments": _shown(s.adjustments),
            "scorebook_version": s.version,
        }
        for s in scores
    ]


def format_scores(rows: list[dict[str, object]]) -> str:
    """A plain-text table of :func:`score_dicts` rows (movement: ``+2`` up, ``-1`` down, ``=``, ``new``)."""
    header = ["rank", "move", "unit", "score", "band", "composite", "minus", "plus", "adjust"]
    body = []
    for row in rows:
        move = row["movement"]
        shown_move = "new" if move is None else "=" if move == 0 else f"{move:+d}"
        unit = str(row["unit_key"]) or "(unknown)"
        if row["score"] is None:
            shown_move = "-"
        parts = [row["composite"] or "-", row["deductions"], row["bonuses"], row["adjustments"]]
        body.append([str(row["rank"]), shown_move, unit, row["score"] or "-", row["band"] or "", *parts])
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)) for line in body]
    return "\n".join(line.rstrip() for line in lines)
