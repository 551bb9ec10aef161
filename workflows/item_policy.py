"""An item's policy: the rulebook version and working calendar it keeps for life, and its time arithmetic.

Pure and deterministic (safe inside workflow code): calendars are versioned data
(``events.working_calendar``, ``events/calendars/*.yaml``); an item keeps the calendar version in
force at its registration (``policy.calendar`` is ``name@version``), so neither a new version nor a
newer ``holidays`` library moves a deadline of an item in flight.

:func:`apply_rulebook` turns a registration into one governed by the rulebook version in force at
``reported_at`` (DOMAIN.md "Time limits and escalation"; issue 3: "an item keeps the rulebook version
in force when it was registered").
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from events.bounds import DEADLINE_HORIZON, TextBound, text_problem
from events.errors import ValidationError
from events.working_calendar import calendar_for, calendar_in_force
from workflows.item_model import ItemPolicy, LimitSpec, Registration, Role, RungSpec
from workflows.rulebook import Rulebook, RulebookVersion, TimeLimit, deadline

WORKING_UNITS = frozenset({"working_hours", "working_days"})
ROLES = tuple(r.value for r in Role)


def to_limit(spec: LimitSpec) -> TimeLimit:
    """The rulebook ``TimeLimit`` of ``spec`` (raises ``ValidationError`` for a bad amount or unit)."""
    return TimeLimit(Decimal(spec.amount), spec.unit)  # type: ignore[arg-type]


def to_spec(limit: TimeLimit) -> LimitSpec:
    """The JSON-friendly copy of a rulebook ``TimeLimit``."""
    return LimitSpec(str(limit.amount), limit.unit)


def basis_of(unit: str) -> str:
    """``working`` for working hours or days, ``clock`` for calendar days and clock hours."""
    return "working" if unit in WORKING_UNITS else "clock"


def limit_deadline(spec: LimitSpec, start: datetime, calendar: str) -> datetime:
    """When ``spec`` counted from ``start`` runs out on the named calendar (aware UTC)."""
    return deadline(to_limit(spec), start, calendar_for(calendar))


def elapsed(a: datetime, b: datetime, basis: str, calendar: str) -> int:
    """Whole seconds of ``basis`` in ``[a, b)``: working seconds on the calendar, or clock seconds;
    0 if ``b <= a``."""
    if basis == "working":
        return calendar_for(calendar).working_seconds_between(a, b)
    return max(0, int((b - a).total_seconds()))


def advance(start: datetime, seconds: int, basis: str, calendar: str) -> datetime:
    """The instant ``seconds`` (>= 0) of ``basis`` after ``start``: working seconds on the calendar
    (counting from the next work period if ``start`` is outside one), or clock seconds."""
    if basis == "working":
        return calendar_for(calendar).add_working_seconds(start, seconds)
    return start + timedelta(seconds=seconds)


def share_seconds(budget_s: int, share: str) -> int:
    """``share`` (decimal string) of ``budget_s`` seconds, rounded half up to whole seconds."""
    return int((Decimal(budget_s) * Decimal(share)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _share(value: Decimal) -> str:
    """A threshold as a decimal string with at least two places: 0.5 → ``"0.50"``, 0.875 → ``"0.875"``."""
    return f"{value:.2f}" if value == value.quantize(Decimal("0.01")) else str(value)


_MOST: dict[str, Decimal] = {
    "working_hours": Decimal(DEADLINE_HORIZON.days * 24),
    "hours": Decimal(DEADLINE_HORIZON.days * 24),
    "working_days": Decimal(DEADLINE_HORIZON.days),
    "calendar_days": Decimal(DEADLINE_HORIZON.days),
}
"""The longest limit of each unit: the deadline horizon (``events.bounds.DEADLINE_HORIZON``)."""
_LIMITS = ("redispatch_window", "suspension_review", "report_in")


def _check_limit(spec: object, field: str, positive: bool = False) -> None:
    if not isinstance(spec, LimitSpec) or not isinstance(spec.amount, str) or len(spec.amount) > 64:
        raise ValidationError(field, "must be a time limit (amount as a decimal string, unit)")
    try:
        limit = to_limit(spec)
    except InvalidOperation:
        raise ValidationError(f"{field}.amount", f"{spec.amount!r} is not a decimal number") from None
    except ValidationError as exc:
        raise ValidationError(f"{field}.{exc.field}", exc.reason) from None
    if limit.amount > _MOST[limit.unit]:
        raise ValidationError(f"{field}.amount", f"must be at most {_MOST[limit.unit]} {limit.unit}")
    if positive and limit.amount <= 0:
        raise ValidationError(f"{field}.amount", "must be greater than 0")


def _share_problem(value: object) -> str | None:
    try:
        share = Decimal(value) if isinstance(value, str) and len(value) <= 16 else None
    except InvalidOperation:
        share = None
    if share is None or not share.is_finite() or not 0 < share < 1:
        return f"must be a decimal string between 0 and 1 (exclusive), got {value!r}"
    return None


def check_policy(policy: ItemPolicy) -> None:
    """Raise ``ValidationError`` (field ``policy.…``) unless ``policy`` is one an item can live by:
    a known calendar, at most 10 increasing warning thresholds in (0, 1), at most 8 rungs, time limits
    within the deadline horizon (the suspension review longer than zero), at most 8 extension
    approvers that are roles, and bases ``working`` or ``clock``. ``apply_rulebook`` makes such
    policies; this guards a policy that a client built itself."""
    if not isinstance(policy, ItemPolicy):
        raise ValidationError("policy", "must be an item policy")
    if (problem := text_problem(policy.rulebook_version, TextBound(64))) is not None:
        raise ValidationError("policy.rulebook_version", problem)
    if not isinstance(policy.calendar, str) or text_problem(policy.calendar, TextBound(32)) is not None:
        raise ValidationError("policy.calendar", "must be a reference name@version of at most 32 characters")
    try:
        calendar_for(policy.calendar)
    except ValidationError as exc:
        raise ValidationError("policy.calendar", exc.reason) from None
    thresholds = policy.warning_thresholds
    if not isinstance(thresholds, list) or len(thresholds) > 10:
        raise ValidationError("policy.warning_thresholds", "must be a list of at most 10 shares")
    for i, share in enumerate([*thresholds, policy.yellow_threshold]):
        name = f"policy.warning_thresholds[{i}]" if i < len(thresholds) else "policy.yellow_threshold"
        if (problem := _share_problem(share)) is not None:
            raise ValidationError(name, problem)
    if [Decimal(s) for s in thresholds] != sorted({Decimal(s) for s in thresholds}):
        raise ValidationError("policy.warning_thresholds", "must be strictly increasing")
    if not isinstance(policy.ladder, list) or len(policy.ladder) > 8:
        raise ValidationError("policy.ladder", "must be a list of at most 8 rungs")
    for i, rung in enumerate(policy.ladder):
        if not isinstance(rung, RungSpec) or text_problem(rung.name, TextBound(32)) or not rung.name.strip():
            raise ValidationError(
                f"policy.ladder[{i}]", "must be a rung with a name of at most 32 characters"
            )
        _check_limit(rung.delay, f"policy.ladder[{i}].delay")
    for name in _LIMITS:
        _check_limit(getattr(policy, name), f"policy.{name}", positive=name == "suspension_review")
    approvers = policy.extension_approvers
    if not isinstance(approvers, list) or len(approvers) > 8 or not all(a in ROLES for a in approvers):
        raise ValidationError(
            "policy.extension_approvers", f"must be at most 8 of the roles {', '.join(ROLES)}"
        )
    for name in ("response_basis", "resolution_basis"):
        if getattr(policy, name) not in ("working", "clock"):
            raise ValidationError(f"policy.{name}", "must be working or clock")


def policy_of(version: RulebookVersion, calendar: str) -> ItemPolicy:
    """The policy an item keeps from ``version`` on ``calendar`` (bases are set by
    :func:`apply_rulebook`, which knows the item's limits). The last warning threshold is where the
    light turns yellow (the default rulebook: 0.80, DOMAIN.md anchor)."""
    calendar_for(calendar)
    proc = version.procedures
    return ItemPolicy(
        rulebook_version=version.version,
        calendar=calendar,
        warning_thresholds=[_share(s) for s in version.warning_thresholds],
        yellow_threshold=_share(version.warning_thresholds[-1]) if version.warning_thresholds else "0.80",
        ladder=[RungSpec(r.name, to_spec(r.delay)) for r in version.ladder],
        redispatch_window=to_spec(proc.redispatch_window),
        extension_approvers=list(proc.extension_approvers),
        suspension_review=to_spec(proc.suspension_review),
        report_in=to_spec(proc.report_in),
    )


def apply_rulebook(reg: Registration, rulebook: Rulebook, calendar: str) -> Registration:
    """A copy of ``reg`` governed by the rulebook version in force at ``reg.reported_at``.

    Each milestone's deadline is the rule's limit counted from ``reported_at`` on ``calendar`` (a name,
    resolved to the version in force at ``reported_at``, or a ``name@version`` reference)
    (category × urgency × step), unless the registration already carries one: a source deadline
    (``deadline_origin="source"``) overrides any rule and runs on the clock basis.

    Raises:
        ValidationError: ``reported_at`` before the first version; an unknown calendar.
    """
    version = rulebook.in_force(reg.reported_at)
    if "@" not in calendar:  # the calendar's version in force at registration, kept for life
        calendar = calendar_in_force(calendar, reg.reported_at)
    policy = policy_of(version, calendar)
    changes: dict[str, object] = {"policy": policy}
    for step in ("response", "resolution"):
        given = getattr(reg, f"{step}_deadline")
        limit = version.limit_for(reg.category, reg.urgency, step)
        if given is not None or limit is None:
            continue
        changes[f"{step}_deadline"] = deadline(limit, reg.reported_at, calendar_for(calendar))
        setattr(policy, f"{step}_basis", basis_of(limit.unit))
        if step == "resolution":
            changes["deadline_origin"] = "rule"
    return dataclasses.replace(reg, **changes)  # type: ignore[arg-type]
