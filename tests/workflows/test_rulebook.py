"""Rulebook: the default file, effective dating, rule matching, deadlines and rejections by field path.

Expected deadlines were worked out by hand (arithmetic in comments) on ``china_calendar([2026])``:
Asia/Shanghai (UTC+8, no DST), 09:00–12:00 and 13:30–17:30 = 7 working hours a day. 2026 days off
used below: 16–20 and 23 Feb (Spring Festival), 5–6 Apr (Qingming), 1–3 and 5–7 Oct (National Day);
make-up working days: Sat 14 Feb, Sat 10 Oct.
"""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from duban.calendar_data import china_calendar
from events.errors import ValidationError
from workflows.item_model import ESCALATION_LADDER
from workflows.rulebook import (
    DEFAULT_RULEBOOK_PATH,
    DEFAULT_WARNING_THRESHOLDS,
    LimitRule,
    Procedures,
    RulebookError,
    TimeLimit,
    TimeUnit,
    deadline,
    load_rulebook,
    parse_rulebook,
)

SH = ZoneInfo("Asia/Shanghai")
CN = china_calendar([2026])
RULEBOOK = load_rulebook(DEFAULT_RULEBOOK_PATH)


def cst(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=SH)


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


def tl(amount: int | str, unit: TimeUnit) -> TimeLimit:
    return TimeLimit(Decimal(amount), unit)


def raw() -> dict[str, Any]:
    """The default file as plain YAML data, to be broken by the rejection tests."""
    return copy.deepcopy(yaml.safe_load(DEFAULT_RULEBOOK_PATH.read_text(encoding="utf-8")))


# --- the default file and effective dating ----------------------------------------------------------


def test_default_file_holds_the_domain_anchors() -> None:
    v1 = RULEBOOK.in_force(cst(2026, 3, 1))
    assert v1.version == "2026.1"
    assert v1.effective_from == utc(2025, 12, 31, 16)  # 2026-01-01T00:00+08:00
    assert v1.warning_thresholds == DEFAULT_WARNING_THRESHOLDS == tuple(map(Decimal, ("0.5", "0.75", "0.8")))
    assert v1.limit_for("litter", "normal", "resolution") == tl(4, "working_hours")
    assert v1.limit_for("road_cleaning", "normal", "resolution") == tl(2, "working_hours")
    assert v1.limit_for("greenery", "normal", "resolution") == tl(5, "working_days")
    assert v1.limit_for("illegal_building", "normal", "response") == tl(4, "hours")
    assert v1.limit_for("illegal_building", "normal", "resolution") == tl(20, "calendar_days")
    assert v1.limit_for("litter", "normal", "response") == tl(1, "hours")  # *+* default
    assert v1.limit_for("fire_lane", "urgent", "resolution") == tl(24, "hours")
    assert v1.limit_for("litter", "normal", "arrival") is None
    assert tuple(r.name for r in v1.ladder) == ESCALATION_LADDER[1:]


def test_in_force_picks_the_version_by_registration_instant() -> None:
    with pytest.raises(ValidationError) as err:
        RULEBOOK.in_force(cst(2025, 12, 31, 23, 59, 59))
    assert err.value.field == "reported_at"
    assert RULEBOOK.in_force(cst(2026, 1, 1)).version == "2026.1"  # exactly effective_from
    assert RULEBOOK.in_force(cst(2026, 3, 1)).version == "2026.1"
    assert RULEBOOK.in_force(cst(2026, 6, 30, 23, 59, 59)).version == "2026.1"
    assert RULEBOOK.in_force(cst(2026, 7, 1)).version == "2026.2"  # exactly 2026-07-01T00:00+08:00
    assert RULEBOOK.in_force(utc(2026, 6, 30, 16)).version == "2026.2"  # the same instant in UTC
    assert RULEBOOK.in_force(cst(2027, 1, 1)).version == "2026.2"
    # the item stores the version id and gets its rules back later, whatever is in force then
    assert RULEBOOK.version("2026.1").limit_for("litter", "*", "resolution") == tl(4, "working_hours")
    assert RULEBOOK.version("2026.2").limit_for("litter", "*", "resolution") == tl(2, "working_hours")
    with pytest.raises(ValidationError) as err:
        RULEBOOK.version("2025.9")
    assert err.value.field == "version"


