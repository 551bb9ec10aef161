"""Closing a period freezes it; late events change nothing in it and show in the next period.

The three items of ``item_helpers.three_items`` all happen on Monday 2 November 2026 (Asia/Shanghai)
and are recorded as they happen. The day is closed at 23:00 that evening. Then a fourth item S,
reported at 14:30 on the 2nd, is recorded only on the 3rd, with a manual adjustment for the 2nd.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from helpers.items import cmd, cst, litter, three_items
from helpers.projections import fresh
from helpers.projections import project as stored_project
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from duban.cli import app
from events.envelope import EventEnvelope
from events.sql import make_engine
from events.store import EventStore
from events.store import metadata as store_metadata
from projections import read_models as rm
from projections.frozen_periods import freeze_period, read_snapshots
from projections.projector import ItemProjector
from projections.scoring import load_scorebook, score_adjustment, score_units
from workflows import item_rules as rules

BOOK = load_scorebook()
MONDAY, TUESDAY, WEDNESDAY = date(2026, 11, 2), date(2026, 11, 3), date(2026, 11, 4)
CLOSED_AT = cst(11, 3, 8, 5)  # the items' zone is UTC: Monday ends at 08:00 in Shanghai


def late_events() -> list[EventEnvelope]:
    reg = dataclasses.replace(litter(cst(11, 2, 14, 30)), item_id="S", department="UM")
    state, events = rules.register(reg)
    events += rules.apply_command(state, cmd("dispatch", cst(11, 2, 14, 30), unit="U1", department="UM"))
    recorded = cst(11, 3, 10, 0)  # the day after, once the 2nd is closed
    late = [dataclasses.replace(e, recorded_at=recorded) for e in events]
    adjust = score_adjustment(
        "A-9", "category", "litter", MONDAY, Decimal("2"), "missed patrol", "chief:li", recorded
    )
    return [*late, adjust]


def project(engine: Engine, events: list[EventEnvelope], first: int = 0) -> None:
    stored_project(engine, events, first_offset=first)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'f.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    eng = make_engine(url)
    fresh(eng)
    store_metadata.drop_all(eng)
    project(eng, three_items())
    yield eng
    fresh(eng)
    store_metadata.drop_all(eng)  # PostgreSQL is shared by the session: leave no events behind
    eng.dispose()


def counters(engine: Engine, level: str, key: str, day: date) -> dict[str, int]:
    c = rm.unit_day_counters.c
    with engine.connect() as conn:
        row = conn.execute(
            select(rm.unit_day_counters).where(c.level == level, c.unit_key == key, c.day == day)
        )
        found = row.mappings().first()
    return {n: found[n] for n in rm.COUNTER_COLUMNS if found[n]} if found else {}


def test_closing_a_day_stores_its_results_the_version_and_a_hash_of_its_events(engine: Engine) -> None:
    [*_, department] = [
        s for s in freeze_period(engine, "2026-11-02", BOOK, CLOSED_AT) if s.level == "department"
    ]
    ids = sorted(e.event_id for e in three_items())
    assert (department.events_count, department.events_hash) == (
        len(ids),
        hashlib.sha256(b"".join(i.encode() + b"\n" for i in ids)).hexdigest(),
    )
    assert department.scorebook_version == "2026.1"
    assert [(r["unit_key"], r["score"]) for r in department.scores] == [
        ("PWD", "100.00"),
        ("Greening", "91.77"),
        ("UM", "49.85"),
        ("ISD", "-0.50"),
    ]  # fmt: skip (the hand-worked values of test_scoring)
    assert {r["unit_key"] for r in department.indicators} == {"Greening", "ISD", "PWD", "UM"}


def test_late_events_change_nothing_in_a_closed_day_and_show_the_next_day(engine: Engine) -> None:
    frozen = freeze_period(engine, "2026-11-02", BOOK, CLOSED_AT)
    monday_before = counters(engine, "category", "litter", MONDAY)
    project(engine, late_events(), first=1000)
    assert read_snapshots(engine, "2026-11-02") == frozen
    assert freeze_period(engine, "2026-11-02", BOOK, cst(11, 4, 0, 0)) == frozen  # closing again: the same
    assert counters(engine, "category", "litter", MONDAY) == monday_before
    assert counters(engine, "category", "litter", TUESDAY) == {
        "registered": 1, "registered_with_deadline": 1, "dispatched": 1, "late": 2
    }  # fmt: skip
    [tuesday] = score_units(engine, "category", TUESDAY, WEDNESDAY, BOOK)
    assert tuesday.adjustments == 2  # the adjustment for the 2nd counts on the 3rd
    [monday] = score_units(engine, "category", MONDAY, TUESDAY, BOOK)
    assert monday.adjustments == 0 and str(monday.score) == "66.77"  # as frozen


def test_a_rebuild_from_the_store_counts_late_events_the_same_way(engine: Engine) -> None:
    freeze_period(engine, "2026-11-02", BOOK, CLOSED_AT)
    project(engine, late_events(), first=1000)
    live = rm.table_checksum(engine, rm.READ_MODEL_TABLES)
    store = EventStore(engine)
    store.create()
    store.append([*three_items(), *late_events()])
    rm.drop_tables(engine)  # as duban rebuild-read-models: the read models go, the snapshots stay
    ItemProjector(engine).rebuild_from_store(store)
    assert rm.table_checksum(engine, rm.READ_MODEL_TABLES) == live
    assert counters(engine, "category", "litter", TUESDAY)["late"] == 2


def test_duban_scores_reads_a_closed_period_from_its_snapshot(engine: Engine) -> None:
    url = str(engine.url)
    closed = CliRunner().invoke(app, ["close-period", "--period", "2026-11-02", "--database-url", url])
    assert closed.exit_code == 0, closed.output
    assert "closed" in closed.output and "scorebook 2026.1" in closed.output
    again = CliRunner().invoke(app, ["close-period", "--period", "2026-11-02", "--database-url", url])
    assert again.exit_code == 0 and again.output.startswith("2026-11-02: already closed ")
    project(engine, late_events(), first=1000)
    shown = CliRunner().invoke(
        app, ["scores", "--period", "2026-11-02", "--by", "category", "--database-url", url]
    )
    assert shown.exit_code == 0, shown.output
    assert "Period: 2026-11-02, closed " in shown.output and "66.77" in shown.output


def test_a_period_that_has_not_ended_cannot_be_closed(engine: Engine) -> None:
    from events.errors import ValidationError

    with pytest.raises(ValidationError) as info:
        freeze_period(engine, "2026-11", BOOK, cst(11, 15, 12, 0))
    assert (info.value.field, info.value.reason) == (
        "period",
        "2026-11 has not ended yet (it runs until 2026-11-30 in every area zone, "
        "that is until 2026-12-01 00:00 UTC)",
    )
    assert read_snapshots(engine, "2026-11") == []


def test_a_day_ends_when_it_has_ended_in_the_last_zone_of_the_items(engine: Engine) -> None:
    """The check allowed closing a day 24 h early: it had the zones' order backwards (issue 8)."""
    from events.errors import ValidationError

    with pytest.raises(ValidationError, match="until 2026-11-03 00:00 UTC"):
        freeze_period(engine, "2026-11-02", BOOK, cst(11, 2, 23, 0))  # the UTC day is not over
    reg = dataclasses.replace(litter(cst(11, 2, 9, 0)), item_id="LA", zone="America/Los_Angeles")
    project(engine, rules.register(reg)[1], first=2000)
    with pytest.raises(ValidationError, match="until 2026-11-03 08:00 UTC"):  # PST midnight
        freeze_period(engine, "2026-11-02", BOOK, datetime(2026, 11, 3, 7, 59, tzinfo=UTC))
    assert freeze_period(engine, "2026-11-02", BOOK, datetime(2026, 11, 3, 8, 0, tzinfo=UTC))


def test_a_rebuild_needs_an_event_store(engine: Engine) -> None:
    store_metadata.drop_all(engine)  # read models, but no event store to rebuild them from
    done = CliRunner().invoke(app, ["rebuild-read-models", "--database-url", str(engine.url)])
    assert done.exit_code == 2 and "holds no event store" in done.output
    assert counters(engine, "category", "litter", MONDAY)  # nothing was dropped
