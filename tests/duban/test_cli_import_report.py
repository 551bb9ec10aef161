"""``duban import-report`` through typer's CliRunner: a Boston export's rows refused, named by
row and column, and the files it refuses whole."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
from helpers.cli import no_ambient_config  # noqa: F401 (autouse: no DUBAN_* variables, no ./duban.toml)
from helpers.paths import BOSTON_SAMPLE
from typer.testing import CliRunner

from duban.cli import app

needs_boston = pytest.mark.skipif(
    not BOSTON_SAMPLE.is_file(), reason=f"shared export missing: {BOSTON_SAMPLE}"
)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def invoke(runner: CliRunner, *args: str) -> Any:
    return runner.invoke(app, list(args))


def boston_header() -> list[str]:
    with BOSTON_SAMPLE.open(newline="", encoding="utf-8-sig") as handle:
        return next(csv.reader(handle))


def boston_row(header: list[str], **cells: str) -> list[str]:
    values = {
        "CASE_ENQUIRY_ID": "900000000001",
        "OPEN_DT": "2022-05-02 10:00:00",
        "TARGET_DT": "2022-05-03 10:00:00",
        "CLOSED_DT": "2022-05-03 09:00:00",
        "OnTime_Status": "ONTIME",
        "CASE_STATUS": "Closed",
        "TYPE": "Request for Pothole Repair",
        "REASON": "Highway Maintenance",
        "QUEUE": "PWDx_District 1C: Downtown",
        "Department": "PWDx",
        "neighborhood": "Back Bay",
        "ward": "Ward 5",
        "precinct": "0508",
        "Source": "Constituent Call",
        **cells,
    }
    return [values.get(name, "") for name in header]  # a repeated column name gets the same value


def write_boston(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(boston_header())
        writer.writerows(rows)
    return path


@needs_boston
def test_import_report_names_the_rejected_row_and_column(runner: CliRunner, tmp_path: Path) -> None:
    header = boston_header()
    path = write_boston(
        tmp_path / "cases.csv",
        [
            boston_row(header),  # row 2: good
            boston_row(header, CASE_ENQUIRY_ID="900000000002", OPEN_DT="05/02/2022 10:00"),  # row 3: bad
            boston_row(header, CASE_ENQUIRY_ID="900000000003", OPEN_DT="yesterday"),  # row 4: bad, alike
            boston_row(header, CASE_ENQUIRY_ID="900000000004", CASE_STATUS="Pending"),  # row 5: other
            boston_row(header, CASE_ENQUIRY_ID="900000000005", OPEN_DT="2022-13-01 10:00:00"),  # row 6
        ],
    )
    every = tmp_path / "refused.csv"
    result = invoke(runner, "import-report", str(path), "--profile", "boston311", "--rejected", str(every))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "5 rows read, 1 items, 4 rejected"
    assert len(lines) == 3  # the refusals grouped by column and kind of reason, most frequent first
    assert lines[1].startswith("  3 rows (3, 4, 6): OPEN_DT: cannot read '05/02/2022 10:00' as a date-time")
    assert lines[2].startswith("  1 row (5): CASE_STATUS: unknown status 'Pending'")
    with every.open(newline="", encoding="utf-8") as handle:
        refused = list(csv.DictReader(handle))
    assert [(r["row"], r["column"]) for r in refused] == [
        ("3", "OPEN_DT"), ("4", "OPEN_DT"), ("5", "CASE_STATUS"), ("6", "OPEN_DT")
    ]  # fmt: skip
    assert "'yesterday'" in refused[1]["reason"]


@needs_boston
def test_import_report_with_nothing_rejected(runner: CliRunner, tmp_path: Path) -> None:
    header = boston_header()
    path = write_boston(tmp_path / "good.csv", [boston_row(header)])
    result = invoke(runner, "import-report", str(path))  # boston311 is the default profile
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["1 rows read, 1 items, 0 rejected"]


@needs_boston
def test_import_report_unknown_profile_exits_2_naming_the_known_ones(
    runner: CliRunner, tmp_path: Path
) -> None:
    path = write_boston(tmp_path / "cases.csv", [boston_row(boston_header())])
    result = invoke(runner, "import-report", str(path), "--profile", "chicago311")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: ")
    assert "chicago311" in result.stderr
    assert "boston311" in result.stderr and "la311" in result.stderr


def test_import_report_missing_file_exits_2(runner: CliRunner, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-export.csv"
    result = invoke(runner, "import-report", str(missing), "--profile", "boston311")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: ")
    assert "no-such-export.csv" in result.stderr and "not found" in result.stderr


def test_import_report_file_of_another_profile_exits_2(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("SRNumber,CreatedDate\n1-1,01/01/2017 10:00:00 AM\n", encoding="utf-8")
    result = invoke(runner, "import-report", str(path), "--profile", "boston311")
    assert result.exit_code == 2
    assert "CASE_ENQUIRY_ID" in result.stderr  # the first missing required column is named


# --- duban --help ------------------------------------------------------------------------------------------