def test_in_force_refuses_a_naive_instant() -> None:
    with pytest.raises(ValidationError) as err:
        RULEBOOK.in_force(datetime(2026, 3, 1))
    assert err.value.field == "reported_at"


def rule(category: str, urgency: str, amount: object, unit: str) -> dict[str, Any]:
    limit = {"amount": amount, "unit": unit}
    return {"category": category, "urgency": urgency, "step": "resolution", "limit": limit}


def test_most_specific_rule_wins() -> None:
    data = raw()
    data["versions"][0]["limits"] = [
        rule("*", "*", 24, "hours"),
        rule("*", "urgent", 8, "hours"),
        rule("litter", "*", 4, "working_hours"),
        rule("litter", "urgent", 1, "hours"),
    ]
    v = parse_rulebook(data, "test").versions[0]
    assert v.limit_for("litter", "urgent", "resolution") == tl(1, "hours")  # exact
    assert v.limit_for("litter", "normal", "resolution") == tl(4, "working_hours")  # category+*
    assert v.limit_for("greenery", "urgent", "resolution") == tl(8, "hours")  # *+urgency
    assert v.limit_for("greenery", "normal", "resolution") == tl(24, "hours")  # *+*
    assert v.limit_for("greenery", "normal", "response") is None


# --- deadlines ---------------------------------------------------------------------------------------


def test_working_hours_across_the_spring_festival_makeup_day() -> None:
    litter = RULEBOOK.in_force(cst(2026, 2, 13)).limit_for("litter", "*", "resolution")
    assert litter == tl(4, "working_hours")
    # Fri 13 Feb 16:00 → 17:30 uses 1.5 h; Sat 14 Feb is a make-up working day: 09:00 + 2.5 h = 11:30
    # CST = 03:30 UTC.
    assert deadline(litter, cst(2026, 2, 13, 16), CN) == utc(2026, 2, 14, 3, 30)


def test_working_hours_of_version_2026_2_across_lunch() -> None:
    litter = RULEBOOK.in_force(cst(2026, 7, 1, 11)).limit_for("litter", "*", "resolution")
    assert litter == tl(2, "working_hours")
    # Wed 1 Jul 11:00 → 12:00 uses 1 h; 13:30 + 1 h = 14:30 CST = 06:30 UTC.
    assert deadline(litter, cst(2026, 7, 1, 11), CN) == utc(2026, 7, 1, 6, 30)


def test_working_days_across_national_day_and_a_makeup_day() -> None:
    greenery = tl(5, "working_days")
    # Start Tue 29 Sep (its own day never counts): Wed 30 Sep = 1; 1–3 Oct off, Sun 4 Oct, 5–7 Oct off;
    # Thu 8 Oct = 2, Fri 9 Oct = 3, Sat 10 Oct (make-up) = 4, Sun 11 Oct off, Mon 12 Oct = 5
    # → close of business 17:30 CST = 09:30 UTC.
    assert deadline(greenery, cst(2026, 9, 29, 10), CN) == utc(2026, 10, 12, 9, 30)


def test_calendar_days_ignore_holidays() -> None:
    demolition = tl(20, "calendar_days")
    # 10 Feb 09:15 CST + 20 days: 10 + 18 = 28 Feb (2026 is not a leap year), + 2 = 2 Mar 09:15 CST
    # = 01:15 UTC; the Spring Festival days off count like any other day.
    assert deadline(demolition, cst(2026, 2, 10, 9, 15), CN) == utc(2026, 3, 2, 1, 15)


