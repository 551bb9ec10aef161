"""Reporting periods as half-open ranges of local dates ``[start, end)``.

Accepted spellings (DOMAIN.md "Cadence": weekly, half-monthly, monthly notices):
``2022-05`` (a month), ``2022-05-H1`` / ``2022-05-H2`` (days 1–15 / 16–end), ``2022-W19`` (an ISO
week, Monday to Sunday), ``2022`` (a year), ``2022-05-03`` (a day).
"""

from __future__ import annotations

import calendar
import re
from datetime import date, timedelta

from events import bounds
from events.errors import ValidationError

_MONTH = re.compile(r"^(\d{4})-(\d{2})$", re.ASCII)
_HALF = re.compile(r"^(\d{4})-(\d{2})-H([12])$", re.ASCII)
_WEEK = re.compile(r"^(\d{4})-W(\d{2})$", re.ASCII)
_YEAR = re.compile(r"^(\d{4})$", re.ASCII)
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$", re.ASCII)


PERIOD_EARLIEST = date(1900, 1, 1)
"""Periods lie from 1900 to 2199 (the latest a stored event may carry), spelled in ASCII digits."""


def parse_period(text: str) -> tuple[date, date]:
    """The local dates ``[start, end)`` of a period spelled as in the module docstring.

    Raises:
        ValidationError: field ``period``, with the accepted spellings in the reason.
    """
    text = text.strip()
    start, end = _span(text)
    if start < PERIOD_EARLIEST or end > bounds.STORED_LATEST.date():
        raise ValidationError("period", f"{text!r} must lie from 1900 to 2199")
    return start, end


def _span(text: str) -> tuple[date, date]:
    try:
        if m := _HALF.match(text):
            year, month, half = int(m[1]), int(m[2]), int(m[3])
            first = date(year, month, 1)
            days = calendar.monthrange(year, month)[1]
            return (
                (first, first + timedelta(days=15))
                if half == 1
                else (first + timedelta(days=15), first + timedelta(days=days))
            )
        if m := _MONTH.match(text):
            year, month = int(m[1]), int(m[2])
            first = date(year, month, 1)
            return first, first + timedelta(days=calendar.monthrange(year, month)[1])
        if m := _WEEK.match(text):
            monday = date.fromisocalendar(int(m[1]), int(m[2]), 1)
            return monday, monday + timedelta(days=7)
        if m := _YEAR.match(text):
            return date(int(m[1]), 1, 1), date(int(m[1]) + 1, 1, 1)
        if not _DAY.match(text):
            raise ValueError("not one of the accepted spellings")
        day = date.fromisoformat(text)
        return day, day + timedelta(days=1)
    except (ValueError, OverflowError) as exc:
        raise ValidationError(
            "period",
            f"{text!r} is not a period ({exc}); use 2022-05, 2022-05-H1, 2022-W19, 2022 or 2022-05-03",
        ) from None


def previous_period(text: str) -> str:
    """The period before ``text``, spelled the same way (the month before a month, the half-month
    before a half-month, the ISO week, year or day before).

    Raises:
        ValidationError: as :func:`parse_period`.
    """
    start, _ = parse_period(text)
    text = text.strip()
    if m := _HALF.match(text):
        if m[3] == "2":
            return f"{m[1]}-{m[2]}-H1"
        before = start - timedelta(days=1)
        return f"{before:%Y-%m}-H2"
    if _MONTH.match(text):
        return f"{start - timedelta(days=1):%Y-%m}"
    if _WEEK.match(text):
        year, week, _ = (start - timedelta(days=7)).isocalendar()
        return f"{year}-W{week:02d}"
    if _YEAR.match(text):
        return str(start.year - 1)
    return (start - timedelta(days=1)).isoformat()


def canonical_period(text: str) -> str:
    """``text`` checked and stripped (one spelling per period: a closed period is found by it).

    Raises:
        ValidationError: as :func:`parse_period`.
    """
    parse_period(text)
    return text.strip()
