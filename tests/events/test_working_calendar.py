"""Working-time calendar: every expected value below was worked out by hand (arithmetic in comments).

China calendar: Asia/Shanghai (UTC+8, no DST), 09:00–12:00 and 13:30–17:30 = 7 working hours a day.
US calendar: America/New_York (EST = UTC-5, EDT = UTC-4), 08:00–16:00 = 8 working hours a day.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import holidays
import pytest

from duban.calendar_data import china_calendar, us_calendar
from events.errors import ValidationError
from events.working_calendar import CHINA_WORK_PERIODS, WorkingCalendar, hours_to_seconds

SH = ZoneInfo("Asia/Shanghai")
NY = ZoneInfo("America/New_York")
CN = china_calendar([2024])
US = us_calendar([2022])


def cst(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=SH)


def et(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=NY)


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


# --- the holidays library as source -------------------------------------------------------------


def test_china_2024_makeup_days_match_the_official_calendar() -> None:
    # State Council notice for 2024 (调休 Sundays/Saturdays worked), read from holidays' weekend_workdays
    # and restricted to 2024 (the library's set also carries cross-year rows such as 2001-12-29).
    assert date(2024, 9, 29) in CN.makeup_workdays
    assert sorted(CN.makeup_workdays) == [
        date(2024, 2, 4),
        date(2024, 2, 18),
        date(2024, 4, 7),
        date(2024, 4, 28),
        date(2024, 5, 11),
        date(2024, 9, 14),
        date(2024, 9, 29),
        date(2024, 10, 12),
    ]
    assert all(d.weekday() in (5, 6) and CN.is_working_day(d) for d in CN.makeup_workdays)


def test_china_2024_holidays_and_agreement_with_the_library() -> None:
    # National Day 2024: Oct 1 (Tue) .. Oct 7 (Mon) off, Oct 8 (Tue) back at work.
    assert all(not CN.is_working_day(date(2024, 10, day)) for day in range(1, 8))
    assert CN.is_working_day(date(2024, 10, 8))
    assert not CN.is_working_day(date(2024, 9, 28))  # Saturday, not a make-up day
    library = holidays.China(years=2024)
    day = date(2024, 1, 1)
    while day.year == 2024:
        assert CN.is_working_day(day) == library.is_working_day(day), day
        day += timedelta(days=1)


def test_us_calendar_has_thanksgiving_and_no_makeup_days() -> None:
    assert date(2022, 11, 24) in US.holidays  # Thanksgiving, Thursday
    assert date(2022, 4, 18) in US.holidays  # Patriots' Day (MA)
    assert US.makeup_workdays == frozenset()
    assert US.is_working_day(date(2022, 11, 25))  # Friday after Thanksgiving is worked in MA


def test_makeup_day_wins_over_holiday_and_weekend() -> None:
    sunday = date(2024, 9, 29)
    cal = WorkingCalendar("Asia/Shanghai", CHINA_WORK_PERIODS, holidays=frozenset({sunday}))
    assert not cal.is_working_day(sunday)
    cal = WorkingCalendar(
        "Asia/Shanghai", CHINA_WORK_PERIODS, holidays=frozenset({sunday}), makeup_workdays=frozenset({sunday})
    )
    assert cal.is_working_day(sunday)


# --- add_working_hours ----------------------------------------------------------------------------


def test_litter_anchor_four_working_hours_across_a_weekend() -> None:
    # Fri 2024-06-14 16:00 CST: 16:00→17:30 = 1.5 h; Sat, Sun off; Mon 06-17 09:00 + 2.5 h = 11:30 CST
    # = 03:30 UTC.
    assert CN.add_working_hours(cst(2024, 6, 14, 16), 4) == utc(2024, 6, 17, 3, 30)
    # The same start given in UTC (08:00 UTC = 16:00 CST) gives the same instant.
    assert CN.add_working_hours(utc(2024, 6, 14, 8), Decimal(4)) == utc(2024, 6, 17, 3, 30)


def test_across_china_national_day() -> None:
    # Mon 2024-09-30 16:00: 1.5 h to 17:30; Oct 1–7 off; Tue 10-08 09:00 + 2.5 h = 11:30 CST = 03:30 UTC.
    assert CN.add_working_hours(cst(2024, 9, 30, 16), 4) == utc(2024, 10, 8, 3, 30)


def test_across_us_thanksgiving() -> None:
    # Wed 2022-11-23 14:00 EST: 2 h to 16:00; Thu 24 off; Fri 25 08:00 + 2 h = 10:00 EST = 15:00 UTC.
    assert US.add_working_hours(et(2022, 11, 23, 14), 4) == utc(2022, 11, 25, 15)


def test_makeup_sunday_is_counted_as_working() -> None:
    # Fri 2024-09-27 16:00: 1.5 h; Sat 28 off; Sun 29 (调休, worked) 09:00 + 2.5 h = 11:30 CST = 03:30 UTC.
    assert CN.add_working_hours(cst(2024, 9, 27, 16), 4) == utc(2024, 9, 29, 3, 30)


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        # Before opening, Tue 2024-06-18 07:00: counting starts 09:00; + 2 h = 11:00 CST = 03:00 UTC.
        (cst(2024, 6, 18, 7), utc(2024, 6, 18, 3)),
        # Lunch break, 12:30: counting starts 13:30; + 2 h = 15:30 CST = 07:30 UTC.
        (cst(2024, 6, 18, 12, 30), utc(2024, 6, 18, 7, 30)),
        # After close, 18:00: Wed 06-19 09:00 + 2 h = 11:00 CST = 03:00 UTC.
        (cst(2024, 6, 18, 18), utc(2024, 6, 19, 3)),
        # Sunday 2024-06-16 10:00: Mon 06-17 09:00 + 2 h = 11:00 CST = 03:00 UTC.
        (cst(2024, 6, 16, 10), utc(2024, 6, 17, 3)),
        # Inside, across lunch, 11:00: 1 h to 12:00, 13:30 + 1 h = 14:30 CST = 06:30 UTC.
        (cst(2024, 6, 18, 11), utc(2024, 6, 18, 6, 30)),
    ],
)
def test_start_outside_working_hours(start: datetime, expected: datetime) -> None:
    assert CN.add_working_hours(start, 2) == expected


def test_deadline_ending_exactly_at_a_period_end() -> None:
    # Tue 2024-06-18 09:00 + 3 h = 12:00 CST = 04:00 UTC (the morning's end, not 13:30).
    assert CN.add_working_hours(cst(2024, 6, 18, 9), 3) == utc(2024, 6, 18, 4)
    # 09:00 + 7 h = the whole day: 17:30 CST = 09:30 UTC (not Wed 09:00).
    assert CN.add_working_hours(cst(2024, 6, 18, 9), 7) == utc(2024, 6, 18, 9, 30)
    # Started at the close itself, 0 h: the start; 1 h: Wed 09:00 + 1 h = 10:00 CST = 02:00 UTC.
    assert CN.add_working_hours(cst(2024, 6, 18, 17, 30), 0) == utc(2024, 6, 18, 9, 30)
    assert CN.add_working_hours(cst(2024, 6, 18, 17, 30), 1) == utc(2024, 6, 19, 2)


def test_decimal_hours_to_the_second() -> None:
    # 1.5 h from Tue 09:00 = 10:30 CST = 02:30 UTC; 0.25 h = 900 s → 09:15 CST = 01:15 UTC.
    assert CN.add_working_hours(cst(2024, 6, 18, 9), Decimal("1.5")) == utc(2024, 6, 18, 2, 30)
    assert CN.add_working_hours(cst(2024, 6, 18, 9), Decimal("0.25")) == utc(2024, 6, 18, 1, 15)
    assert hours_to_seconds(Decimal("2.5")) == 9000  # 2.5 × 3600
    assert hours_to_seconds(Decimal("0.00013")) == 0  # 0.468 s → 0 (ROUND_HALF_UP)
    assert hours_to_seconds(Decimal("0.00014")) == 1  # 0.504 s → 1
    assert hours_to_seconds(Decimal("0.000125")) == 0  # 0.45 s → 0


def test_dst_spring_forward_keeps_local_hours() -> None:
    # Fri 2022-03-11 14:00 EST (19:00 UTC): 2 h to 16:00; DST starts Sun 03-13; Mon 03-14 08:00 EDT
    # + 2 h = 10:00 EDT = 14:00 UTC (with the old -5 offset it would wrongly be 15:00 UTC).
    assert US.add_working_hours(et(2022, 3, 11, 14), 4) == utc(2022, 3, 14, 14)
    # Fri 08:00 EST + 16 h = Fri 8 h + Mon 8 h → Mon 16:00 EDT = 20:00 UTC (a period's end, not Tue).
    assert US.add_working_hours(et(2022, 3, 11, 8), 16) == utc(2022, 3, 14, 20)


def test_dst_fall_back_keeps_local_hours() -> None:
    # Fri 2022-11-04 14:00 EDT (18:00 UTC): 2 h; DST ends Sun 11-06; Mon 11-07 08:00 EST + 2 h
    # = 10:00 EST = 15:00 UTC (with the old -4 offset it would wrongly be 14:00 UTC).
    assert US.add_working_hours(et(2022, 11, 4, 14), 4) == utc(2022, 11, 7, 15)


# --- add_working_days ------------------------------------------------------------------------------


def test_greenery_anchor_five_working_days_across_national_day_and_a_makeup_day() -> None:
    # From Mon 2024-09-30: Oct 1–7 off; Tue 8 = 1, Wed 9 = 2, Thu 10 = 3, Fri 11 = 4,
    # Sat 12 (调休, worked) = 5 → close 17:30 CST = 09:30 UTC.
    assert CN.add_working_days(cst(2024, 9, 30, 10), 5) == utc(2024, 10, 12, 9, 30)


def test_working_days_makeup_sunday() -> None:
    # From Fri 2024-09-27: Sat 28 off; Sun 29 (worked) = day 1 → 17:30 CST = 09:30 UTC.
    assert CN.add_working_days(cst(2024, 9, 27, 10), 1) == utc(2024, 9, 29, 9, 30)


def test_working_days_start_on_a_non_working_day() -> None:
    # Sat 2024-06-15: Mon 17 is day 1 → 17:30 CST = 09:30 UTC; same as from Fri 2024-06-14.
    assert CN.add_working_days(cst(2024, 6, 15, 10), 1) == utc(2024, 6, 17, 9, 30)
    assert CN.add_working_days(cst(2024, 6, 14, 10), 1) == utc(2024, 6, 17, 9, 30)


def test_working_days_across_thanksgiving() -> None:
    # From Wed 2022-11-23: Thu 24 off; Fri 25 = 1; Sat, Sun off; Mon 28 = 2 → 16:00 EST = 21:00 UTC.
    assert US.add_working_days(et(2022, 11, 23, 10), 2) == utc(2022, 11, 28, 21)


def test_zero_working_days_is_the_current_or_next_close() -> None:
    # Tue 2024-06-18 10:00 → 17:30 CST = 09:30 UTC; after close (18:00) → Wed 17:30 = 09:30 UTC;
    # Sunday 06-16 → Mon 17:30 = 09:30 UTC.
    assert CN.add_working_days(cst(2024, 6, 18, 10), 0) == utc(2024, 6, 18, 9, 30)
    assert CN.add_working_days(cst(2024, 6, 18, 18), 0) == utc(2024, 6, 19, 9, 30)
    assert CN.add_working_days(cst(2024, 6, 16, 10), 0) == utc(2024, 6, 17, 9, 30)


# --- add_calendar_days -----------------------------------------------------------------------------


def test_calendar_days_keep_local_wall_time_across_dst() -> None:
    # Sat 2022-03-12 09:00 EST (14:00 UTC) + 1 day = Sun 09:00 EDT = 13:00 UTC (23 h later).
    assert US.add_calendar_days(et(2022, 3, 12, 9), 1) == utc(2022, 3, 13, 13)
    # Sat 2022-11-05 09:00 EDT (13:00 UTC) + 1 day = Sun 09:00 EST = 14:00 UTC (25 h later).
    assert US.add_calendar_days(et(2022, 11, 5, 9), 1) == utc(2022, 11, 6, 14)
    # Sat 2022-03-12 02:30 EST + 1 day = Sun 02:30, which does not exist: read at -5 → 07:30 UTC
    # (= 03:30 EDT).
    assert US.add_calendar_days(et(2022, 3, 12, 2, 30), 1) == utc(2022, 3, 13, 7, 30)
    # No DST in Shanghai: Mon 2024-09-30 10:00 CST + 7 days = 2024-10-07 10:00 CST = 02:00 UTC.
    assert CN.add_calendar_days(cst(2024, 9, 30, 10), 7) == utc(2024, 10, 7, 2)


# --- working_seconds_between -----------------------------------------------------------------------


def test_working_seconds_over_a_weekend() -> None:
    # Fri 2024-06-14 16:00 → Mon 06-17 11:30 CST: 1.5 h + 2.5 h = 4 h = 14400 s.
    assert CN.working_seconds_between(cst(2024, 6, 14, 16), cst(2024, 6, 17, 11, 30)) == 14400
    # Mon 06-17 00:00 → Mon 06-24 00:00: 5 days × 7 h = 35 h = 126000 s.
    assert CN.working_seconds_between(cst(2024, 6, 17), cst(2024, 6, 24)) == 126000


def test_working_seconds_over_holidays() -> None:
    # Sun 2024-09-29 (worked) 7 h + Mon 09-30 7 h + Oct 1–7 off + Tue 10-08 7 h = 21 h = 75600 s.
    assert CN.working_seconds_between(cst(2024, 9, 29), cst(2024, 10, 9)) == 75600
    # Thanksgiving week, Mon 2022-11-21 → Mon 11-28: Mon, Tue, Wed, Fri × 8 h = 32 h = 115200 s.
    assert US.working_seconds_between(et(2022, 11, 21), et(2022, 11, 28)) == 115200
    # Across spring-forward, Fri 2022-03-11 14:00 EST → Mon 03-14 10:00 EDT: 2 h + 2 h = 14400 s.
    assert US.working_seconds_between(et(2022, 3, 11, 14), et(2022, 3, 14, 10)) == 14400


def test_working_seconds_empty_interval() -> None:
    assert CN.working_seconds_between(cst(2024, 6, 18, 10), cst(2024, 6, 18, 10)) == 0
    assert CN.working_seconds_between(cst(2024, 6, 18, 11), cst(2024, 6, 18, 10)) == 0
    assert CN.working_seconds_between(cst(2024, 6, 18, 12), cst(2024, 6, 18, 13, 30)) == 0  # lunch


def test_working_seconds_is_the_inverse_of_add_working_hours() -> None:
    amounts: list[Decimal | int] = [0, Decimal("0.25"), 1, Decimal("2.5"), 4, 7, Decimal("17.75"), 40]
    grids = [
        # China around the 2024 make-up Sunday and National Day, every 50 minutes.
        (CN, cst(2024, 9, 26), cst(2024, 10, 14), timedelta(minutes=50)),
        # New York across both 2022 DST weekends, every 37 minutes.
        (US, et(2022, 3, 10), et(2022, 3, 16), timedelta(minutes=37)),
        (US, et(2022, 11, 3), et(2022, 11, 9), timedelta(minutes=37)),
    ]
    for cal, first, last, step in grids:
        start = first
        while start < last:
            for hours in amounts:
                end = cal.add_working_hours(start, hours)
                assert end.tzinfo is UTC
                assert cal.working_seconds_between(start, end) == Decimal(hours) * 3600, (start, hours)
            start += step


# --- validation --------------------------------------------------------------------------------------


def test_naive_start_is_rejected_naming_start() -> None:
    naive = datetime(2024, 6, 18, 10)
    for call in (CN.add_working_hours, CN.add_working_days, CN.add_calendar_days):
        with pytest.raises(ValidationError) as err:
            call(naive, 1)
        assert err.value.field == "start"
    with pytest.raises(ValidationError) as err:
        CN.working_seconds_between(naive, cst(2024, 6, 18, 11))
    assert err.value.field == "a"


def test_negative_amounts_are_rejected() -> None:
    with pytest.raises(ValidationError) as err:
        CN.add_working_hours(cst(2024, 6, 18, 10), -1)
    assert err.value.field == "hours"
    with pytest.raises(ValidationError) as err:
        CN.add_working_hours(cst(2024, 6, 18, 10), 1.5)  # type: ignore[arg-type]
    assert err.value.field == "hours"
    for call in (CN.add_working_days, CN.add_calendar_days):
        with pytest.raises(ValidationError) as err:
            call(cst(2024, 6, 18, 10), -1)
        assert err.value.field == "days"


@pytest.mark.parametrize(
    "periods",
    [
        (),
        ((time(12), time(9)),),  # ends before it starts
        ((time(9), time(9)),),  # empty
        ((time(13, 30), time(17, 30)), (time(9), time(12))),  # not sorted
        ((time(9), time(13)), (time(12), time(17))),  # overlapping
        ((time(9, tzinfo=UTC), time(12, tzinfo=UTC)),),  # aware times
    ],
)
def test_bad_work_periods_are_rejected(periods: tuple[tuple[time, time], ...]) -> None:
    with pytest.raises(ValidationError) as err:
        WorkingCalendar("Asia/Shanghai", periods)
    assert err.value.field == "work_periods"


def test_bad_zone_and_weekend_are_rejected() -> None:
    with pytest.raises(ValidationError) as err:
        WorkingCalendar("Mars/Olympus", CHINA_WORK_PERIODS)
    assert err.value.field == "zone"
    with pytest.raises(ValidationError) as err:
        WorkingCalendar("Asia/Shanghai", CHINA_WORK_PERIODS, weekend=frozenset(range(7)))
    assert err.value.field == "weekend"
    with pytest.raises(ValidationError) as err:
        us_calendar([2022], subdiv="XX")
    assert err.value.field == "subdiv"
