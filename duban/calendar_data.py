"""Drafting versions of the working calendars from the ``holidays`` library (``duban calendars``).

The calendars items run on are data (``events/calendars/*.yaml``): a version is drafted here, reviewed
like the rulebook, and appended to its file with a later ``effective_from``. Items keep the version in
force at their registration, so a new version (or a newer ``holidays``) moves no deadline in flight.
This is the only module that imports ``holidays``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from events.errors import ValidationError
from events.working_calendar import CALENDARS, CHINA_WORK_PERIODS, US_WORK_PERIODS, WorkingCalendar

ZONES = {"china": "Asia/Shanghai", "us-ma": "America/New_York"}


def _years(years: Iterable[int]) -> list[int]:
    wanted = sorted(set(years))
    if not wanted:
        raise ValidationError("years", "at least one year is needed")
    return wanted


def china_calendar(years: Iterable[int]) -> WorkingCalendar:
    """Mainland China's calendar for ``years``: holidays (incl. observed/bridge days off) from
    ``holidays.China``, and make-up working days (调休) from its public ``weekend_workdays`` set.

    ``holidays`` fills ``weekend_workdays`` from ``ChinaStaticHolidays.special_public_holidays``
    (``(to_month, to_day, from_month, from_day)`` rows from the State Council notices) when it builds
    the substituted "Day off (substituted from …)" entries; its own ``is_working_day`` reads the same
    set. The set also holds cross-year rows of other years, so only dates in ``years`` are kept.
    """
    import holidays

    wanted = _years(years)
    cn = holidays.China(years=wanted)
    makeup = frozenset(d for d in cn.weekend_workdays if d.year in wanted)
    days_off = frozenset(cn.keys())
    return WorkingCalendar(ZONES["china"], CHINA_WORK_PERIODS, holidays=days_off, makeup_workdays=makeup)


def us_calendar(years: Iterable[int], subdiv: str = "MA") -> WorkingCalendar:
    """A US state's calendar for ``years``: federal + ``subdiv`` public holidays, with the observed
    days, from ``holidays.US(subdiv=...)``; no make-up working days."""
    import holidays

    wanted = _years(years)
    try:
        us = holidays.US(subdiv=subdiv, years=wanted)
    except NotImplementedError as exc:
        raise ValidationError("subdiv", f"unknown US subdivision {subdiv!r}") from exc
    return WorkingCalendar(zone=ZONES["us-ma"], work_periods=US_WORK_PERIODS, holidays=frozenset(us.keys()))


def drafted_calendar(name: str, first_year: int, last_year: int) -> WorkingCalendar:
    """Calendar ``name`` (``events.working_calendar.CALENDARS``) for the years ``first_year`` to
    ``last_year`` inclusive, from the installed ``holidays``.

    Raises:
        ValidationError: an unknown calendar, or years out of order.
    """
    if name not in CALENDARS:
        raise ValidationError("calendar", f"unknown calendar {name!r}; known: {', '.join(CALENDARS)}")
    if not 1990 <= first_year <= last_year <= 2100:
        raise ValidationError("years", "must run from a first to a last year within 1990-2100")
    years = range(first_year, last_year + 1)
    return china_calendar(years) if name == "china" else us_calendar(years, subdiv="MA")


def version_yaml(name: str, version: str, effective_from: date, first_year: int, last_year: int) -> str:
    """A version of calendar ``name`` as the YAML block its file's ``versions:`` list holds (one date
    per line, so a review sees each change)."""
    import holidays

    cal = drafted_calendar(name, first_year, last_year)
    periods = ", ".join(f'["{a:%H:%M}", "{b:%H:%M}"]' for a, b in cal.work_periods)
    lines = [
        f'  - version: "{version}"',
        f"    effective_from: {effective_from.isoformat()}",
        f'    source: "holidays {holidays.__version__}, years {first_year}-{last_year}"',
        f"    years: [{first_year}, {last_year}]",
        f"    zone: {cal.zone}",
        f"    work_periods: [{periods}]",
        "    holidays:",
        *(f"      - {d.isoformat()}" for d in sorted(cal.holidays)),
        "    makeup_workdays:" + ("" if cal.makeup_workdays else " []"),
        *(f"      - {d.isoformat()}" for d in sorted(cal.makeup_workdays)),
    ]
    return "\n".join(lines) + "\n"


def calendar_file(name: str, version: str, effective_from: date, first_year: int, last_year: int) -> str:
    """A whole calendar file holding one version (to start a file; later versions are appended)."""
    header = (
        f"# Working calendar {name}: versions in force from their effective_from (UTC date). Drafted\n"
        f"# by `duban calendars draft {name}` from the holidays library; reviewed like the rulebook.\n"
        "# Never edit a version items may run on: append a new one with a later effective_from.\n"
    )
    block = version_yaml(name, version, effective_from, first_year, last_year)
    return f"{header}calendar: {name}\nversions:\n{block}"
