"""Working calendars as versioned data (issue 9): drafted from ``holidays``, kept per item for life."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from pathlib import Path

import holidays
import pytest
from helpers.items import cst, litter
from typer.testing import CliRunner

from duban.calendar_data import calendar_file, drafted_calendar, version_yaml
from duban.cli import app
from events.errors import ValidationError
from events.working_calendar import CALENDARS, calendar_for, calendar_in_force, calendar_versions
from workflows.item_policy import apply_rulebook
from workflows.rulebook import DEFAULT_RULEBOOK_PATH, load_rulebook


@pytest.mark.parametrize("name", CALENDARS)
def test_each_shipped_version_is_what_its_holidays_release_drafts(name: str) -> None:
    """A version is reviewed data: it must stay what the library it names produced. With another
    release installed the comparison would test that release, not the data: draft a new version."""
    for v in calendar_versions(name):
        if not v.source.startswith(f"holidays {holidays.__version__},"):
            pytest.skip(f"{name}@{v.version} was drafted by {v.source}; installed: {holidays.__version__}")
        drafted = drafted_calendar(name, *v.years)
        assert (v.calendar.holidays, v.calendar.makeup_workdays) == (
            drafted.holidays,
            drafted.makeup_workdays,
        )
        assert (v.calendar.zone, v.calendar.work_periods) == (drafted.zone, drafted.work_periods)


def test_known_days_of_the_shipped_calendars() -> None:
    """Spot checks against the State Council's 2024 notice and the US/Massachusetts statutes."""
    china, us = calendar_for("china@2026.1"), calendar_for("us-ma@2026.1")
    assert date(2024, 10, 1) in china.holidays and date(2024, 9, 29) in china.makeup_workdays  # 国庆, 调休
    assert date(2024, 2, 4) in china.makeup_workdays  # the Sunday before the Spring Festival
    assert date(2022, 4, 18) in us.holidays  # Patriots' Day, Massachusetts only
    assert date(2022, 7, 4) in us.holidays and not us.makeup_workdays
    assert calendar_for("china") is china  # a bare name: the first version


def test_an_item_keeps_the_version_in_force_at_its_registration(tmp_path: Path) -> None:
    reg = apply_rulebook(litter(cst(11, 2, 9, 0)), load_rulebook(DEFAULT_RULEBOOK_PATH), "china")
    assert reg.policy is not None and reg.policy.calendar == "china@2026.1"
    kept = apply_rulebook(litter(cst(11, 2, 9, 0)), load_rulebook(DEFAULT_RULEBOOK_PATH), "china@2026.1")
    assert kept.policy is not None and kept.resolution_deadline == reg.resolution_deadline
    two = calendar_file("china", "2026.1", date(1990, 1, 1), 2026, 2026) + version_yaml(
        "china", "2027.1", date(2027, 1, 1), 2026, 2027
    )
    (tmp_path / "china.yaml").write_text(two, encoding="utf-8")
    first, second = calendar_versions("china", tmp_path)
    assert (first.version, second.version, second.years) == ("2026.1", "2027.1", (2026, 2027))
    assert calendar_in_force("china", datetime(2026, 12, 31, 23, 0, tzinfo=UTC), tmp_path) == "china@2026.1"
    assert calendar_in_force("china", datetime(2027, 1, 1, tzinfo=UTC), tmp_path) == "china@2027.1"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("calendar: us-ma\nversions: []\n", "china.yaml: must hold calendar: china and a list of versions"),
        ("calendar: china\nversions: []\n", "china.yaml: holds no version"),
        ("calendar: [china\n", "china.yaml: is not YAML"),
        (
            "calendar: china\nversions:\n  - version: x\n",
            "china.yaml: versions[0]: is not a calendar version",
        ),
    ],
)
def test_a_broken_calendar_file_is_refused_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "china.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(ValidationError) as info:
        calendar_versions("china", tmp_path)
    assert str(info.value).startswith(message)


def test_versions_must_come_in_order_of_their_effective_dates(tmp_path: Path) -> None:
    later = calendar_file("china", "b", date(2027, 1, 1), 2026, 2026)
    earlier = version_yaml("china", "a", date(2026, 1, 1), 2026, 2026)
    (tmp_path / "china.yaml").write_text(later + earlier, encoding="utf-8")
    with pytest.raises(ValidationError, match=r"versions\[1\]\.effective_from: must be a date after"):
        calendar_versions("china", tmp_path)


