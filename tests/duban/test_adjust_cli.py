"""``duban adjust``: a manual score adjustment is an event — stored, published, projected once."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from helpers.servers import topics_ready
from sqlalchemy import select
from typer.testing import CliRunner

from duban.cli import app
from duban.config import Settings
from events.sql import make_engine
from events.store import EventStore
from projections import read_models as rm
from projections.consumer import run_until_caught_up


async def test_an_adjustment_is_recorded_once_and_reaches_the_read_models(
    broker: str, tmp_path: Path
) -> None:
    topic = f"adjust-{uuid.uuid4().hex[:8]}"
    url = f"sqlite:///{tmp_path / 'a.db'}"
    settings = replace(Settings(), kafka_bootstrap=broker, kafka_idempotent=False, events_topic=topic,
                       dead_letter_topic=f"{topic}.dlq", database_url=url)  # fmt: skip
    await topics_ready(settings)
    env = {
        "DUBAN_KAFKA_BOOTSTRAP": broker, "DUBAN_KAFKA_IDEMPOTENT": "false", "DUBAN_EVENTS_TOPIC": topic,
        "DUBAN_DEAD_LETTER_TOPIC": f"{topic}.dlq", "DUBAN_DATABASE_URL": url, "DUBAN_DATA_DIR": str(tmp_path),
    }  # fmt: skip
    args = ["adjust", "--level", "department", "--unit", "PWDx", "--day", "2022-05-03", "--points", "-1.50",
            "--reason", "complaint upheld", "--approver", "chief:li", "--id", "ADJ-1"]  # fmt: skip
    said = (
        "adjustment ADJ-1: -1.50 points for department PWDx on 2022-05-03",
        "adjustment ADJ-1: already recorded",
    )
    for expected in said:  # the same adjustment recorded twice: stored once, applied once
        done = await asyncio.to_thread(CliRunner().invoke, app, args, env=env)
        assert done.exit_code == 0, done.output
        assert expected in done.output
    other = [*args[:8], "-2.00", *args[9:]]  # the same id with other points: refused
    done = await asyncio.to_thread(CliRunner().invoke, app, other, env=env)
    assert done.exit_code == 2 and done.output.startswith("error: id: adjustment ADJ-1 was recorded before")
    engine = make_engine(url)
    assert [e.event_type for e in EventStore(engine).read()] == ["ScoreAdjusted"]
    totals = await run_until_caught_up(settings, engine, timeout_s=60, group_id=f"g-{topic}")
    assert totals.applied == 1 and totals.dead_lettered == 0
    with engine.connect() as conn:
        rows = conn.execute(select(rm.score_adjustments.c.unit_key, rm.score_adjustments.c.points)).all()
    assert rows == [("PWDx", "-1.50")]


def test_a_bad_adjustment_is_refused_before_anything_is_stored(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'b.db'}"
    base = ["adjust", "--level", "department", "--unit", "PWDx", "--day", "2022-05-03", "--reason", "r",
            "--approver", "chief:li"]  # fmt: skip
    env = {"DUBAN_DATABASE_URL": url, "DUBAN_DATA_DIR": str(tmp_path)}
    for extra, field in ((["--points", "lots"], "points"), (["--points", "1", "--day", "2022-5-3"], "day")):
        done = CliRunner().invoke(app, [*base, *extra], env=env)
        assert done.exit_code == 2 and done.output.startswith(f"error: {field}:"), done.output
    assert not (tmp_path / "b.db").exists()


def test_each_bad_argument_is_refused_naming_its_option(tmp_path: Path) -> None:
    """Found by a hostile new user: a decimal overflow traceback, an empty id turned into a random
    one, an ISO week date and a padded unit accepted, payload field names instead of option names."""
    env = {"DUBAN_DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}", "DUBAN_DATA_DIR": str(tmp_path)}
    good = {"--level": "department", "--unit": "PWDx", "--day": "2022-05-03", "--points": "1",
            "--reason": "r", "--approver": "chief:li"}  # fmt: skip
    cases = {
        ("--points", "1e999999999"): "points: must lie from -1000 to 1000, got 1e999999999",
        ("--id", ""): "id: must not be empty (leave --id out for a new random id)",
        ("--id", "   "): "id: must not be empty (leave --id out for a new random id)",
        ("--id", "a" * 97): "id: is 97 characters long; at most 96 are allowed",
        ("--day", "2022-W19-1"): "day: '2022-W19-1' is not a date (YYYY-MM-DD)",
        ("--day", "20220503"): "day: '20220503' is not a date (YYYY-MM-DD)",
        ("--day", "2026-11-31"): "day: '2026-11-31' is not a date (YYYY-MM-DD)",
        ("--day", "2100-01-01"): "day: must lie from 1990-01-01 to 2099-12-31, got 2100-01-01",
        ("--unit", " PWDx"): "unit: must not begin or end with whitespace",
        ("--unit", ""): "unit: must not be empty",
    }
    for (option, value), message in cases.items():
        args = [x for k, v in (good | {option: value}).items() for x in (k, v)]
        done = CliRunner().invoke(app, ["adjust", *args], env=env)
        assert (done.exit_code, done.output.strip()) == (2, f"error: {message}"), (option, value)
    assert not (tmp_path / "c.db").exists()


@pytest.mark.parametrize(
    ("first", "same", "other", "said", "stored"),
    [
        ("1e3", "1000", "999.99", "+1000 points", "1000"),  # 1e3 is stored and shown as 1000
        ("-1.5", "-1.50", "-1.51", "-1.5 points", "-1.5"),  # compared as numbers, stored as given
    ],
)
def test_the_same_points_written_two_ways_are_the_same_adjustment(
    tmp_path: Path, first: str, same: str, other: str, said: str, stored: str
) -> None:
    url = f"sqlite:///{tmp_path / 'd.db'}"
    env = {"DUBAN_DATABASE_URL": url, "DUBAN_DATA_DIR": str(tmp_path), "DUBAN_KAFKA_BOOTSTRAP": "127.0.0.1:1"}
    base = ["adjust", "--level", "department", "--unit", "PWDx", "--day", "2022-05-03", "--reason", "r",
            "--approver", "chief:li", "--id", "D1", "--points"]  # fmt: skip
    done = CliRunner().invoke(app, [*base, first], env=env)
    assert done.exit_code == 0 and said in done.output, done.output
    done = CliRunner().invoke(app, [*base, same], env=env)
    assert done.exit_code == 0 and "already recorded" in done.output, done.output
    done = CliRunner().invoke(app, [*base, other], env=env)
    assert done.exit_code == 2 and "recorded before with other values" in done.output, done.output
    assert [e.payload["points"] for e in EventStore(make_engine(url)).read()] == [stored]
