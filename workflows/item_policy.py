"""An item's policy: the rulebook version and working calendar it keeps for life, and its time arithmetic.

Pure and deterministic (safe inside workflow code): calendars are built from the ``holidays`` data
shipped with the installed library, once per process. Upgrading ``holidays`` can move the deadlines
of items in flight, so treat it like a workflow code change (README, "Changing workflow code").

:func:`apply_rulebook` turns a registration into one governed by the rulebook version in force at
``reported_at`` (DOMAIN.md "Time limits and escalation"; issue 3: "an item keeps the rulebook version
in force when it was registered").
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import cache

from duban.errors import ValidationError
from workflows.item_model import ItemPolicy, LimitSpec, Registration, RungSpec
from workflows.rulebook import Rulebook, RulebookVersion, TimeLimit, deadline
from workflows.working_calendar import WorkingCalendar, china_calendar, us_calendar

CALENDAR_YEARS = range(2010, 2041)
"""Years each named calendar covers; a deadline beyond 2040 would see no holidays."""

CALENDARS = ("china", "us-ma")
"""Named working calendars: mainland China (Asia/Shanghai, official holidays and make-up working
days) and Massachusetts (America/New_York, federal + state holidays) for the Boston data."""

WORKING_UNITS = frozenset({"working_hours", "working_days"})


@cache
def calendar_for(name: str) -> WorkingCalendar:
    """The named working calendar (built once per process).

    Raises:
        ValidationError: ``"calendar"`` is not one of ``CALENDARS``.
    """
    if name == "china":
        return china_calendar(CALENDAR_YEARS)
    if name == "us-ma":
        return us_calendar(CALENDAR_YEARS, subdiv="MA")
    raise ValidationError("calendar", f"unknown calendar {name!r}; known: {', '.join(CALENDARS)}")


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
        return calendar_for(calendar).add_working_hours(start, Decimal(seconds) / 3600)
    return start + timedelta(seconds=seconds)


def share_seconds(budget_s: int, share: str) -> int:
    """``share`` (decimal string) of ``budget_s`` seconds, rounded half up to whole seconds."""
    return int((Decimal(budget_s) * Decimal(share)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _share(value: Decimal) -> str:
    """A threshold as a decimal string with at least two places: 0.5 → ``"0.50"``, 0.875 → ``"0.875"``."""
    return f"{value:.2f}" if value == value.quantize(Decimal("0.01")) else str(value)


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

    Each milestone's deadline is the rule's limit counted from ``reported_at`` on ``calendar``
    (category × urgency × step), unless the registration already carries one: a source deadline
    (``deadline_origin="source"``) overrides any rule and runs on the clock basis.

    Raises:
        ValidationError: ``reported_at`` before the first version; an unknown calendar.
    """
    version = rulebook.in_force(reg.reported_at)
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
