"""End to end: the main job on a Boston subset, through the real test server, broker and database.

Expected values are computed here straight from the CSV (string comparison of the city's
timestamps), independently of the import profile, the workflow and the projection.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import replace
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
from helpers.paths import DATA

from duban.config import Settings
from duban.jobs.simulate import Replay, SimulationOptions
from events.sql import make_engine
from events.store import EventStore
from projections.indicators import indicators
from projections.rankings import rank_units

BOSTON = DATA / "boston311_2022_sample.csv"

pytestmark = pytest.mark.skipif(not BOSTON.is_file(), reason=f"shared data not found at {BOSTON}")


def expected_from_csv(limit: int) -> tuple[dict[str, tuple[int, int]], int]:
    """Per department (overdue, with deadline) for the first ``limit`` rows, and the labelled rows."""
    with BOSTON.open(newline="", encoding="utf-8") as f:
        rows = [r for _, r in zip(range(limit), csv.DictReader(f), strict=False)]
    with_deadline: Counter[str] = Counter()
    overdue: Counter[str] = Counter()
    labelled = 0
    for row in rows:
        if not row["TARGET_DT"]:
            continue
        with_deadline[row["Department"]] += 1
        # Both columns share one format, so text order is time order.
        overdue[row["Department"]] += row["CLOSED_DT"] > row["TARGET_DT"]
        labelled += row["OnTime_Status"] in ("ONTIME", "OVERDUE")
    return {d: (overdue[d], with_deadline[d]) for d in with_deadline}, labelled


@pytest.mark.slow
@pytest.mark.parametrize(("database", "limit"), [("sqlite", 250), ("postgresql", 120)])
async def test_boston_subset_overdue_counts_by_department(
    database: str, limit: int, broker: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = f"sqlite:///{tmp_path / 'sim.db'}" if database == "sqlite" else request.getfixturevalue("pg_url")
    settings = replace(Settings(), kafka_bootstrap=broker, kafka_idempotent=False, data_dir=tmp_path)
    options = SimulationOptions(
        "boston311", BOSTON, limit=limit, database_url=url, progress=False, replace=True
    )

    summary = await Replay(settings, options).run()

    expected, labelled = expected_from_csv(limit)
    engine = make_engine(url)
    got = {r.unit_key: (r.overdue, r.closed_with_deadline) for r in rank_units(engine, "department")}
    assert {d: v for d, v in got.items() if v[1]} == expected
    by_department = {r.unit_key: r.indicators for r in indicators(engine, "department")}
    for department, (overdue, with_deadline) in expected.items():
        on_time = by_department[department]["on_time_closure_rate"]
        assert (on_time.numerator, on_time.denominator) == (with_deadline - overdue, with_deadline)
        share = Decimal(with_deadline - overdue) / Decimal(with_deadline)
        assert on_time.value == share.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)
        assert by_department[department]["overdue_rate"].numerator == overdue
    assert summary.items == limit and summary.rejected_rows == 0
    assert summary.labels_checked == labelled
    assert summary.labels_matched == labelled
    assert summary.dead_letters == 0
    closed = sum(1 for e in EventStore(engine).read() if e.event_type == "ItemClosed")
    assert closed == limit  # every row of the Boston sample is closed
    engine.dispose()


@pytest.mark.slow
async def test_read_models_do_not_depend_on_the_delivery_bucket(broker: str, tmp_path: Path) -> None:
    """Delivering a day's or a year's commands per clock step gives byte-identical read models:
    the workflow orders early-delivered commands against its own timers."""
    from projections.read_models import READ_MODEL_TABLES, table_checksum

    settings = replace(Settings(), kafka_bootstrap=broker, kafka_idempotent=False, data_dir=tmp_path)
    digests = []
    for days in (1.0, 365.0):
        url = f"sqlite:///{tmp_path / f'bucket-{days}.db'}"
        options = SimulationOptions(
            "boston311", BOSTON, limit=150, database_url=url, progress=False, bucket_days=days
        )
        summary = await Replay(settings, options).run()
        assert summary.labels_matched == summary.labels_checked > 0
        digests.append(table_checksum(make_engine(url), READ_MODEL_TABLES))
    assert digests[0] == digests[1]


async def test_an_open_item_past_its_deadline_matches_the_citys_overdue_label(
    broker: str, tmp_path: Path
) -> None:
    """Items still open at the end of an export: the city labels one past its deadline OVERDUE and
    one before it ONTIME; both used to count as mismatches (an open item has no on-time flag)."""
    with BOSTON.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header, template = reader.fieldnames, next(reader)
    assert header is not None
    cases = [  # id, opened, target, closed, label, status
        ("9001", "2022-01-03 09:00:00", "2022-01-04 09:00:00", "2022-01-03 12:00:00", "ONTIME", "Closed"),
        ("9002", "2022-01-03 10:00:00", "2022-01-05 10:00:00", "", "OVERDUE", "Open"),  # past it by the end
        ("9003", "2022-01-10 10:00:00", "2022-01-20 10:00:00", "", "ONTIME", "Open"),  # not yet due
        ("9004", "2022-01-09 09:00:00", "2022-01-10 09:00:00", "2022-01-10 08:00:00", "ONTIME", "Closed"),
    ]
    export = tmp_path / "open.csv"
    with export.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        columns = ("CASE_ENQUIRY_ID", "OPEN_DT", "TARGET_DT", "CLOSED_DT", "OnTime_Status", "CASE_STATUS")
        for case in cases:
            writer.writerow(template | dict(zip(columns, case, strict=True)))
    settings = replace(Settings(), kafka_bootstrap=broker, kafka_idempotent=False, data_dir=tmp_path)
    url = f"sqlite:///{tmp_path / 'open.db'}"
    options = SimulationOptions("boston311", export, database_url=url, progress=False)
    summary = await Replay(settings, options).run()
    assert (summary.labels_checked, summary.labels_matched, summary.label_mismatches) == (4, 4, [])


async def test_a_user_written_profile_runs_end_to_end(broker: str, tmp_path: Path) -> None:
    """The README's Rivertown profile (``--profile-file``) through the whole job: 6 items (the test
    ticket skipped), RT-1001 closed before its deadline date ended, RT-1004 a day after, RT-1005
    withdrawn (cancelled), the others open: worked out by hand from the rows."""
    from test_import_profiles import HEADER, ROWS, readme_profile

    export = tmp_path / "rivertown.csv"
    export.write_text("\n".join([HEADER, *ROWS]) + "\n", encoding="utf-8")
    settings = replace(Settings(), kafka_bootstrap=broker, kafka_idempotent=False, data_dir=tmp_path)
    url = f"sqlite:///{tmp_path / 'rivertown.db'}"
    options = SimulationOptions(
        "boston311", export, profile_file=readme_profile(tmp_path), database_url=url, progress=False
    )
    summary = await Replay(settings, options).run()
    assert (summary.profile, summary.items, summary.rejected_rows, summary.labels_checked) == (
        "rivertown",
        6,
        0,
        0,
    )
    from projections.read_models import item_view

    with make_engine(url).connect() as conn:
        rows = {r.item_id: (r.stage, r.on_time, r.zone) for r in conn.execute(item_view.select())}
    assert rows == {
        "RT-1001": ("closed", True, "Europe/Berlin"),
        "RT-1002": ("accepted", None, "Europe/Berlin"),
        "RT-1003": ("accepted", None, "Europe/Berlin"),
        "RT-1004": ("closed", False, "Europe/Berlin"),
        "RT-1005": ("cancelled", None, "Europe/Berlin"),
        "RT-1006": ("accepted", None, "Europe/Berlin"),
    }
