"""A working-time calendar as data, and pure deadline arithmetic on it.

DOMAIN.md "Time limits and escalation": limits are counted in working hours, working days or calendar
days "on a holiday calendar that is data" (anchors: litter 4 working hours, road cleaning 2 working
hours, greenery 5 working days, illegal building 4 h / 7 d / 20 d).

Everything here is deterministic: no clock reads; the only I/O is ``zoneinfo`` reading the IANA
database and the calendar files (``calendars/*.yaml``, versioned data read once per process). The
files are generated from the ``holidays`` library by ``duban calendars draft`` (``duban.calendar_data``)
and reviewed like the rulebook, so upgrading the library moves no deadline of an item in flight.
Instants in: aware datetimes in any zone (naive ones are refused). Instants out: aware UTC.
Hours are ``Decimal`` (or ``int``), turned into whole seconds with ``ROUND_HALF_UP``; seconds are ``int``.
Working time is elapsed time inside the work periods of working days, read in the calendar's zone.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import cache, cached_property
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from events.errors import ValidationError

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader where installed (about 10× faster), else the pure-Python one. ``yaml`` is
imported with this module (not lazily), so a workflow sandbox that passes this module through never
imports it itself."""

Period = tuple[time, time]

CHINA_WORK_PERIODS: tuple[Period, ...] = ((time(9), time(12)), (time(13, 30), time(17, 30)))
US_WORK_PERIODS: tuple[Period, ...] = ((time(8), time(16)),)
_DAY, _SECOND = timedelta(days=1), timedelta(seconds=1)


