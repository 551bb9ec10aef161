"""``duban adjust``: a manual score adjustment is an event — stored, published, projected once."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from pathlib import Path

from sqlalchemy import select
from typer.testing import CliRunner

from duban.cli import app
from duban.config import Settings
from duban.db import make_engine
from duban.errors import StackError
from duban.probes import ensure_topics
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
    for attempt in range(40):  # the port answers a moment before the broker serves requests
        try:
            await ensure_topics(settings)
            break
        except StackError:
            if attempt == 39:
                raise
            await asyncio.sleep(0.25)
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


def test_points_in_exponent_form_are_stored_as_the_same_plain_number(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'e.db'}"
    env = {"DUBAN_DATABASE_URL": url, "DUBAN_DATA_DIR": str(tmp_path), "DUBAN_KAFKA_BOOTSTRAP": "127.0.0.1:1"}
    base = ["adjust", "--level", "department", "--unit", "PWDx", "--day", "2022-05-03", "--reason", "r",
            "--approver", "chief:li", "--id", "E1"]  # fmt: skip
    first = CliRunner().invoke(app, [*base, "--points", "1e3"], env=env)
    assert first.exit_code == 0 and "+1000 points" in first.output, first.output
    again = CliRunner().invoke(app, [*base, "--points", "1000"], env=env)  # 1e3 is 1000: the same values
    assert again.exit_code == 0 and "already recorded" in again.output, again.output
    store = EventStore(make_engine(url))
    assert [e.payload["points"] for e in store.read()] == ["1000"]
