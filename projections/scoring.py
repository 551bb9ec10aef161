"""Scores of units for a period: a weighted composite of indicators, capped deductions and bonuses per
event kind, manual adjustments, rating bands; exact to 0.01 (DOMAIN.md "Indicators and scores").

The rules live in a versioned, effective-dated scorebook (``scorebooks/default.yaml``, whose header
states the formula). Arithmetic is exact (``fractions.Fraction``) until the single rounding of the
score to 0.01, half up; no float is involved. Ranking: higher score first, equal scores share a rank
(1, 1, 3), units without a score last; movement is the previous period's rank minus this one's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext
from fractions import Fraction
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Engine, func, select

from duban.errors import ValidationError
from events import types as t
from events.envelope import SCHEMA_VERSION, EventEnvelope, make_event_id
from projections import read_models as rm
from projections.indicators import DEFINITIONS, IndicatorOptions, evaluate

SCORE_QUANTUM = Decimal("0.01")
DEFAULT_SCOREBOOK_PATH = Path(__file__).with_name("scorebooks") / "default.yaml"
_BY_NAME = {d.name: d for d in DEFINITIONS}


@dataclass(frozen=True)
class Weight:
    """``indicator`` counts ``weight`` of the composite; ``better`` is ``higher`` or ``lower``."""

    indicator: str
    weight: Decimal
    better: str


@dataclass(frozen=True)
class PointRule:
    """``points`` per event counted in ``counter``, at most ``cap`` points per unit and period."""

    counter: str
    points: Decimal
    cap: Decimal


@dataclass(frozen=True)
class Band:
    """A rating band: reached by a score of at least ``min``."""

    name: str
    min: Decimal


@dataclass(frozen=True)
class ScoreVersion:
    """One version of the scoring rules, in force for periods starting on or after ``effective_from``."""

    version: str
    effective_from: date
    weights: tuple[Weight, ...]
    deductions: tuple[PointRule, ...]
    bonuses: tuple[PointRule, ...]
    bands: tuple[Band, ...]

    def band(self, score: Decimal) -> str:
        """The highest band whose minimum ``score`` reaches (``""`` below every band)."""
        reached = [b for b in self.bands if score >= b.min]
        return max(reached, key=lambda b: b.min).name if reached else ""


@dataclass(frozen=True)
class Scorebook:
    """All versions, oldest first."""

    versions: tuple[ScoreVersion, ...]

    def in_force(self, first_day: date) -> ScoreVersion:
        """The version for a period starting on ``first_day``.

        Raises:
            ValidationError: field ``period`` when the period starts before the first version.
        """
        chosen = [v for v in self.versions if v.effective_from <= first_day]
        if not chosen:
            raise ValidationError(
                "period", f"starts {first_day}, before scorebook {self.versions[0].version}"
            )
        return chosen[-1]


def _at(data: Any, key: str, path: str) -> Any:
    if not isinstance(data, dict):
        raise ValidationError(path or "scorebook", "must be a mapping")
    if key not in data:
        raise ValidationError(f"{path}.{key}" if path else key, "is required")
    return data[key]


def _dec(value: Any, path: str, minimum: Decimal | None = Decimal(0)) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValidationError(path, "must be a number")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise ValidationError(path, f"must be a number, not {value!r}") from None
    if not number.is_finite() or (minimum is not None and number < minimum):
        raise ValidationError(path, f"must be a finite number >= {minimum}")
    return number


def _list(value: Any, path: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValidationError(path, "must be a list")
    return value


def _rules(items: Any, path: str) -> tuple[PointRule, ...]:
    out = []
    for i, item in enumerate(_list(items, path)):
        here = f"{path}[{i}]"
        counter = _at(item, "counter", here)
        if counter not in rm.COUNTER_COLUMNS:
            raise ValidationError(f"{here}.counter", f"unknown counter {counter!r}")
        out.append(
            PointRule(
                counter,
                _dec(_at(item, "points", here), f"{here}.points"),
                _dec(_at(item, "cap", here), f"{here}.cap"),
            )
        )
    return tuple(out)


def parse_scorebook(data: Any) -> Scorebook:
    """Check and build a scorebook from parsed YAML; errors name the path, e.g.
    ``versions[0].weights[2].weight``.

    Raises:
        ValidationError: a missing or invalid field; weights that do not sum to 1; unordered versions.
    """
    versions = []
    for i, v in enumerate(_list(_at(data, "versions", ""), "versions")):
        here = f"versions[{i}]"
        start = _at(v, "effective_from", here)
        if not isinstance(start, date):
            raise ValidationError(f"{here}.effective_from", "must be a date, e.g. 2026-01-01")
        weights: list[Weight] = []
        for j, w in enumerate(_list(_at(v, "weights", here), f"{here}.weights")):
            at = f"{here}.weights[{j}]"
            name, better = _at(w, "indicator", at), w.get("better", "higher")
            if name not in _BY_NAME or _BY_NAME[name].unit != "rate":
                raise ValidationError(f"{at}.indicator", f"must be a rate indicator, not {name!r}")
            if better not in ("higher", "lower"):
                raise ValidationError(f"{at}.better", "must be higher or lower")
            if any(x.indicator == name for x in weights):
                raise ValidationError(f"{at}.indicator", f"{name} is weighted twice")
            weights.append(Weight(name, _dec(_at(w, "weight", at), f"{at}.weight"), better))
        if sum(w.weight for w in weights) != 1:
            raise ValidationError(f"{here}.weights", "must sum to exactly 1")
        bands = tuple(
            Band(
                str(_at(b, "name", f"{here}.bands[{k}]")),
                _dec(_at(b, "min", f"{here}.bands[{k}]"), f"{here}.bands[{k}].min"),
            )
            for k, b in enumerate(_list(_at(v, "bands", here), f"{here}.bands"))
        )
        versions.append(
            ScoreVersion(
                str(_at(v, "version", here)),
                start,
                tuple(weights),
                _rules(v.get("deductions"), f"{here}.deductions"),
                _rules(v.get("bonuses"), f"{here}.bonuses"),
                bands,
            )
        )
        if i and versions[-1].effective_from <= versions[-2].effective_from:
            raise ValidationError(f"{here}.effective_from", "must be after the previous version's")
    if not versions:
        raise ValidationError("versions", "needs at least one version")
    return Scorebook(tuple(versions))


def load_scorebook(path: Path = DEFAULT_SCOREBOOK_PATH) -> Scorebook:
    """Read and check a YAML scorebook (``yaml.safe_load``); see :func:`parse_scorebook`.

    Raises:
        ValidationError: field ``scorebook`` when the file cannot be read or is not YAML (the
            reason names the file), else as :func:`parse_scorebook`.
    """
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValidationError("scorebook", f"{path}: cannot be read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ValidationError("scorebook", f"{path}: is not UTF-8 text") from None
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: a date such as 2020-13-01
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValidationError("scorebook", f"{path}: is not a valid YAML scorebook ({first})") from None
    return parse_scorebook(data)


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
        ind = evaluate(_BY_NAME[w.indicator], counts, options)
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
        out.append(_replace(s, rank=out[-1].rank if tied else position))
    return out


def _replace(s: Score, **changes: Any) -> Score:
    return Score(**{**s.__dict__, **changes})


def with_movement(current: list[Score], previous: list[Score]) -> list[Score]:
    """``current`` with ``movement`` = previous rank − current rank (positive: moved up); ``None``
    for a unit unranked in either period."""
    before = {s.unit_key: s.rank for s in previous if s.score is not None}
    return [
        _replace(
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
        ValidationError: empty id, unit, reason or approver; unknown level; a non-finite ``points``.
    """
    texts = {"adjustment_id": adjustment_id, "unit_key": unit_key, "reason": reason, "approver": approver}
    for name, value in texts.items():
        if not value.strip():
            raise ValidationError(name, "must not be empty")
    if level not in rm.LEVELS:
        raise ValidationError("level", f"must be one of {', '.join(rm.LEVELS)}")
    if not points.is_finite():
        raise ValidationError("points", "must be a finite decimal number")
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