def _utc(value: datetime, field: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(field, "must be an aware datetime; naive datetimes are refused")
    return value.astimezone(UTC)


def hours_to_seconds(hours: Decimal | int) -> int:
    """Whole seconds in ``hours`` (``Decimal`` or ``int``, >= 0): ``hours × 3600`` rounded ROUND_HALF_UP.

    Floats are refused (binary fractions of an hour are not exact); field ``"hours"``.
    """
    if isinstance(hours, bool) or not isinstance(hours, int | Decimal):
        raise ValidationError("hours", "must be a Decimal or an int (not a float)")
    value = Decimal(hours)
    if not value.is_finite() or value < 0:
        raise ValidationError("hours", "must be a finite number >= 0")
    return int((value * 3600).quantize(Decimal(1), rounding=ROUND_HALF_UP))


@dataclass(frozen=True)
class WorkingCalendar:
    """Working days and hours of one organisation, as data.

    Attributes:
        zone: IANA zone name in which dates and work periods are read, e.g. ``"Asia/Shanghai"``.
        work_periods: local (naive) ``(start, end)`` times of each working day, sorted, non-empty,
            ``start < end``, non-overlapping (touching is allowed); a period cannot cross midnight.
        weekend: ``date.weekday()`` numbers of the weekly rest days (Monday = 0); not all seven.
        holidays: local dates that are days off.
        makeup_workdays: local dates worked although they fall on a weekend (China's 调休); they win
            over ``weekend`` and ``holidays``.

    A period spanning a daylight-saving change counts its real elapsed seconds; periods in daytime
    hours (the usual case) always count their exact local length.
    """

    zone: str
    work_periods: tuple[Period, ...]
    weekend: frozenset[int] = frozenset({5, 6})
    holidays: frozenset[date] = frozenset()
    makeup_workdays: frozenset[date] = frozenset()

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.zone)
        except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
            raise ValidationError("zone", f"unknown IANA zone {self.zone!r}") from exc
        periods = tuple(tuple(p) for p in self.work_periods)
        if not periods:
            raise ValidationError("work_periods", "at least one work period is needed")
        previous_end: time | None = None
        for period in periods:
            if len(period) != 2 or not all(isinstance(t, time) and t.tzinfo is None for t in period):
                raise ValidationError("work_periods", f"{period!r} is not a pair of naive times")
            if not period[0] < period[1]:
                raise ValidationError("work_periods", f"{period!r} does not start before it ends")
            if previous_end is not None and period[0] < previous_end:
                raise ValidationError("work_periods", f"{period!r} overlaps or precedes the one before")
            previous_end = period[1]
        weekend = frozenset(self.weekend)
        if not weekend <= set(range(7)) or len(weekend) == 7:
            raise ValidationError("weekend", "must be weekday numbers 0..6, not all seven")
        object.__setattr__(self, "work_periods", periods)
        object.__setattr__(self, "weekend", weekend)
        object.__setattr__(self, "holidays", frozenset(self.holidays))
        object.__setattr__(self, "makeup_workdays", frozenset(self.makeup_workdays))

    @property
    def tz(self) -> ZoneInfo:
        """The calendar's zone (``ZoneInfo`` caches instances by name)."""
        return ZoneInfo(self.zone)

    def is_working_day(self, d: date) -> bool:
        """Local date ``d`` is worked: make-up day → True; else holiday → False; else weekend → False."""
        if d in self.makeup_workdays:
            return True
        return d not in self.holidays and d.weekday() not in self.weekend

    def _close_of_business(self, d: date) -> datetime:
        return datetime.combine(d, self.work_periods[-1][1], self.tz).astimezone(UTC)

    def _day_periods(self, d: date) -> list[tuple[datetime, datetime]]:
        """UTC ``(begin, end)`` of the work periods of local date ``d`` (none on a day off)."""
        if not self.is_working_day(d):
            return []
        tz = self.tz
        return [
            (datetime.combine(d, start, tz).astimezone(UTC), datetime.combine(d, end, tz).astimezone(UTC))
            for start, end in self.work_periods
        ]

    @cached_property
    def _years(self) -> dict[int, list[int]]:
        """Per year, built on first use: ``table[i]`` = working seconds in its first ``i`` days."""
        return {}

    def _year_table(self, year: int) -> list[int]:
        table = self._years.get(year)
        if table is None:
            table, d, total = [0], date(year, 1, 1), 0
            while d.year == year:
                total += sum((end - begin) // _SECOND for begin, end in self._day_periods(d))
                table.append(total)
                d += _DAY
            self._years[year] = table
        return table

    def _days_seconds(self, first: date, stop: date) -> int:
        """Working seconds of the whole local days ``[first, stop)``: one lookup per year spanned."""
        total = 0
        while first < stop:
            year_end = date(first.year + 1, 1, 1)
            until = min(stop, year_end)
            table, jan1 = self._year_table(first.year), date(first.year, 1, 1)
            total += table[(until - jan1).days] - table[(first - jan1).days]
            first = until
        return total

    def add_working_hours(self, start: datetime, hours: Decimal | int) -> datetime:
        """The instant (aware UTC) at which ``hours`` working hours after ``start`` are used up.

        Counting starts at ``start`` if it is inside a work period, else at the next period's start.
        The result is the instant the last working second is used, so a deadline that fills a period
        exactly is that period's end (not the next period's start). ``hours`` = 0 returns ``start``.
        Example (DOMAIN.md anchor, litter: 4 working hours) with 09–12/13:30–17:30: Friday 16:00 →
        1.5 h to 17:30, then Monday 09:00 + 2.5 h → Monday 11:30.

        Raises:
            ValidationError: ``"start"`` naive; ``"hours"`` negative, non-finite or a float.
        """
        return self.add_working_seconds(start, hours_to_seconds(hours))

    def add_working_seconds(self, start: datetime, seconds: int) -> datetime:
        """The instant (aware UTC) at which ``seconds`` (>= 0) working seconds after ``start`` are
        used up; as ``add_working_hours``. Whole days are skipped a year at a time (a binary search in
        the year's table), so any span costs the same few steps.

        Raises:
            ValidationError: ``"start"`` naive; ``"seconds"`` negative or not an int.
        """
        cursor = _utc(start, "start")
        if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 0:
            raise ValidationError("seconds", "must be an int >= 0")
        remaining = timedelta(seconds=seconds)
        if not remaining:
            return cursor
        d = cursor.astimezone(self.tz).date()
        for begin, end in self._day_periods(d):  # what is left of the starting day
            if end > cursor:
                begin = max(begin, cursor)
                if remaining <= end - begin:
                    return begin + remaining
                remaining -= end - begin
        d += _DAY
        need = -(-remaining // _SECOND)  # whole days are whole seconds: find the day it ends in
        while True:
            table, jan1 = self._year_table(d.year), date(d.year, 1, 1)
            i = (d - jan1).days
            if table[-1] - table[i] >= need:
                j = bisect_left(table, table[i] + need, lo=i + 1)
                d, remaining = jan1 + (j - 1) * _DAY, remaining - (table[j - 1] - table[i]) * _SECOND
                break
            need -= table[-1] - table[i]
            remaining -= (table[-1] - table[i]) * _SECOND
            d = date(d.year + 1, 1, 1)
        for begin, end in self._day_periods(d):
            if remaining <= end - begin:
                return begin + remaining
            remaining -= end - begin
        raise AssertionError("unreachable: the day found holds the remaining working time")

    def add_working_days(self, start: datetime, days: int) -> datetime:
        """Close of business (end of the last work period, aware UTC) of the ``days``-th working day
        after the local date of ``start`` (DOMAIN.md anchor, greenery: 5 working days).

        The start's own day never counts, whatever the time: the first working day strictly after it
        is day 1 (so a start on a Saturday counts from Monday = day 1, like a start on Friday).
        ``days`` = 0 means the close of the current working day, or of the next one if the start is
        on a non-working day or after the close.

        Raises:
            ValidationError: ``"start"`` naive; ``"days"`` negative or not an int.
        """
        cursor = _utc(start, "start")
        if isinstance(days, bool) or not isinstance(days, int) or days < 0:
            raise ValidationError("days", "must be an int >= 0")
        d = cursor.astimezone(self.tz).date()
        if days == 0:
            while not self.is_working_day(d) or self._close_of_business(d) < cursor:
                d += timedelta(days=1)
            return self._close_of_business(d)
        counted = 0
        while counted < days:
            d += timedelta(days=1)
            counted += self.is_working_day(d)
        return self._close_of_business(d)

    def add_calendar_days(self, start: datetime, days: int) -> datetime:
        """The same local wall time ``days`` calendar days later in the calendar's zone, as aware UTC.

        DST-safe: across a change the UTC gap is 24 h ± 1 h per day boundary crossed. A wall time
        that is ambiguous on the target day reads as its first occurrence; one that does not exist
        (spring-forward gap) is moved forward by the gap (``zoneinfo``'s ``fold=0`` rule).

        Raises:
            ValidationError: ``"start"`` naive; ``"days"`` negative or not an int.
        """
        local = _utc(start, "start").astimezone(self.tz)
        if isinstance(days, bool) or not isinstance(days, int) or days < 0:
            raise ValidationError("days", "must be an int >= 0")
        wall = local.replace(tzinfo=None, fold=0) + timedelta(days=days)
        return wall.replace(tzinfo=self.tz).astimezone(UTC)

    def working_seconds_between(self, a: datetime, b: datetime) -> int:
        """Whole working seconds (floored) in ``[a, b)``; 0 if ``b <= a``.

        Used for suspensions: the working time left on a limit is kept and re-added on resumption;
        ``working_seconds_between(s, add_working_hours(s, h)) == hours_to_seconds(h)``. The whole
        days between the two ends are summed from per-year tables, so any span costs the same.

        Raises:
            ValidationError: ``"a"`` or ``"b"`` naive.
        """
        lo, hi = _utc(a, "a"), _utc(b, "b")
        if hi <= lo:
            return 0
        tz = self.tz
        first, last = lo.astimezone(tz).date(), hi.astimezone(tz).date()
        total = timedelta(0)
        for begin, end in self._day_periods(first) + (self._day_periods(last) if last != first else []):
            total += max(timedelta(0), min(end, hi) - max(begin, lo))
        if last > first:
            total += self._days_seconds(first + _DAY, last) * _SECOND
        return total // _SECOND


CALENDAR_DIR: Final = Path(__file__).parent / "calendars"
"""The working calendars as data: one YAML file per calendar (``china.yaml``, ``us-ma.yaml``), each a
list of versions with their effective dates, generated by ``duban calendars draft`` from the
``holidays`` library and reviewed like the rulebook. No workflow imports ``holidays``."""

CALENDARS: Final = ("china", "us-ma")
"""Named working calendars: mainland China (Asia/Shanghai, official holidays and make-up working
days) and Massachusetts (America/New_York, federal + state holidays) for the Boston data."""


@dataclass(frozen=True)
class CalendarVersion:
    """One reviewed version of a named calendar: in force for items registered from
    ``effective_from`` (a UTC date), covering the years ``years`` (holidays beyond them are unknown)."""

    name: str
    version: str
    effective_from: date
    source: str
    years: tuple[int, int]
    calendar: WorkingCalendar


def _period(pair: object, where: str) -> Period:
    try:
        start, end = (time.fromisoformat(str(x)) for x in pair)  # type: ignore[attr-defined]
    except (TypeError, ValueError) as exc:
        raise ValidationError(where, "must be a pair of HH:MM times") from exc
    return start, end


def _dates(values: object, where: str) -> frozenset[date]:
    if not isinstance(values, list) or not all(type(v) is date for v in values):  # not a datetime
        raise ValidationError(where, "must be a list of YYYY-MM-DD dates")
    return frozenset(values)


@cache
def calendar_versions(name: str, directory: Path = CALENDAR_DIR) -> tuple[CalendarVersion, ...]:
    """The versions of calendar ``name`` from ``directory/<name>.yaml``, oldest first (read once per
    process).

    Raises:
        ValidationError: an unknown calendar, or a file that is not a list of versions with
            increasing ``effective_from`` dates (the key path is named).
    """
    if name not in CALENDARS or not (directory / f"{name}.yaml").is_file():
        raise ValidationError("calendar", f"unknown calendar {name!r}; known: {', '.join(CALENDARS)}")
    try:
        data = yaml.load((directory / f"{name}.yaml").read_text(encoding="utf-8"), Loader=_LOADER)
    except yaml.YAMLError as exc:
        raise ValidationError(f"{name}.yaml", f"is not YAML ({str(exc).splitlines()[0]})") from None
    versions = data.get("versions") if isinstance(data, dict) else None
    if not isinstance(data, dict) or data.get("calendar") != name or not isinstance(versions, list):
        raise ValidationError(f"{name}.yaml", f"must hold calendar: {name} and a list of versions")
    found: list[CalendarVersion] = []
    for i, v in enumerate(data["versions"]):
        where = f"{name}.yaml: versions[{i}]"
        try:
            first, last = (int(y) for y in v["years"])
            calendar = WorkingCalendar(
                zone=str(v["zone"]),
                work_periods=tuple(_period(p, f"{where}.work_periods") for p in v["work_periods"]),
                holidays=_dates(v["holidays"], f"{where}.holidays"),
                makeup_workdays=_dates(v.get("makeup_workdays") or [], f"{where}.makeup_workdays"),
            )
            version = CalendarVersion(
                name, str(v["version"]), v["effective_from"], str(v["source"]), (first, last), calendar
            )
        except ValidationError as exc:
            raise ValidationError(f"{where}.{exc.field}", exc.reason) from None
        except (KeyError, TypeError, ValueError) as exc:
            raise ValidationError(where, f"is not a calendar version ({exc!r})") from exc
        if type(version.effective_from) is not date or first > last:
            raise ValidationError(where, "needs a date effective_from (not a time) and years [first, last]")
        if not isinstance(version.effective_from, date) or (
            found and version.effective_from <= found[-1].effective_from
        ):
            raise ValidationError(f"{where}.effective_from", "must be a date after the previous version's")
        if any(v.version == version.version for v in found):
            raise ValidationError(f"{where}.version", f"{version.version!r} names an earlier version too")
        found.append(version)
    if not found:
        raise ValidationError(f"{name}.yaml", "holds no version")
    return tuple(found)


def calendar_in_force(name: str, at: datetime, directory: Path = CALENDAR_DIR) -> str:
    """The reference (``name@version``) of the version of calendar ``name`` in force at ``at``
    (aware): the last whose ``effective_from`` (UTC date) is not after it. An item keeps it for life.

    Raises:
        ValidationError: an unknown calendar, or ``at`` before its first version.
    """
    day = _utc(at, "at").date()
    versions = [v for v in calendar_versions(name, directory) if v.effective_from <= day]
    if not versions:
        raise ValidationError("calendar", f"no version of {name!r} is in force on {day}")
    return f"{name}@{versions[-1].version}"


@cache
def calendar_for(reference: str) -> WorkingCalendar:
    """The working calendar of ``reference``: ``name@version``, or a bare ``name`` for the first
    version (items registered before calendars had versions name only the calendar).

    Raises:
        ValidationError: an unknown calendar or version.
    """
    name, _, version = reference.partition("@")
    versions = calendar_versions(name)
    if not version:
        return versions[0].calendar
    for v in versions:
        if v.version == version:
            return v.calendar
    known = ", ".join(v.version for v in versions)
    raise ValidationError("calendar", f"unknown version {version!r} of calendar {name!r}; known: {known}")
