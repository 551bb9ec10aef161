"""The scorebook: versioned, effective-dated scoring rules read from YAML (``scorebooks/default.yaml``,
whose header states the formula). Used by ``projections.scoring``; errors name the path in the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from events.errors import ValidationError
from projections import read_models as rm
from projections.indicators import BY_NAME

DEFAULT_SCOREBOOK_PATH = Path(__file__).with_name("scorebooks") / "default.yaml"


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


INTERVIEW_RULES = ("last_place", "counter_at_least", "city_order_overdue")
"""The kinds of interview (约谈) rule: ranked last ``periods`` months running; a counter (e.g.
``breached``) at least ``min`` in the month; an item escalated to a city order (rung 4) overdue at
the close (``projections.interviews`` evaluates them)."""


@dataclass(frozen=True)
class InterviewRule:
    """One interview rule of a scorebook version, at ``level`` (see ``INTERVIEW_RULES``)."""

    rule: str
    level: str
    periods: int = 2
    counter: str = ""
    min: int = 1


@dataclass(frozen=True)
class ScoreVersion:
    """One version of the scoring rules, in force for periods starting on or after ``effective_from``."""

    version: str
    effective_from: date
    weights: tuple[Weight, ...]
    deductions: tuple[PointRule, ...]
    bonuses: tuple[PointRule, ...]
    bands: tuple[Band, ...]
    interviews: tuple[InterviewRule, ...] = ()

    def band(self, score: Decimal) -> str:
        """The highest band whose minimum ``score`` reaches; a score below every minimum (a negative
        one, deductions past the composite) gets the lowest band: every score has a band (``""``
        only when the version has none)."""
        if not self.bands:
            return ""
        reached = [b for b in self.bands if score >= b.min] or [min(self.bands, key=lambda b: b.min)]
        return max(reached, key=lambda b: b.min).name


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


def _interviews(items: Any, path: str) -> tuple[InterviewRule, ...]:
    out = []
    for i, item in enumerate(_list(items, path)):
        here = f"{path}[{i}]"
        rule, level = _at(item, "rule", here), item.get("level", "department")
        if rule not in INTERVIEW_RULES:
            raise ValidationError(
                f"{here}.rule", f"must be one of {', '.join(INTERVIEW_RULES)}, not {rule!r}"
            )
        if level not in rm.LEVELS:
            raise ValidationError(f"{here}.level", f"must be one of {', '.join(rm.LEVELS)}, not {level!r}")
        counter = item.get("counter", "")
        if rule == "counter_at_least" and counter not in rm.COUNTER_COLUMNS:
            raise ValidationError(f"{here}.counter", f"unknown counter {counter!r}")
        numbers = {}
        for name, default, least in (("periods", 2, 2), ("min", 1, 1)):
            value = item.get(name, default)
            if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= 1000:
                raise ValidationError(f"{here}.{name}", f"must be a whole number from {least} to 1000")
            numbers[name] = value
        out.append(InterviewRule(rule, level, numbers["periods"], counter, numbers["min"]))
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
            if name not in BY_NAME or BY_NAME[name].unit != "rate":
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
                _interviews(v.get("interviews"), f"{here}.interviews"),
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