def test_clock_hours_run_day_and_night() -> None:
    # 1 Oct 22:00 CST (a holiday, at night) + 4 h = 2 Oct 02:00 CST = 1 Oct 18:00 UTC.
    assert deadline(tl(4, "hours"), cst(2026, 10, 1, 22), CN) == utc(2026, 10, 1, 18)
    # Sat 21 Feb 23:30 CST + 1 h = 22 Feb 00:30 CST = 21 Feb 16:30 UTC.
    assert deadline(tl(1, "hours"), cst(2026, 2, 21, 23, 30), CN) == utc(2026, 2, 21, 16, 30)
    # 0.5 h = 1800 s: 08:00 UTC + 30 min.
    assert deadline(tl("0.5", "hours"), utc(2026, 3, 2, 8), CN) == utc(2026, 3, 2, 8, 30)
    with pytest.raises(ValidationError) as err:
        deadline(tl(1, "hours"), datetime(2026, 3, 2, 8), CN)
    assert err.value.field == "start"


def test_escalation_schedule_counts_each_delay_from_the_previous_rung() -> None:
    v = RULEBOOK.in_force(cst(2026, 4, 1))
    # Breach Fri 3 Apr 15:00 CST = 07:00 UTC. department_head: + 0 h = 07:00 UTC.
    # district_leader: + 1 working day after Fri 3 Apr: Sat 4, Sun 5 (Qingming), Mon 6 (observed) are
    #   off, Tue 7 Apr = 1 → 17:30 CST = 09:30 UTC.
    # district_order: + 3 after Tue 7 Apr: Wed 8, Thu 9, Fri 10 → 10 Apr 17:30 CST = 09:30 UTC.
    # city_order: + 5 after Fri 10 Apr: Mon 13 … Fri 17 → 17 Apr 17:30 CST = 09:30 UTC.
    assert v.escalation_schedule(cst(2026, 4, 3, 15), CN) == (
        ("department_head", utc(2026, 4, 3, 7)),
        ("district_leader", utc(2026, 4, 7, 9, 30)),
        ("district_order", utc(2026, 4, 10, 9, 30)),
        ("city_order", utc(2026, 4, 17, 9, 30)),
    )


# --- rejections name the field path -----------------------------------------------------------------

DELETE = object()
LITTER_AGAIN = {
    "category": "litter",
    "urgency": "*",
    "step": "resolution",
    "limit": {"amount": 3, "unit": "hours"},
}


def rejected(data: object) -> RulebookError:
    with pytest.raises(RulebookError) as err:
        parse_rulebook(data, "test.yaml")
    assert str(err.value) == f"test.yaml: {err.value.field}: {err.value.reason}"
    return err.value


def test_unknown_unit_message() -> None:
    data = raw()
    data["versions"][1]["limits"][3]["limit"]["unit"] = "fortnights"
    err = rejected(data)
    assert err.field == "versions[1].limits[3].limit.unit"
    assert err.reason == "must be one of working_hours, working_days, calendar_days, hours"


