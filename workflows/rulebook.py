"""The rulebook: versioned, effective-dated time limits, warning thresholds and the escalation ladder.

DOMAIN.md "Time limits and escalation" (limits by category × urgency × step; reminders and traffic light
at shares of the limit; the ladder climbed on breach) and "Indicators and scores" (an item keeps the
version in force when it was registered: the caller stores ``RulebookVersion.version`` on the item and
gets it back with :meth:`Rulebook.version`). Pure except :func:`load_rulebook`, which reads one YAML
file. The dataclasses check themselves (errors name the field, e.g. ``amount``); :func:`parse_rulebook`
prefixes the path inside the document, e.g. ``versions[1].limits[3].limit.unit``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from events.errors import DocumentError, ValidationError
from events.working_calendar import WorkingCalendar, hours_to_seconds
from workflows.item_model import ESCALATION_LADDER

T = TypeVar("T")
Schedule = tuple[tuple[str, datetime], ...]
TimeUnit = Literal["working_hours", "working_days", "calendar_days", "hours"]
UNITS: tuple[str, ...] = ("working_hours", "working_days", "calendar_days", "hours")
WILDCARD = "*"
LADDER_RUNGS = ESCALATION_LADDER[1:]  # the rungs a rulebook times; handling_unit is level 0
DEFAULT_WARNING_THRESHOLDS: tuple[Decimal, ...] = (Decimal("0.50"), Decimal("0.75"), Decimal("0.80"))
"""DOMAIN.md anchors: reminders at 50% and 75% of the limit (ServiceNow practice); yellow light at 80%."""
DEFAULT_RULEBOOK_PATH = Path(__file__).with_name("rulebooks") / "default.yaml"
OFFSET_REASON = "must be a date-time carrying a UTC offset, e.g. 2026-01-01T00:00:00+08:00"


class RulebookError(DocumentError):
    """A rulebook document is invalid: ``field`` is the path inside it, ``source`` names the document."""


def _aware_utc(value: datetime, field: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(field, OFFSET_REASON)
    return value.astimezone(UTC)


def _name(value: object, field: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(field, "must be a non-empty string")


@dataclass(frozen=True)
class TimeLimit:
    """``amount`` (exact ``Decimal`` >= 0; whole for the day units) of ``unit``: ``working_hours`` and
    ``working_days`` on the working calendar, ``calendar_days`` (same wall time n days later) or
    ``hours`` (elapsed clock hours, day and night)."""

    amount: Decimal
    unit: TimeUnit

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise ValidationError("unit", f"must be one of {', '.join(UNITS)}")
        if isinstance(self.amount, bool) or not isinstance(self.amount, Decimal | int):
            raise ValidationError("amount", "must be a Decimal or an int (not a float)")
        amount = Decimal(self.amount)
        if not amount.is_finite() or amount < 0:
            raise ValidationError("amount", "must be a finite number >= 0")
        if self.unit.endswith("_days") and amount != amount.to_integral_value():
            raise ValidationError("amount", f"must be a whole number of days for unit {self.unit}")
        object.__setattr__(self, "amount", amount)


@dataclass(frozen=True)
class LimitRule:
    """The limit of one ``step`` (``response``, ``resolution``…) for a category and an urgency;
    ``category`` and ``urgency`` may be the wildcard ``"*"``."""

    category: str
    urgency: str
    step: str
    limit: TimeLimit

    def __post_init__(self) -> None:
        for name in ("category", "urgency", "step"):
            _name(getattr(self, name), name)
        if self.step == WILDCARD:
            raise ValidationError("step", "must name a step; the wildcard is not allowed here")


@dataclass(frozen=True)
class EscalationRung:
    """Rung ``name`` of the ladder is reached ``delay`` after the previous rung (the first: after breach)."""

    name: str
    delay: TimeLimit

    def __post_init__(self) -> None:
        _name(self.name, "name")


DEFAULT_EXTENSION_APPROVERS: tuple[str, ...] = ("duty_chief", "district_leader")
"""DOMAIN.md "Item lifecycle": a first extension by the duty chief, a second by a higher approver."""


@dataclass(frozen=True)
class Procedures:
    """The windows and roles of the exception paths (DOMAIN.md "Item lifecycle"; issue 3).

    ``redispatch_window``: a unit may return a wrongly dispatched item only this long after dispatch
    (product choice: 2 working hours). ``extension_approvers``: the role that approves the n-th
    extension (their count is the most extensions an item may get). ``suspension_review``: a
    suspended item is reviewed this often (product choice: 30 calendar days). ``report_in``: the
    arrival deadline of a grid call (DOMAIN.md anchor, Beijing: 30 minutes).
    """

    redispatch_window: TimeLimit = TimeLimit(Decimal(2), "working_hours")
    extension_approvers: tuple[str, ...] = DEFAULT_EXTENSION_APPROVERS
    suspension_review: TimeLimit = TimeLimit(Decimal(30), "calendar_days")
    report_in: TimeLimit = TimeLimit(Decimal("0.5"), "hours")

    def __post_init__(self) -> None:
        approvers = tuple(self.extension_approvers)
        for i, role in enumerate(approvers):
            _name(role, f"extension_approvers[{i}]")
        object.__setattr__(self, "extension_approvers", approvers)


@dataclass(frozen=True)
class RulebookVersion:
    """One version of the rules, in force from ``effective_from`` (aware, kept in UTC).

    ``warning_thresholds``: shares of the limit, strictly increasing in (0, 1); breach is 1.
    ``ladder``: the rungs after ``handling_unit`` in ``ESCALATION_LADDER`` order (a non-empty prefix).
    """

    version: str
    effective_from: datetime
    limits: tuple[LimitRule, ...]
    ladder: tuple[EscalationRung, ...]
    warning_thresholds: tuple[Decimal, ...] = DEFAULT_WARNING_THRESHOLDS
    procedures: Procedures = Procedures()

    def __post_init__(self) -> None:
        _name(self.version, "version")
        object.__setattr__(self, "effective_from", _aware_utc(self.effective_from, "effective_from"))
        thresholds, limits, ladder = (tuple(self.warning_thresholds), tuple(self.limits), tuple(self.ladder))
        for i, share in enumerate(thresholds):
            if not isinstance(share, Decimal) or not share.is_finite() or not 0 < share < 1:
                raise ValidationError(f"warning_thresholds[{i}]", "must be a Decimal in (0, 1)")
            if i and share <= thresholds[i - 1]:
                raise ValidationError(f"warning_thresholds[{i}]", f"must exceed {thresholds[i - 1]}")
        seen: dict[tuple[str, str, str], int] = {}
        for i, rule in enumerate(limits):
            key = (rule.category, rule.urgency, rule.step)
            if key in seen:
                raise ValidationError(f"limits[{i}]", f"repeats limits[{seen[key]}] ({'/'.join(key)})")
            seen[key] = i
        order = f"rungs in order: {', '.join(LADDER_RUNGS)}"
        if not ladder:
            raise ValidationError("ladder", f"needs at least one rung; {order}")
        for i, rung in enumerate(ladder):
            if i >= len(LADDER_RUNGS) or rung.name != LADDER_RUNGS[i]:
                expected = f"must be {LADDER_RUNGS[i]}" if i < len(LADDER_RUNGS) else "is one rung too many"
                raise ValidationError(f"ladder[{i}].name", f"{expected} ({order})")
        object.__setattr__(self, "warning_thresholds", thresholds)
        object.__setattr__(self, "limits", limits)
        object.__setattr__(self, "ladder", ladder)

    def limit_for(self, category: str, urgency: str, step: str) -> TimeLimit | None:
        """The most specific rule's limit: category+urgency > category+* > *+urgency > *+*; else None.
        Categories and urgencies match without regard to case (``Litter`` is ``litter``)."""
        rules = {
            (r.category.casefold(), r.urgency.casefold()): r.limit for r in self.limits if r.step == step
        }
        category, urgency = category.casefold(), urgency.casefold()
        for key in ((category, urgency), (category, WILDCARD), (WILDCARD, urgency), (WILDCARD, WILDCARD)):
            if key in rules:
                return rules[key]
        return None

    def escalation_schedule(self, breach_at: datetime, calendar: WorkingCalendar) -> Schedule:
        """``(rung name, due instant in UTC)`` for each rung, each delay counted from the previous rung."""
        at, schedule = breach_at, []
        for rung in self.ladder:
            at = deadline(rung.delay, at, calendar)
            schedule.append((rung.name, at))
        return tuple(schedule)


@dataclass(frozen=True)
class Rulebook:
    """All versions, strictly increasing by ``effective_from``, with unique ``version`` ids."""

    versions: tuple[RulebookVersion, ...]

    def __post_init__(self) -> None:
        versions = tuple(self.versions)
        if not versions:
            raise ValidationError("versions", "needs at least one version")
        ids = [v.version for v in versions]
        for i, v in enumerate(versions):
            if v.version in ids[:i]:
                raise ValidationError(f"versions[{i}].version", f"repeats versions[{ids.index(v.version)}]")
            if i and v.effective_from <= versions[i - 1].effective_from:
                before = f"after versions[{i - 1}] ({versions[i - 1].effective_from.isoformat()})"
                raise ValidationError(f"versions[{i}].effective_from", f"must be {before}")
        object.__setattr__(self, "versions", versions)

    def in_force(self, at: datetime) -> RulebookVersion:
        """The version with the latest ``effective_from`` <= ``at`` (the item's registration instant)."""
        when = _aware_utc(at, "reported_at")
        chosen = [v for v in self.versions if v.effective_from <= when]
        if not chosen:
            first = self.versions[0]
            reason = f"is before the first version, {first.version} from {first.effective_from.isoformat()}"
            raise ValidationError("reported_at", f"{when.isoformat()} {reason}")
        return chosen[-1]

    def version(self, version_id: str) -> RulebookVersion:
        """The version an item stored at registration; ``ValidationError("version", ...)`` if unknown."""
        for v in self.versions:
            if v.version == version_id:
                return v
        raise ValidationError("version", f"unknown rulebook version {version_id!r}")


def deadline(limit: TimeLimit, start: datetime, calendar: WorkingCalendar) -> datetime:
    """The instant (aware UTC) at which ``limit`` counted from ``start`` runs out on ``calendar``."""
    if limit.unit == "working_hours":
        return calendar.add_working_hours(start, limit.amount)
    if limit.unit == "working_days":
        return calendar.add_working_days(start, int(limit.amount))
    if limit.unit == "calendar_days":
        return calendar.add_calendar_days(start, int(limit.amount))
    return _aware_utc(start, "start") + timedelta(seconds=hours_to_seconds(limit.amount))


# --- reading a rulebook document ---------------------------------------------------------------------

Reader = Callable[[object, str], Any]


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _build(
    cls: Callable[..., T], fields: Mapping[str, Reader], optional: tuple[str, ...], data: object, path: str
) -> T:
    """Read mapping ``data`` at ``path`` with one reader per key (only ``optional`` ones may be absent), then
    build ``cls``; a check that ``cls`` fails gets ``path`` prefixed to its field."""
    if not isinstance(data, dict):
        raise ValidationError(path or "rulebook", "must be a mapping")
    for key in data:
        if key not in fields:
            raise ValidationError(_join(path, key), f"unknown key; expected {', '.join(fields)}")
    for key in fields:
        if key not in data and key not in optional:
            raise ValidationError(_join(path, key), "is required")
    kwargs = {key: read(data[key], _join(path, key)) for key, read in fields.items() if key in data}
    try:
        return cls(**kwargs)
    except ValidationError as exc:
        raise ValidationError(_join(path, exc.field), exc.reason) from None


def _each(read: Reader, data: object, path: str) -> tuple[Any, ...]:
    if not isinstance(data, list):
        raise ValidationError(path, "must be a list")
    return tuple(read(x, f"{path}[{i}]") for i, x in enumerate(data))


def _text(data: object, path: str) -> str:
    if not isinstance(data, str):
        raise ValidationError(path, 'must be a string (quote it in YAML, e.g. "2026.1")')
    return data


def _decimal(data: object, path: str) -> Decimal:
    """An exact decimal: YAML floats go through ``str`` (0.5 → Decimal("0.5")), strings are parsed."""
    if isinstance(data, bool) or not isinstance(data, int | float | str | Decimal):
        raise ValidationError(path, "must be a number")
    try:
        value = Decimal(str(data).strip())
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite():
        raise ValidationError(path, f"must be a finite number, not {data!r}")
    return value


def _datetime(data: object, path: str) -> datetime:
    try:
        value = datetime.fromisoformat(data) if isinstance(data, str) else data
    except ValueError:
        raise ValidationError(path, f"must be an ISO-8601 date-time, not {data!r}") from None
    if not isinstance(value, datetime):
        raise ValidationError(path, OFFSET_REASON)
    return value  # a naive one is refused by RulebookVersion, at the same path


_limit = partial(_build, TimeLimit, {"amount": _decimal, "unit": _text}, ())
_rule = partial(_build, LimitRule, {"category": _text, "urgency": _text, "step": _text, "limit": _limit}, ())
_rung = partial(_build, EscalationRung, {"name": _text, "delay": _limit}, ())
_PROCEDURE_FIELDS: dict[str, Reader] = {
    "redispatch_window": _limit,
    "extension_approvers": partial(_each, _text),
    "suspension_review": _limit,
    "report_in": _limit,
}
_procedures = partial(_build, Procedures, _PROCEDURE_FIELDS, tuple(_PROCEDURE_FIELDS))
_VERSION_FIELDS: dict[str, Reader] = {
    "version": _text,
    "effective_from": _datetime,
    "warning_thresholds": partial(_each, _decimal),
    "limits": partial(_each, _rule),
    "ladder": partial(_each, _rung),
    "procedures": _procedures,
}
_version = partial(_build, RulebookVersion, _VERSION_FIELDS, ("warning_thresholds", "procedures"))


def parse_rulebook(data: object, source: str) -> Rulebook:
    """Check and build a rulebook from parsed YAML/JSON; errors name the field path inside ``source``.

    Raises:
        RulebookError: (a ``ValidationError``) ``field`` like ``versions[1].limits[3].limit.unit``.
    """
    try:
        return _build(Rulebook, {"versions": partial(_each, _version)}, (), data, "")
    except ValidationError as exc:
        raise RulebookError(source, exc.field, exc.reason) from None


def load_rulebook(path: Path) -> Rulebook:
    """Read and check the YAML rulebook at ``path`` (``yaml.safe_load``); see :func:`parse_rulebook`."""
    source = str(path)
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise RulebookError(source, "rulebook", f"cannot be read: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise RulebookError(source, "rulebook", f"is not valid YAML: {exc}") from exc
    return parse_rulebook(data, source)
