"""Import profiles boston311 and la311 against the shared exports and small hand-written files.

Expected counts are computed here from the raw CSV with csv.DictReader, or are facts stated in
../shared/data/README.md; none is copied from the importer's own output.
"""

from __future__ import annotations

import csv
import re
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from helpers.paths import DATA

from duban.errors import ConfigurationError, ImportRowError
from duban.importers.base import CaseStatus, ImportResult
from duban.importers.profile_spec import ProfileSpec
from duban.importers.profiles import builtin_profiles, load_cases, load_profile
from duban.importers.times import TimeReader, end_of_local_day, unshift_clock

BOSTON = DATA / "boston311_2022_sample.csv"
LA = DATA / "la311_2017_subset.csv"
NY, LAZ = ZoneInfo("America/New_York"), ZoneInfo("America/Los_Angeles")
LA_FORMAT = "%m/%d/%Y %I:%M:%S %p"

needs_boston = pytest.mark.skipif(not BOSTON.is_file(), reason=f"shared export missing: {BOSTON}")
needs_la = pytest.mark.skipif(not LA.is_file(), reason=f"shared export missing: {LA}")


def boston_without_correction() -> ProfileSpec:
    """The built-in boston311 profile with its clock rule set to plain local time."""
    spec = load_profile("boston311")
    return spec.model_copy(update={"times": spec.times.model_copy(update={"clock": "local"})})


def raw(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def boston() -> ImportResult:
    return load_cases("boston311", BOSTON)


@pytest.fixture(scope="module")
def la() -> ImportResult:
    return load_cases("la311", LA)


def _all_instants_utc(result: ImportResult) -> None:
    for case in result.cases:
        for value in (case.reported_at, case.deadline, case.closed_at):
            assert value is None or (value.tzinfo is UTC and value.utcoffset() == timedelta(0))


# --- Boston -------------------------------------------------------------------------------------


@needs_boston
def test_boston_every_row_becomes_a_case(boston: ImportResult) -> None:
    rows = raw(BOSTON)
    assert len(rows) == 4995  # README fact
    assert boston.rows_read == len(rows) == len(boston.cases) and boston.rejected == []
    assert [c.item_id for c in boston.cases] == [r["CASE_ENQUIRY_ID"] for r in rows]
    assert [c.row_number for c in boston.cases] == list(range(2, len(rows) + 2))
    _all_instants_utc(boston)


@needs_boston
def test_boston_duplicate_header_names_do_not_break_anything(boston: ImportResult) -> None:
    with BOSTON.open(newline="", encoding="utf-8") as handle:
        header = next(csv.reader(handle))
    assert header.count("resolution_hours") == 2 and header.count("resolution_days") == 2  # trap 6
    assert boston.rejected == [] and boston.rows_read == 4995


CLOSED_TEXT = re.compile(
    r"Closed date : (?:(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(?:\.\d+)?"  # ISO, New York local
    r"|\w{3} (\w{3} \d\d \d\d:\d\d:\d\d) (EDT|EST) (\d{4}))"  # Fri Apr 22 04:14:40 EDT 2022
)


def closure_text_instant(text: str) -> datetime | None:
    """The instant written in CLOSURE_REASON: ISO local New York time, or an explicit EDT/EST time."""
    match = CLOSED_TEXT.search(text)
    if match is None:
        return None
    if match.group(1):
        return datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=NY).astimezone(UTC)
    wall = datetime.strptime(f"{match.group(2)} {match.group(4)}", "%b %d %H:%M:%S %Y")
    hours = -4 if match.group(3) == "EDT" else -5
    return wall.replace(tzinfo=timezone(timedelta(hours=hours))).astimezone(UTC)


