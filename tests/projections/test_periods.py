"""Reporting periods (duban.periods.parse_period): half-open ranges of local dates ``[start, end)``.

Every expected range below is worked out by hand from the calendar, not from the code under test.
"""

from __future__ import annotations

from datetime import date

import pytest

from events.errors import ValidationError
from projections.periods import parse_period

D = date
SPELLINGS = ("2022-05", "2022-05-H1", "2022-W19", "2022", "2022-05-03")
"""The accepted spellings the rejection reason must list (module docstring, ``duban rank --help``)."""


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        # months: [first day, first day of the next month)
        ("2022-05", D(2022, 5, 1), D(2022, 6, 1)),
        ("2022-04", D(2022, 4, 1), D(2022, 5, 1)),
        ("2022-12", D(2022, 12, 1), D(2023, 1, 1)),
        ("2022-02", D(2022, 2, 1), D(2022, 3, 1)),
        ("2024-02", D(2024, 2, 1), D(2024, 3, 1)),
        ("1900-02", D(1900, 2, 1), D(1900, 3, 1)),
        ("2000-02", D(2000, 2, 1), D(2000, 3, 1)),
        # half months: H1 = days 1–15, H2 = day 16 to the end of the month
        ("2022-05-H1", D(2022, 5, 1), D(2022, 5, 16)),
        ("2022-05-H2", D(2022, 5, 16), D(2022, 6, 1)),
        ("2022-04-H2", D(2022, 4, 16), D(2022, 5, 1)),
        ("2022-02-H2", D(2022, 2, 16), D(2022, 3, 1)),
        ("2024-02-H1", D(2024, 2, 1), D(2024, 2, 16)),
        ("2024-02-H2", D(2024, 2, 16), D(2024, 3, 1)),
        ("2022-12-H2", D(2022, 12, 16), D(2023, 1, 1)),
        # ISO weeks: Monday to Sunday
        ("2022-W19", D(2022, 5, 9), D(2022, 5, 16)),
        ("2022-W01", D(2022, 1, 3), D(2022, 1, 10)),  # 2022-01-01 is a Saturday, in 2021-W52
        ("2020-W01", D(2019, 12, 30), D(2020, 1, 6)),  # week 1 holds 2020's first Thursday (01-02)
        ("2020-W53", D(2020, 12, 28), D(2021, 1, 4)),  # 2020 is a long ISO year
        ("2015-W53", D(2015, 12, 28), D(2016, 1, 4)),
        # years
        ("2022", D(2022, 1, 1), D(2023, 1, 1)),
        ("2024", D(2024, 1, 1), D(2025, 1, 1)),
        # single days
        ("2022-05-03", D(2022, 5, 3), D(2022, 5, 4)),
        ("2024-02-29", D(2024, 2, 29), D(2024, 3, 1)),
        ("2022-12-31", D(2022, 12, 31), D(2023, 1, 1)),
        # surrounding blanks are ignored
        ("  2022-05\n", D(2022, 5, 1), D(2022, 6, 1)),
    ],
)
def test_accepted_periods(text: str, start: date, end: date) -> None:
    assert parse_period(text) == (start, end)


@pytest.mark.parametrize(
    ("text", "days"),
    [
        ("2024-02", 29),  # leap year
        ("2023-02", 28),
        ("1900-02", 28),  # divisible by 100, not by 400: not a leap year
        ("2000-02", 29),  # divisible by 400: a leap year
        ("2022-05", 31),
        ("2022-06", 30),
        ("2024-02-H1", 15),
        ("2024-02-H2", 14),
        ("2023-02-H2", 13),
        ("2022-05-H2", 16),
        ("2022-06-H2", 15),
        ("2022-W19", 7),
        ("2020-W53", 7),
        ("2022", 365),
        ("2024", 366),
        ("2022-05-03", 1),
    ],
)
def test_period_lengths(text: str, days: int) -> None:
    start, end = parse_period(text)
    assert (end - start).days == days


def test_the_halves_tile_the_month() -> None:
    for month in ("2022-02", "2024-02", "2022-04", "2022-05"):
        first, second = parse_period(f"{month}-H1"), parse_period(f"{month}-H2")
        whole = parse_period(month)
        assert (first[0], first[1], second[1]) == (whole[0], second[0], whole[1])


def test_period_is_made_of_dates_not_datetimes() -> None:
    start, end = parse_period("2022-W19")
    assert type(start) is date and type(end) is date


@pytest.mark.parametrize(
    "text",
    [
        "2022-13",  # no month 13
        "2022-00",
        "2022-W54",  # no ISO week 54
        "2022-W00",
        "2021-W53",  # 2021 has 52 ISO weeks
        "2022-05-H3",  # only two halves
        "2022-05-H0",
        "2022-5",  # month needs two digits
        "22-05",
        "May 2022",
        "2022/05",
        "2022-02-30",
        "2023-02-29",  # not a leap year
        "0000",  # no year 0
        "",
        "   ",
        "last week",
    ],
)
def test_rejected_periods_name_the_field_and_the_accepted_spellings(text: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_period(text)
    err = caught.value
    assert err.field == "period"
    for spelling in SPELLINGS:
        assert spelling in err.reason
    assert repr(text.strip()) in err.reason  # the offending text is quoted back
    assert str(err).startswith("period: ")


@pytest.mark.parametrize("text", ["9999-12", "9999-12-H2", "9999-W52", "9999-12-31"])
def test_periods_ending_after_year_9999_are_a_validation_error(text: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_period(text)
    assert caught.value.field == "period"