def test_an_unknown_reference_is_refused() -> None:
    with pytest.raises(
        ValidationError, match=r"unknown version '1999\.9' of calendar 'china'; known: 2026\.1"
    ):
        calendar_for("china@1999.9")
    with pytest.raises(ValidationError, match="unknown calendar 'mars'"):
        calendar_for("mars")


def test_duban_calendars_lists_and_drafts() -> None:
    listed = CliRunner().invoke(app, ["calendars", "list"])
    assert listed.exit_code == 0 and listed.output.startswith(
        "china@2026.1  from 1990-01-01  years 2010-2040"
    )
    args = ["calendars", "draft", "us-ma", "--version", "2027.1", "--effective-from", "2027-01-01"]
    drafted = CliRunner().invoke(app, [*args, "--years", "2027-2027"])
    assert drafted.exit_code == 0 and "      - 2027-04-19\n" in drafted.output  # Patriots' Day 2027
    bad = CliRunner().invoke(app, [*args, "--years", "2027"])
    assert (bad.exit_code, bad.output) == (2, "error: years: '2027' is not FIRST-LAST, e.g. 2010-2040\n")


def test_a_registration_on_a_policy_with_a_bad_reference_names_the_field() -> None:
    from workflows.item_policy import check_policy

    reg = apply_rulebook(litter(cst(11, 2, 9, 0)), load_rulebook(DEFAULT_RULEBOOK_PATH), "china")
    assert reg.policy is not None
    with pytest.raises(ValidationError) as info:
        check_policy(dataclasses.replace(reg.policy, calendar="china@0.0"))
    assert info.value.field == "policy.calendar" and "unknown version '0.0'" in info.value.reason


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("--version 2026.1 --effective-from 2027-01-01", "version: china@2026.1 exists already"),
        (
            "--version 2027.1 --effective-from 1989-12-31 --years 1989-2027",
            "effective-from: must be after 1990-01-01",
        ),
        ("--version 2027.1 --effective-from 2045-01-01", "effective-from: must lie in the years it covers"),
        ("--version 2027.1 --effective-from 2027-W01-1", "effective-from: '2027-W01-1' is not a date"),
        ("--version ... --effective-from 2027-01-01", "version: must be 1 to 16 letters"),
        (
            "--version 2027.1 --effective-from 2027-01-01 --years ٢٠٢٦-٢٠٢٧",
            "years: '٢٠٢٦-٢٠٢٧' is not FIRST-LAST",
        ),
    ],
)
def test_a_draft_that_could_not_be_appended_is_refused(args: str, message: str) -> None:
    """Found by a new user: a draft reusing a version name, taking effect before the last version or
    outside the years it covers was printed, and once appended silently lost or broke the file."""
    done = CliRunner().invoke(app, ["calendars", "draft", "china", "--years", "2026-2027", *args.split()])
    assert done.exit_code == 2 and done.output.startswith(f"error: {message}"), done.output


def test_a_file_naming_one_version_twice_is_refused(tmp_path: Path) -> None:
    twice = calendar_file("china", "2026.1", date(1990, 1, 1), 2026, 2026) + version_yaml(
        "china", "2026.1", date(2027, 1, 1), 2026, 2027
    )
    (tmp_path / "china.yaml").write_text(twice, encoding="utf-8")
    with pytest.raises(ValidationError, match=r"versions\[1\]\.version: '2026\.1' names an earlier version"):
        calendar_versions("china", tmp_path)


def test_a_time_where_a_date_belongs_is_refused(tmp_path: Path) -> None:
    """YAML reads ``2024-01-02 00:00:00`` as a datetime, which passes for a date: a holiday so written
    was silently ignored, and an effective_from so written broke every lookup with a TypeError."""
    text = calendar_file("china", "2026.1", date(1990, 1, 1), 2026, 2026)
    (tmp_path / "china.yaml").write_text(
        text.replace("      - 2026-01-01\n", "      - 2026-01-01 00:00:00\n")
    )
    with pytest.raises(ValidationError, match=r"versions\[0\]\.holidays: must be a list of YYYY-MM-DD dates"):
        calendar_versions("china", tmp_path)