@needs_boston
def test_boston_closed_at_equals_the_time_written_in_closure_reason(boston: ImportResult) -> None:
    """Trap 1. The text drops milliseconds the column rounded, so the column may be up to 1 s later."""
    rows = raw(BOSTON)
    compared = 0
    for row, case in zip(rows, boston.cases, strict=True):
        expected = closure_text_instant(row["CLOSURE_REASON"])
        if expected is None:
            assert "Closed date" not in row["CLOSURE_REASON"], row["CLOSURE_REASON"]  # none missed
            continue
        assert case.closed_at is not None
        assert timedelta(0) <= case.closed_at - expected <= timedelta(seconds=1), (case.item_id, expected)
        compared += 1
    assert compared > 4000


@needs_boston
def test_boston_without_the_correction_the_clock_is_four_or_five_hours_early() -> None:
    plain = load_cases(boston_without_correction(), BOSTON)
    gaps = set()
    for row, case in zip(raw(BOSTON), plain.cases, strict=True):
        expected = closure_text_instant(row["CLOSURE_REASON"])
        if expected is not None and case.closed_at is not None:
            gaps.add(round((expected - case.closed_at).total_seconds() / 3600))
    assert gaps == {4, 5}


@pytest.mark.parametrize(
    ("column", "local_truth"),
    [
        (datetime(2022, 4, 22, 0, 14, 40), datetime(2022, 4, 22, 4, 14, 40, tzinfo=NY)),  # README, EDT
        (datetime(2022, 1, 18, 10, 8, 24), datetime(2022, 1, 18, 15, 8, 24, tzinfo=NY)),  # README, EST
        # DST edges, from rows 101004218145 and 101005154529 of the sample and their closure texts:
        (datetime(2022, 3, 13, 1, 46, 5), datetime(2022, 3, 13, 6, 46, 5, tzinfo=NY)),
        (datetime(2023, 11, 5, 1, 56, 0), datetime(2023, 11, 5, 5, 56, 0, tzinfo=NY)),
    ],
)
def test_unshift_clock(column: datetime, local_truth: datetime) -> None:
    corrected = unshift_clock(column)
    assert corrected == local_truth and corrected.tzinfo is UTC


def test_unshift_clock_refuses_aware_input() -> None:
    with pytest.raises(ValueError, match="naive"):
        unshift_clock(datetime(2022, 1, 1, tzinfo=UTC))


@needs_boston
def test_boston_city_on_time_label_is_reproduced_row_by_row(boston: ImportResult) -> None:
    rows = raw(BOSTON)
    labelled = [r for r in rows if r["TARGET_DT"].strip() and r["OnTime_Status"].strip()]
    assert len(labelled) == 4283  # README fact
    checked = [c for c in boston.cases if c.deadline is not None and c.city_on_time is not None]
    assert len(checked) == len(labelled)
    for case in checked:
        assert case.closed_at is not None and case.deadline is not None
        assert (case.closed_at <= case.deadline) == case.city_on_time, case.item_id
    blank_label = {r["CASE_ENQUIRY_ID"] for r in rows if not r["OnTime_Status"].strip()}
    assert len(blank_label) == 1
    assert {c.item_id for c in boston.cases if c.city_on_time is None} == blank_label


@needs_boston
def test_boston_correction_leaves_comparisons_between_columns_unchanged(boston: ImportResult) -> None:
    plain = load_cases(boston_without_correction(), BOSTON)
    for fixed, naive_reading in zip(boston.cases, plain.cases, strict=True):
        assert fixed.closed_at is not None and naive_reading.closed_at is not None
        if fixed.deadline is not None and naive_reading.deadline is not None:
            assert (fixed.closed_at <= fixed.deadline) == (naive_reading.closed_at <= naive_reading.deadline)
        assert (fixed.closed_at < fixed.reported_at) == (naive_reading.closed_at < naive_reading.reported_at)


@needs_boston
def test_boston_rows_without_deadline_are_kept(boston: ImportResult) -> None:
    blank = {r["CASE_ENQUIRY_ID"] for r in raw(BOSTON) if not r["TARGET_DT"].strip()}
    assert blank  # trap 7
    assert {c.item_id for c in boston.cases if c.deadline is None} == blank