# Each case writes ``value`` at ``path`` (DELETE removes the key) and expects the error at that path.
@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("versions[1].limits[3].limit.unit", "fortnights"),  # unknown unit
        ("versions[0].limits[0].limit.amount", -1),  # negative amount
        ("versions[0].limits[1].limit.amount", "lots"),
        ("versions[0].ladder[1].delay.amount", 1.5),  # working days must be whole
        ("versions[0].warning_thresholds[2]", 0.6),  # 0.50, 0.75, 0.6: not increasing
        ("versions[0].warning_thresholds[2]", 0.75),  # 0.50, 0.75, 0.75: not strictly
        ("versions[0].warning_thresholds[0]", 0),  # outside (0, 1)
        ("versions[0].warning_thresholds[2]", 1),
        ("versions[0].warning_thresholds[1]", "nan"),
        ("versions[0].ladder[1].name", "district_order"),  # ladder out of order
        ("versions[0].ladder[0].name", "handling_unit"),  # level 0 is not a rung to time
        ("versions[0].ladder", []),
        ("versions[0].effective_from", datetime(2026, 1, 1)),  # naive (YAML 2026-01-01 00:00:00)
        ("versions[0].effective_from", "2026-01-01T00:00:00"),
        ("versions[0].effective_from", "2026-01-01"),
        ("versions[0].effective_from", "soon"),
        ("versions[1].version", "2026.1"),  # duplicate version
        ("versions[1].version", 2026.2),  # unquoted in YAML: a float
        ("versions[1].effective_from", "2025-12-31T00:00:00+08:00"),  # versions out of order
        ("versions[0].limits[2].step", DELETE),  # missing key
        ("versions[0].ladder", DELETE),
        ("versions[0].limits[0].limit.units", "hours"),  # unknown key
        ("versions[0].limits[0].step", "*"),  # a step is never a wildcard
        ("versions[0].limits[6]", LITTER_AGAIN),  # a second litter/*/resolution rule
        ("versions[0].procedures.report_in.unit", "minutes"),
        ("versions[0].procedures.extension_approvers[1]", ""),
        ("versions[0].procedures.extension_approvers", "duty_chief"),  # not a list
        ("versions[0].procedures.suspension_review.amount", 2.5),  # whole days
        ("versions[1].procedures.approvers", ["duty_chief"]),  # unknown key
    ],
)
def test_rejections_name_the_field_path(path: str, value: object) -> None:
    data = raw()
    *parents, last = [int(k) if k.isdigit() else k for k in re.findall(r"[^.\[\]]+", path)]
    target: Any = data
    for key in parents:
        target = target[key]
    if value is DELETE:
        del target[last]
    else:
        target[last] = value
    assert rejected(data).field == path


def test_root_must_be_a_mapping_of_versions() -> None:
    assert rejected([]).field == "rulebook"
    assert rejected({}).field == "versions"
    assert rejected({"versions": []}).field == "versions"


def test_yaml_floats_become_exact_decimals_and_thresholds_default() -> None:
    data = raw()
    data["versions"][0]["limits"][2]["limit"]["amount"] = 0.1
    del data["versions"][0]["warning_thresholds"]
    v = parse_rulebook(data, "test").versions[0]
    assert v.limits[2].limit.amount == Decimal("0.1")
    assert v.warning_thresholds == DEFAULT_WARNING_THRESHOLDS


def test_dataclasses_check_themselves() -> None:
    with pytest.raises(ValidationError) as err:
        TimeLimit(0.5, "hours")  # type: ignore[arg-type]
    assert err.value.field == "amount"
    with pytest.raises(ValidationError) as err:
        LimitRule("litter", "*", "*", tl(1, "hours"))
    assert err.value.field == "step"


def test_load_rulebook_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("versions: [\n", encoding="utf-8")
    with pytest.raises(RulebookError) as err:
        load_rulebook(bad)
    assert err.value.source == str(bad) and err.value.field == "rulebook"
    with pytest.raises(RulebookError) as err:
        load_rulebook(tmp_path / "missing.yaml")
    assert err.value.field == "rulebook"


def test_procedures_of_the_default_file_and_their_defaults() -> None:
    for v in load_rulebook(DEFAULT_RULEBOOK_PATH).versions:
        assert v.procedures == Procedures()  # the file states the defaults explicitly
    p = Procedures()
    assert p.report_in == tl("0.5", "hours")  # DOMAIN.md anchor: 30 minutes (Beijing)
    assert p.extension_approvers == ("duty_chief", "district_leader")
    assert (p.redispatch_window, p.suspension_review) == (tl(2, "working_hours"), tl(30, "calendar_days"))
    data = raw()
    del data["versions"][0]["procedures"]
    data["versions"][1]["procedures"] = {"extension_approvers": ["duty_chief"]}
    first, second = parse_rulebook(data, "test").versions
    assert first.procedures == Procedures()
    assert (
        second.procedures.extension_approvers == ("duty_chief",)
        and second.procedures.report_in == p.report_in
    )
