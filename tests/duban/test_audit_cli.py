"""``duban audit verify-log --period`` and ``duban audit period`` on a closed month, through the
command line, on SQLite and PostgreSQL: bugs a tester found (a period not closed said "verified";
only part of the snapshot compared; a corrupt snapshot or an unreadable time gave a traceback)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.notices import at, done, item
from helpers.projections import fresh, project
from sqlalchemy import Engine, inspect, select, text, update
from typer.testing import CliRunner

from duban.cli import app
from events.sql import make_engine
from events.store import stored_events
from projections import read_models as rm
from projections.frozen_periods import freeze_period, period_snapshots
from projections.scoring import load_scorebook

CLOSE = at(12, 1, 0, 10)


@pytest.fixture(params=["sqlite", "postgresql"])
def closed_month(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """November 2026 (four greenery items of parks and forestry) projected and closed (sealed)."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'month.db'}")
    else:
        engine = make_engine(request.getfixturevalue("pg_url"))
        fresh(engine)
    greenery = {"category": "greenery"}
    events = item("A", "parks", "Xicheng", at(11, 2, 10), *done(at(11, 10, 8)), **greenery)
    events += item("B", "parks", "Xicheng", at(11, 2, 11), *done(at(11, 6, 14)), **greenery)
    events += item("C", "forestry", "Nanhu", at(11, 11, 9), *done(at(11, 13, 9)), **greenery)
    project(engine, events)
    freeze_period(engine, "2026-11", load_scorebook(), CLOSE)
    yield engine
    engine.dispose()


def audit(engine: Engine, *args: str) -> Any:
    url = engine.url.render_as_string(hide_password=False)
    return CliRunner().invoke(app, ["audit", *args, "--database-url", url])


def snapshot_rows(engine: Engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        return {r.level: dict(r._mapping) for r in conn.execute(select(period_snapshots))}


def set_level(engine: Engine, level: str, **values: Any) -> None:
    c = period_snapshots.c
    with engine.begin() as conn:
        conn.execute(update(period_snapshots).where(c.period == "2026-11", c.level == level).values(**values))


def everything(engine: Engine) -> tuple[list[str], list[Any]]:
    """The tables and the rows of the store and the snapshots, to see that a check changed nothing."""
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(select(stored_events).order_by(stored_events.c.position))]
        rows += sorted(tuple(r) for r in conn.execute(select(period_snapshots)))
    return sorted(inspect(engine).get_table_names()), rows


def test_verify_log_of_a_period_needs_a_closed_period(closed_month: Engine) -> None:
    done_ = audit(closed_month, "verify-log", "--period", "2026-11")
    assert done_.exit_code == 0 and done_.stdout.endswith(" streams, 1 seals: verified\n"), done_.output
    for period, reason in (
        ("2026-10", "error: period: 2026-10 is not closed: there is no close seal to verify"),
        ("2026-12-H1", "error: period: 2026-12-H1 is not closed: there is no close seal to verify"),
        ("last month", "error: period: 'last month'"),
        ("2026-13", "error: period: '2026-13'"),
    ):
        done_ = audit(closed_month, "verify-log", "--period", period)
        assert done_.exit_code == 2 and done_.stdout == "", done_.output
        assert done_.stderr.startswith(reason), done_.stderr


def test_audit_period_compares_every_level_and_only_reads(closed_month: Engine) -> None:
    before = everything(closed_month)
    done_ = audit(closed_month, "period", "2026-11")
    assert done_.exit_code == 0 and done_.stdout.endswith("events replayed, 0 differences\n"), done_.output
    assert everything(closed_month) == before  # nothing created, migrated or filled
    stored = snapshot_rows(closed_month)
    assert sorted(stored) == sorted(rm.LEVELS)
    # a score changed in a level other than the first, a level's events hash changed, a level gone
    level = next(lv for lv in ("town", "district", "category") if json.loads(stored[lv]["scores"]))
    scores = json.loads(stored[level]["scores"])
    unit, was = scores[0]["unit_key"], scores[0]["score"]
    scores[0]["score"] = "1.00"
    set_level(closed_month, level, scores=json.dumps(scores))
    set_level(closed_month, "order", events_hash="0" * 64)
    with closed_month.begin() as conn:
        conn.execute(period_snapshots.delete().where(period_snapshots.c.level == "grid"))
    done_ = audit(closed_month, "period", "2026-11")
    assert done_.exit_code == 1, done_.output
    lines = done_.stdout.splitlines()
    events_count = stored["department"]["events_count"]
    real = (stored["department"]["events_hash"], events_count)
    assert "snapshot/grid: (the level) is 'absent' where the recomputation gives 'present'" in lines
    assert (
        f"events/order: hash, count is {('0' * 64, events_count)!r} where the recomputation gives {real!r}"
        in lines
    )
    assert f"scores/{level}/{unit}: score is '1.00' where the recomputation gives {was!r}" in lines
    assert lines[-1].endswith("events replayed, 3 differences")


def test_a_corrupt_snapshot_is_refused_naming_it(closed_month: Engine) -> None:
    set_level(closed_month, "order", indicators='[{"unit_key": ')
    done_ = audit(closed_month, "period", "2026-11")
    assert done_.exit_code == 2 and "Traceback" not in done_.output
    assert done_.stderr.startswith(
        "error: snapshot: the snapshot of 2026-11 at level 'order': its indicators is not valid JSON ("
    ), done_.stderr


def test_an_unreadable_time_is_named_by_audit_period(closed_month: Engine) -> None:
    if closed_month.dialect.name != "sqlite":
        pytest.skip("only SQLite can store a time that is not a time")
    c = stored_events.c
    with closed_month.connect() as conn:
        target = conn.execute(select(stored_events).where(c.item_id == "B", c.sequence == 2)).one()
    with closed_month.begin() as conn:
        conn.execute(
            text("UPDATE event_store SET recorded_at = 'later' WHERE position = :p"), {"p": target.position}
        )
    done_ = audit(closed_month, "period", "2026-11")
    assert done_.exit_code == 2, done_.output
    assert done_.stderr == (
        f"error: event {target.event_id} (B #2, store position {target.position}): "
        "its recorded_at 'later' is not a time\n"
    )