@needs_boston
def test_boston_areas_and_float_zip_codes(boston: ImportResult) -> None:
    rows = raw(BOSTON)
    assert any(r["LOCATION_ZIPCODE"].endswith(".0") for r in rows)  # trap 5: read nowhere, breaks nothing
    blank_towns = sum(not r["neighborhood"].strip() for r in rows)
    assert sum(c.town == "(unknown)" for c in boston.cases) == blank_towns
    for row, case in zip(rows, boston.cases, strict=True):
        ward = row["ward"].strip()
        if not ward:
            assert case.community == "(unknown)"
        else:
            assert case.community == f"Ward {int(ward.removeprefix('Ward '))}"
        assert case.grid == (row["precinct"].strip() or "(unknown)")
        assert case.status is CaseStatus.CLOSED and row["CASE_STATUS"] == "Closed"


# --- LA -----------------------------------------------------------------------------------------


@needs_la
def test_la_every_row_becomes_a_case_with_its_status(la: ImportResult) -> None:
    rows = raw(LA)
    assert la.rows_read == len(rows) == len(la.cases) and la.rejected == []
    for status_text, status, stated in (
        ("Cancelled", CaseStatus.CANCELLED, 246),
        ("Referred Out", CaseStatus.REFERRED_OUT, 9),
    ):  # trap 4, README facts
        expected = {r["SRNumber"] for r in rows if r["Status"] == status_text}
        assert len(expected) == stated
        assert {c.item_id for c in la.cases if c.status is status} == expected
    _all_instants_utc(la)
    assert all(c.city_on_time is None and c.grid == "" for c in la.cases)


@needs_la
def test_la_closed_before_created_is_kept_and_flagged(la: ImportResult) -> None:
    early = {
        r["SRNumber"]
        for r in raw(LA)
        if r["ClosedDate"]
        and datetime.strptime(r["ClosedDate"], LA_FORMAT) < datetime.strptime(r["CreatedDate"], LA_FORMAT)
    }
    assert len(early) == 12  # README fact, trap 3
    flagged = {c.item_id for c in la.cases if "closed_before_reported" in c.anomalies}
    assert flagged == early
    for case in (c for c in la.cases if c.item_id in early):
        assert case.closed_at is not None and case.closed_at < case.reported_at


@needs_la
def test_la_service_date_at_midnight_means_end_of_that_local_day(la: ImportResult) -> None:
    rows = raw(LA)
    midnight = 0
    for row, case in zip(rows, la.cases, strict=True):
        text = row["ServiceDate"].strip()
        if not text:
            assert case.deadline is None  # trap 7
            continue
        assert case.deadline is not None
        local = case.deadline.astimezone(LAZ)
        wall = datetime.strptime(text, LA_FORMAT)
        if text.endswith("12:00:00 AM"):
            midnight += 1
            assert local.date() == wall.date() and local.time() == datetime.max.time()
        else:
            assert local.replace(tzinfo=None) == wall
    assert midnight > len(rows) // 2  # README: most values are midnight (trap 2)
    assert sum(c.deadline is None for c in la.cases) == sum(not r["ServiceDate"].strip() for r in rows)


def test_end_of_local_day() -> None:
    assert end_of_local_day(date(2018, 1, 5), "America/Los_Angeles") == datetime(
        2018, 1, 6, 7, 59, 59, 999999, tzinfo=UTC
    )
    # DST starts in the morning of 2018-03-11: the day ends in PDT (UTC-7).
    assert end_of_local_day(date(2018, 3, 11), "America/Los_Angeles") == datetime(
        2018, 3, 12, 6, 59, 59, 999999, tzinfo=UTC
    )
    assert end_of_local_day(date(2022, 7, 1), "America/New_York").tzinfo is UTC
    la_times = TimeReader([LA_FORMAT], "America/Los_Angeles", midnight_is_date_only=True)
    got = la_times.read("01/02/2018 07:26:08 AM", "ServiceDate", deadline=True)
    assert got == datetime(2018, 1, 2, 15, 26, 8, tzinfo=UTC)  # a time other than midnight: as is


