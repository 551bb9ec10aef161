"""The ``duban`` command line (duban.cli.app) through typer's CliRunner.

``duban rank`` runs on a small read-model database built in the test's folder: events come from the
real domain core (workflows.item_rules) and go through the projector (ItemProjector.apply_batch) as
encoded Kafka records. Expected rankings are worked out by hand from this scenario (zone
America/New_York, EDT = UTC−4 in May and June 2022; days are local):

- P1 Public Works Department / Back Bay: reported 05-02 14:00Z, deadline 05-03 14:00Z, closed
  05-03 13:00Z (09:00 local): on time.
- P2 Public Works Department / Roxbury: reported 05-10 14:00Z, deadline 05-11 14:00Z (warned,
  breached, escalated), closed 05-16 15:00Z (11:00 local, 2nd half of May): overdue.
- I3 Inspectional Services / Back Bay: reported 06-01 02:00Z, no deadline, closed 06-01 03:30Z,
  which is 2022-05-31 23:30 local: every event of I3 falls on local day 05-31, none in June.

All periods, items without a deadline excluded: Public Works 1 on time of 2 closed with a deadline =
0.5000 (rank 1); Inspectional Services 0 of 0, no rate (rank 2, "no rate last").
With ``--no-deadline on_time``: Inspectional Services 1 of 1 = 1.0000 (rank 1), Public Works 1 of 2.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers.cli import no_ambient_config  # noqa: F401 (autouse: no DUBAN_* variables, no ./duban.toml)
from helpers.paths import BOSTON_SAMPLE
from helpers.projections import store
from typer.testing import CliRunner

from duban.cli import app
from events.codec import encode_event
from events.envelope import EventEnvelope
from events.sql import make_engine
from projections.projector import ItemProjector, RawMessage, table_checksum
from workflows import item_rules
from workflows.item_model import CommandKind, ItemCommand, Registration

needs_boston = pytest.mark.skipif(
    not BOSTON_SAMPLE.is_file(), reason=f"shared export missing: {BOSTON_SAMPLE}"
)

PWD, ISD = "Public Works Department", "Inspectional Services"
TOPIC = "duban.item-events"
EXCLUDE_RULE = "closed items with a deadline"
ON_TIME_RULE = "closed items, those without a deadline counted on time"
ROW_FIELDS = {
    "rank",
    "level",
    "unit_key",
    "closed",
    "closed_with_deadline",
    "on_time",
    "overdue",
    "no_deadline",
    "cancelled",
    "on_time_rate",
    "numerator",
    "denominator",
    "denominator_rule",
}


def utc(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2022, month, day, hour, minute, tzinfo=UTC)


def item_events(
    item_id: str, department: str, town: str, reported: datetime, deadline: datetime | None, closed: datetime
) -> list[EventEnvelope]:
    """Register, dispatch, accept, fire the timers due by ``closed``, rectify, verify, close."""
    reg = Registration(
        item_id=item_id,
        category="Pothole",
        reported_at=reported,
        department=department,
        unit=f"{department} crew",
        town=town,
        community="Ward 5",
        grid="0508",
        zone="America/New_York",
        source="Constituent Call",
        resolution_deadline=deadline,
        deadline_origin="source" if deadline else "none",
    )
    state, events = item_rules.register(reg)

    def do(kind: str, actor: str, at: datetime) -> None:
        extra: dict[str, Any] = {
            "dispatch": {"unit": "crew"},
            "submit_rectification": {"evidence": ["p.jpg"]},
        }
        command = ItemCommand(f"{item_id}:{kind}", kind, actor, at, **extra.get(kind, {}))
        events.extend(item_rules.apply_command(state, command))

    do(CommandKind.DISPATCH, "dispatcher:test", reported + timedelta(minutes=5))
    do(CommandKind.ACCEPT, "unit:crew", reported + timedelta(minutes=10))
    events.extend(item_rules.fire_due_timers(state, closed))
    do(CommandKind.SUBMIT_RECTIFICATION, "unit:crew", closed)
    do(CommandKind.VERIFY, "inspector:test", closed)
    do(CommandKind.CLOSE, "office:test", closed)
    return events


def scenario() -> list[EventEnvelope]:
    p1 = item_events("P1", PWD, "Back Bay", utc(5, 2, 14), utc(5, 3, 14), utc(5, 3, 13))
    p2 = item_events("P2", PWD, "Roxbury", utc(5, 10, 14), utc(5, 11, 14), utc(5, 16, 15))
    i3 = item_events("I3", ISD, "Back Bay", utc(6, 1, 2), None, utc(6, 1, 3, 30))
    return sorted([*p1, *p2, *i3], key=lambda e: (e.occurred_at, e.item_id, e.sequence))


@pytest.fixture
def db_url(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'read-models.db'}"
    engine = make_engine(url)
    events = scenario()
    messages = [
        RawMessage(TOPIC, 0, offset, ev.item_id.encode(), encode_event(ev))
        for offset, ev in enumerate(events)
    ]
    store(engine, events)
    result = ItemProjector(engine).apply_batch(messages)
    # 6 lifecycle events each; P1 adds a warning (75 % of its window: 05-03 08:00Z, before closing)
    # and P2 warned, breached, escalated: 7 + 9 + 6
    assert (result.applied, result.duplicates, result.dead_lettered) == (22, 0, 0)
    engine.dispose()
    yield url


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def invoke(runner: CliRunner, *args: str) -> Any:
    return runner.invoke(app, list(args))


def row(
    rank: int,
    unit: str,
    closed: int,
    with_deadline: int,
    on_time: int,
    overdue: int,
    no_deadline: int,
    rate: str | None,
    numerator: int,
    denominator: int,
    rule: str = EXCLUDE_RULE,
    level: str = "department",
) -> dict[str, Any]:
    """One expected JSON row (rankings.to_json: rate as a string or null)."""
    return {
        "rank": rank,
        "level": level,
        "unit_key": unit,
        "closed": closed,
        "closed_with_deadline": with_deadline,
        "on_time": on_time,
        "overdue": overdue,
        "no_deadline": no_deadline,
        "cancelled": 0,
        "on_time_rate": rate,
        "numerator": numerator,
        "denominator": denominator,
        "denominator_rule": rule,
    }


ALL_BY_DEPARTMENT = [
    row(1, PWD, 2, 2, 1, 1, 0, "0.5000", 1, 2),
    row(2, ISD, 1, 0, 0, 0, 1, None, 0, 0),
]


# --- duban rank -------------------------------------------------------------------------------------


def test_rank_table_orders_departments_by_rate(runner: CliRunner, db_url: str) -> None:
    result = invoke(runner, "rank", "--by", "department", "--database-url", db_url)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "Period: all"
    body = [line for line in lines if line.lstrip()[:1].isdigit()]
    assert len(body) == 2
    assert body[0].split()[:2] == ["1", "Public"] and PWD in body[0]
    assert body[1].split()[:2] == ["2", "Inspectional"] and ISD in body[1]
    # cells after the unit: closed, with deadline, on time, overdue, no deadline, cancelled, rate, of
    assert body[0].split()[-8:] == ["2", "2", "1", "1", "0", "0", "0.5000", "2"]
    assert body[1].split()[-8:] == ["1", "0", "0", "0", "1", "0", "-", "0"]
    assert lines[-1] == f"rate = on time / {EXCLUDE_RULE}"
    assert result.stderr == ""


def test_rank_json(runner: CliRunner, db_url: str) -> None:
    result = invoke(runner, "rank", "--format", "json", "--database-url", db_url)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert isinstance(rows, list)
    assert all(set(r) == ROW_FIELDS for r in rows)
    assert rows == ALL_BY_DEPARTMENT


def test_rank_csv(runner: CliRunner, db_url: str) -> None:
    result = invoke(runner, "rank", "--by", "department", "--format", "csv", "--database-url", db_url)
    assert result.exit_code == 0, result.output
    reader = csv.DictReader(io.StringIO(result.stdout))
    assert set(reader.fieldnames or ()) == ROW_FIELDS
    rows = list(reader)
    # CSV cells are text; a missing rate is an empty cell
    expected = [{k: "" if v is None else str(v) for k, v in r.items()} for r in ALL_BY_DEPARTMENT]
    assert rows == expected


def test_rank_no_deadline_counted_on_time_reorders(runner: CliRunner, db_url: str) -> None:
    result = invoke(runner, "rank", "--format", "json", "--no-deadline", "on_time", "--database-url", db_url)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [
        row(1, ISD, 1, 0, 0, 0, 1, "1.0000", 1, 1, ON_TIME_RULE),
        row(2, PWD, 2, 2, 1, 1, 0, "0.5000", 1, 2, ON_TIME_RULE),
    ]


def test_rank_by_town(runner: CliRunner, db_url: str) -> None:
    result = invoke(runner, "rank", "--by", "town", "--format", "json", "--database-url", db_url)
    assert result.exit_code == 0, result.output
    # Back Bay: P1 on time + I3 without deadline → 1 of 1; Roxbury: P2 overdue → 0 of 1
    assert json.loads(result.stdout) == [
        row(1, "Back Bay", 2, 1, 1, 0, 1, "1.0000", 1, 1, level="town"),
        row(2, "Roxbury", 1, 1, 0, 1, 0, "0.0000", 0, 1, level="town"),
    ]


def test_rank_first_half_of_may(runner: CliRunner, db_url: str) -> None:
    result = invoke(runner, "rank", "--period", "2022-05-H1", "--format", "json", "--database-url", db_url)
    assert result.exit_code == 0, result.output
    # only P1's closure (05-03) falls in days 1–15; P2 closed on 05-16, I3 is all on 05-31
    assert json.loads(result.stdout) == [row(1, PWD, 1, 1, 1, 0, 0, "1.0000", 1, 1)]


def test_rank_periods_use_local_days(runner: CliRunner, db_url: str) -> None:
    # I3 happened on 2022-06-01 in UTC but 2022-05-31 in Boston: June is empty, May holds everything
    june = invoke(runner, "rank", "--period", "2022-06", "--format", "json", "--database-url", db_url)
    assert june.exit_code == 0, june.output
    assert json.loads(june.stdout) == []
    may = invoke(runner, "rank", "--period", "2022-05", "--format", "json", "--database-url", db_url)
    assert json.loads(may.stdout) == ALL_BY_DEPARTMENT
    day = invoke(runner, "rank", "--period", "2022-05-31", "--format", "json", "--database-url", db_url)
    assert json.loads(day.stdout) == [row(1, ISD, 1, 0, 0, 0, 1, None, 0, 0)]


def test_rank_empty_period_table_has_a_header_only(runner: CliRunner, db_url: str) -> None:
    result = invoke(runner, "rank", "--period", "2022-06", "--database-url", db_url)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "Period: 2022-06"
    assert lines[1].split()[:2] == ["rank", "unit"]
    assert set(lines[2].replace(" ", "")) == {"-"}
    assert len(lines) == 3


def test_rank_output_file(runner: CliRunner, db_url: str, tmp_path: Path) -> None:
    out = tmp_path / "ranking.json"
    result = invoke(runner, "rank", "--format", "json", "--output", str(out), "--database-url", db_url)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert json.loads(out.read_text()) == ALL_BY_DEPARTMENT
    assert out.read_text().endswith("\n")
    table = tmp_path / "ranking.txt"
    result = invoke(runner, "rank", "--output", str(table), "--database-url", db_url)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    text = table.read_text()
    assert text.index(PWD) < text.index(ISD)


def test_rank_reads_the_configured_database(
    runner: CliRunner, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DUBAN_DATABASE_URL", db_url)
    result = invoke(runner, "rank", "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == ALL_BY_DEPARTMENT


@pytest.mark.parametrize("period", ["2022-13", "2022-W54", "May 2022"])
def test_rank_bad_period_exits_2_naming_the_period(runner: CliRunner, db_url: str, period: str) -> None:
    result = invoke(runner, "rank", "--period", period, "--database-url", db_url)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: period: ")
    assert repr(period) in result.stderr
    assert "2022-05-H1" in result.stderr and "2022-W19" in result.stderr


def test_rank_on_a_database_without_read_models_exits_2(runner: CliRunner, tmp_path: Path) -> None:
    result = invoke(runner, "rank", "--database-url", f"sqlite:///{tmp_path / 'mistyped.db'}")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ")


def test_rank_unknown_level_is_a_usage_error(runner: CliRunner, db_url: str) -> None:
    result = invoke(runner, "rank", "--by", "village", "--database-url", db_url)
    assert result.exit_code == 2
    assert "--by" in result.stderr


# --- duban import-report --------------------------------------------------------------------------------


def test_help_lists_the_commands(runner: CliRunner) -> None:
    result = invoke(runner, "--help")
    assert result.exit_code == 0, result.output
    words = set(result.stdout.replace("│", " ").split())
    for command in ("simulate", "rank", "stack", "demo", "worker", "project", "import-report"):
        assert command in words, command


def test_rank_help_lists_its_options(runner: CliRunner) -> None:
    result = invoke(runner, "rank", "--help")
    assert result.exit_code == 0, result.output
    for option in ("--by", "--period", "--format", "--no-deadline", "--output", "--database-url"):
        assert option in result.stdout, option


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--limit", "0"), "limit: must be at least 1"),
        (("--bucket-days", "nan"), "bucket_days: must be a positive number of days"),
        (("--summary-json", "/nonexistent-duban/s.json"), "summary_json: cannot write"),
        (("--database-url", "sqlite:////nonexistent-duban/x.db"), "folder /nonexistent-duban does not exist"),
    ],
)
def test_simulate_refuses_bad_options_before_starting(
    runner: CliRunner, args: tuple[str, ...], message: str
) -> None:
    result = invoke(runner, "simulate", str(BOSTON_SAMPLE), *args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_simulate_never_overwrites_a_database_it_was_not_told_to_replace(
    runner: CliRunner, db_url: str
) -> None:
    before = table_checksum(make_engine(db_url), ["item_view", "unit_day_counters"])
    result = invoke(runner, "simulate", str(BOSTON_SAMPLE), "--database-url", db_url)
    assert result.exit_code == 2
    assert "already holds duban tables; pass --replace" in result.stderr
    assert table_checksum(make_engine(db_url), ["item_view", "unit_day_counters"]) == before


def test_make_simulate_writes_its_summary_into_a_data_dir_that_does_not_exist_yet(
    runner: CliRunner, tmp_path: Path
) -> None:
    """``make simulate`` passes ``--summary-json .duban/…`` in a fresh clone, where ``.duban`` (the data
    dir) does not exist yet: the check must not refuse it. A missing export then stops the run."""
    data_dir = tmp_path / ".duban"
    result = runner.invoke(
        app,
        ["simulate", str(tmp_path / "missing.csv"), "--summary-json", str(data_dir / "summary.json")],
        env={"DUBAN_DATA_DIR": str(data_dir)},
    )
    assert result.exit_code == 2
    assert "summary_json" not in result.stderr and "missing.csv" in result.stderr
    assert data_dir.is_dir()
