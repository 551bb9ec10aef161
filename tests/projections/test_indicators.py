"""Indicators from the event stream, worked out by hand for three rulebook items (China's calendar,
working day 09:00–12:00 + 13:30–17:30), on SQLite and PostgreSQL, and through ``duban indicators``.

``item_helpers.three_items``, on Monday 2 November 2026, all litter (2 working hours, deadline 11:00),
registered at 09:00 for UM:
- P: dispatched to U1 (UM) and returned at 09:10, dispatched to U2 (Greening) at 09:20, accepted;
  a grid call at 09:30 (arrival by 10:00): PWD reports in at 09:40, ISD late at 10:05; an extension
  to Tue 17:30 approved at 09:50; verification fails once (rework), passes at 10:40; closed on time
  at 10:50. Handling 1 h 50 min, all of it working time.
- Q: dispatched to U1, accepted, cancelled at 09:30.
- R: dispatched to U1, accepted, rectified and verified, closed overdue at 14:00. Handling 5 h of
  clock, 3 h 30 min of working time (09:00–12:00, 13:30–14:00).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from helpers.items import run
from helpers.items import three_items as scenario
from helpers.projections import fresh, project
from sqlalchemy import Engine
from typer.testing import CliRunner

from duban.cli import app
from events.sql import make_engine
from projections.indicators import INDICATOR_NAMES, IndicatorOptions, IndicatorRow, indicators
from workflows import item_rules as rules


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'i.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    eng = make_engine(url)
    fresh(eng)
    events = scenario()
    project(eng, events)
    yield eng
    fresh(eng)
    eng.dispose()


def table(rows: list[IndicatorRow], unit: str) -> dict[str, tuple[int, int, Decimal | None]]:
    [row] = [r for r in rows if r.unit_key == unit]
    return {n: (i.numerator, i.denominator, i.value) for n, i in row.indicators.items()}


def test_every_indicator_of_the_category_by_hand(engine: Engine) -> None:
    got = table(indicators(engine, "category"), "litter")
    assert got == {
        "rectification_rate": (2, 2, Decimal("1.0000")),  # P and R passed; base 3 registered − Q
        "closure_rate": (2, 2, Decimal("1.0000")),
        "on_time_closure_rate": (1, 2, Decimal("0.5000")),  # P on time, R late
        "overdue_rate": (1, 2, Decimal("0.5000")),
        "rework_rate": (1, 3, Decimal("0.3333")),  # 3 verifications, one failed
        "extension_rate": (1, 2, Decimal("0.5000")),
        "accurate_dispatch_rate": (3, 4, Decimal("0.7500")),  # 4 dispatches, P's first returned
        "on_time_report_in_rate": (1, 2, Decimal("0.5000")),  # PWD on time, ISD late
        "mean_handling_working_hours": (19200, 2, Decimal("2.67")),  # (6,600 + 12,600 s) / 2 items
        "mean_handling_hours": (24600, 2, Decimal("3.42")),  # (6,600 + 18,000 s) / 2 items
    }


def test_the_leader_owned_district_sees_all_three_items(engine: Engine) -> None:
    """All three items are in the Qiaotou district: its leader's indicators are the category's."""
    assert table(indicators(engine, "district"), "Qiaotou") == table(indicators(engine, "category"), "litter")


def test_cancelled_items_can_stay_in_the_base(engine: Engine) -> None:
    got = table(indicators(engine, "category", options=IndicatorOptions(cancelled="include")), "litter")
    assert got["rectification_rate"] == (2, 3, Decimal("0.6667"))
    assert got["closure_rate"] == (2, 3, Decimal("0.6667"))
    assert got["extension_rate"] == (1, 3, Decimal("0.3333"))


def test_departments_get_what_happened_while_the_item_was_theirs(engine: Engine) -> None:
    rows = indicators(engine, "department")
    assert [r.unit_key for r in rows] == ["Greening", "ISD", "PWD", "UM"]
    um, greening = table(rows, "UM"), table(rows, "Greening")
    assert um["accurate_dispatch_rate"] == (2, 3, Decimal("0.6667"))  # P's first, Q, R; P returned
    assert greening["accurate_dispatch_rate"] == (1, 1, Decimal("1.0000"))
    assert greening["on_time_closure_rate"] == (1, 1, Decimal("1.0000"))  # P closed under Greening
    assert um["on_time_closure_rate"] == (0, 1, Decimal("0.0000"))  # R
    assert table(rows, "PWD")["on_time_report_in_rate"] == (1, 1, Decimal("1.0000"))
    assert table(rows, "ISD")["on_time_report_in_rate"] == (0, 1, Decimal("0.0000"))
    assert table(rows, "ISD")["closure_rate"] == (0, 0, None)  # no denominator: no value


def test_a_period_outside_the_events_has_no_rows(engine: Engine) -> None:
    from datetime import date

    assert indicators(engine, "category", date(2026, 11, 3), date(2026, 11, 4)) == []
    assert len(indicators(engine, "category", date(2026, 11, 2), date(2026, 11, 3))) == 1


def test_duban_indicators_prints_json_rows(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    eng = make_engine(url)
    project(eng, scenario())
    done = CliRunner().invoke(
        app, ["indicators", "--by", "department", "--format", "json", "--database-url", url]
    )
    assert done.exit_code == 0, done.output
    rows = json.loads(done.output)
    assert [(r["level"], r["unit_key"]) for r in rows] == [
        ("department", "Greening"), ("department", "ISD"), ("department", "PWD"), ("department", "UM")
    ]  # fmt: skip
    for row in rows:
        assert set(row) == {"level", "unit_key", *INDICATOR_NAMES}
        for name in INDICATOR_NAMES:
            assert set(row[name]) >= {"numerator", "denominator", "value"}
    um = next(r for r in rows if r["unit_key"] == "UM")
    assert um["accurate_dispatch_rate"]["value"] == "0.6667"
    assert um["accurate_dispatch_rate"]["denominator_rule"] == "dispatches"
    unknown = CliRunner().invoke(app, ["indicators", "--by", "county", "--database-url", url])
    assert unknown.exit_code == 2


def test_item_rates_follow_the_cohort_and_never_exceed_one(tmp_path: Path) -> None:
    """An item registered on Monday and closed on Tuesday: Monday's closure rate is 1/1, Tuesday's has
    no denominator (flows would have said 1/0 on Tuesday and 0/1 on Monday)."""
    from datetime import date

    from helpers.items import cmd, cst, litter

    state, events = rules.register(litter(cst(11, 2, 9, 0)))
    for c in (
        cmd("dispatch", cst(11, 2, 9, 0), unit="U1", department="UM"),
        cmd("accept", cst(11, 2, 9, 5)),
        cmd("submit_rectification", cst(11, 3, 9, 0)),
        cmd("verify", cst(11, 3, 9, 30)),
        cmd("close", cst(11, 3, 10, 0)),
    ):
        events += run(state, c)
    eng = make_engine(f"sqlite:///{tmp_path / 'cohort.db'}")
    project(eng, events)
    monday = table(indicators(eng, "category", date(2026, 11, 2), date(2026, 11, 3)), "litter")
    tuesday = table(indicators(eng, "category", date(2026, 11, 3), date(2026, 11, 4)), "litter")
    assert monday["closure_rate"] == monday["rectification_rate"] == (1, 1, Decimal("1.0000"))
    assert tuesday["closure_rate"] == (0, 0, None)
    assert tuesday["overdue_rate"] == (1, 1, Decimal("1.0000"))  # a flow: closed on Tuesday, late