@needs_la
def test_la_areas_use_readable_keys(la: ImportResult) -> None:
    rows = raw(LA)
    for row, case in zip(rows, la.cases, strict=True):
        cd = row["CD"].strip()
        assert case.town == (f"CD {int(cd)}" if cd else "(unknown)")
        assert case.community == (row["NCName"].strip() or "(unknown)")
        assert case.department == row["Owner"] and case.unit == row["AssignTo"]


# --- Rejections and registry, on small files written here ----------------------------------------

BOSTON_HEADER = [
    "CASE_ENQUIRY_ID",
    "OPEN_DT",
    "TARGET_DT",
    "CLOSED_DT",
    "OnTime_Status",
    "CASE_STATUS",
    "TYPE",
    "REASON",
    "QUEUE",
    "Department",
    "neighborhood",
    "ward",
    "precinct",
    "LOCATION_ZIPCODE",
    "Source",
    "resolution_hours",
    "resolution_days",
    "resolution_hours",
    "resolution_days",
    "TYPE",
]


def boston_row(item_id: str, **changes: str) -> list[str]:
    values = {
        "CASE_ENQUIRY_ID": item_id,
        "OPEN_DT": "2022-01-17 11:20:00",
        "TARGET_DT": "2022-01-18 11:20:22",
        "CLOSED_DT": "2022-01-18 10:08:24",
        "OnTime_Status": "ONTIME",
        "CASE_STATUS": "Closed",
        "TYPE": "Pothole",
        "REASON": "Highway",
        "QUEUE": "PWDx_Q",
        "Department": "PWDx",
        "neighborhood": "Roxbury",
        "ward": "02",
        "precinct": "0201",
        "LOCATION_ZIPCODE": "2124.0",
        "Source": "Constituent Call",
        **changes,
    }
    # Duplicated names carry other values in their second occurrence: only the first may be read.
    return [values.get(name, "1.5") for name in BOSTON_HEADER[:-1]] + ["NOT THE TYPE"]


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    return path


def test_boston_rejections_name_row_and_column(tmp_path: Path) -> None:
    rows = [
        BOSTON_HEADER,
        boston_row("A1"),  # 2 good
        boston_row("A2", OPEN_DT="17/01/2022 11:20"),  # 3 bad reported-at
        boston_row(" "),  # 4 missing id
        boston_row("A1"),  # 5 duplicate of row 2
        boston_row("A3")[:-3],  # 6 wrong column count
        boston_row("A4", TARGET_DT="soon"),  # 7 bad deadline
        boston_row("A5", CLOSED_DT="2022-02-30 10:00:00"),  # 8 impossible date
        boston_row("A6", CASE_STATUS="Pending"),  # 9 unknown status
        boston_row("A7", OPEN_DT=""),  # 10 missing reported-at
        boston_row("A8", OnTime_Status="LATE"),  # 11 unknown label
        [],  # 12 blank line
        boston_row("A9", TARGET_DT="", LOCATION_ZIPCODE="n/a", ward="", neighborhood=" "),  # 13 good
    ]
    result = load_cases("boston311", write_csv(tmp_path / "b.csv", rows))
    assert [(r.row_number, r.field) for r in result.rejected] == [
        (3, "OPEN_DT"),
        (4, "CASE_ENQUIRY_ID"),
        (5, "CASE_ENQUIRY_ID"),
        (6, "(row)"),
        (7, "TARGET_DT"),
        (8, "CLOSED_DT"),
        (9, "CASE_STATUS"),
        (10, "OPEN_DT"),
        (11, "OnTime_Status"),
        (12, "(row)"),
    ]
    reasons = {r.row_number: r.reason for r in result.rejected}
    assert "17/01/2022 11:20" in reasons[3] and "row 2" in reasons[5] and "found 17" in reasons[6]
    assert result.rows_read == 12 == len(result.cases) + len(result.rejected)
    first, last = result.cases
    assert (first.item_id, first.category, first.community) == ("A1", "Pothole", "Ward 2")
    assert first.row_number == 2
    assert (last.deadline, last.town, last.community, last.row_number) == (None, "(unknown)", "(unknown)", 13)


def test_la_rejections_name_row_and_column(tmp_path: Path) -> None:
    header = [
        "SRNumber",
        "CreatedDate",
        "ServiceDate",
        "ClosedDate",
        "Status",
        "RequestType",
        "Owner",
        "AssignTo",
        "CD",
        "NCName",
        "RequestSource",
        "ZipCode",
    ]

    def row(sr: str, **changes: str) -> list[str]:
        values = {
            "SRNumber": sr,
            "CreatedDate": "12/31/2017 11:59:58 PM",
            "ServiceDate": "01/05/2018 12:00:00 AM",
            "ClosedDate": "12/30/2017 09:00:00 AM",
            "Status": "Closed",
            "RequestType": "Bulky Items",
            "Owner": "BOS",
            "AssignTo": "",
            "CD": "CD 13",
            "NCName": "",
            "RequestSource": "Call",
            "ZipCode": "90026.0",
            **changes,
        }
        return [values[name] for name in header]

    rows = [
        header,
        row("1-1"),
        row("1-2", ServiceDate="2018-01-05"),
        row("1-3", CreatedDate=""),
        row("1-4", Status="Pending"),
        row("1-1"),
        row("", Status="Open"),
    ]
    result = load_cases("la311", write_csv(tmp_path / "la.csv", rows))
    assert [(r.row_number, r.field) for r in result.rejected] == [
        (3, "ServiceDate"),
        (4, "CreatedDate"),
        (5, "Status"),
        (6, "SRNumber"),
        (7, "SRNumber"),
    ]
    (case,) = result.cases
    assert case.anomalies == ("closed_before_reported",) and case.town == "CD 13"
    assert (case.community, case.unit) == ("(unknown)", "")


def test_registry_and_file_errors(tmp_path: Path) -> None:
    assert set(builtin_profiles()) == {"boston311", "la311", "open311"}
    with pytest.raises(ConfigurationError, match=r"'chicago'.*boston311, la311, open311"):
        load_cases("chicago", tmp_path / "x.csv")
    missing = tmp_path / "nowhere.csv"
    with pytest.raises(FileNotFoundError, match="la311 export not found") as caught:
        load_cases("la311", missing)
    assert str(missing) in str(caught.value)
    with pytest.raises(ImportRowError, match="header"):
        load_cases("boston311", write_csv(tmp_path / "empty.csv", []))
    with pytest.raises(ImportRowError, match="is this a boston311 export") as lacking:
        load_cases("boston311", write_csv(tmp_path / "la.csv", [["SRNumber", "CreatedDate"]]))
    assert lacking.value.field == "CASE_ENQUIRY_ID"
    (tmp_path / "latin1.csv").write_bytes(",".join(BOSTON_HEADER).encode() + b"\n\xff\xfe,x\n")
    with pytest.raises(ImportRowError, match="not UTF-8"):
        load_cases("boston311", tmp_path / "latin1.csv")


def test_bom_and_oversized_field(tmp_path: Path) -> None:
    huge = boston_row("B1", TYPE="x" * 200_000)  # past csv.field_size_limit(): the reader raises
    path = write_csv(tmp_path / "b.csv", [BOSTON_HEADER, huge, boston_row("B2")])
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    result = load_cases("boston311", path)
    assert [c.item_id for c in result.cases] == ["B2"]
    assert [(r.row_number, r.field) for r in result.rejected] == [(2, "(row)")]
    assert "unreadable CSV record" in result.rejected[0].reason
