"""Issue 11, interviews (约谈): each rule of the scorebook fires for the unit built to meet it and for
no other; the interviews are recorded as events, reach the read models and the monthly notice."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
import yaml
from helpers.notices import at, item, late, on_time
from helpers.projections import project
from sqlalchemy import Engine, select

from events import types as t
from events.envelope import EventEnvelope
from events.errors import ValidationError
from events.sql import make_engine
from events.store import EventStore
from projections import read_models as rm
from projections.findings import read_findings
from projections.frozen_periods import freeze_period
from projections.interviews import record_interviews
from projections.notices import build_notice
from projections.projector import ItemProjector
from projections.scorebook import DEFAULT_SCOREBOOK_PATH, Scorebook, parse_scorebook
from projections.store_sync import backlog

END_OF_OCTOBER, END_OF_NOVEMBER = at(11, 1, 0, 10), at(12, 1, 0, 10)


def scorebook(*rules: dict[str, object]) -> Scorebook:
    """The default scorebook's first version with ``rules`` as its interview rules."""
    data = yaml.safe_load(DEFAULT_SCOREBOOK_PATH.read_text(encoding="utf-8"))
    data["versions"] = [data["versions"][0] | {"interviews": list(rules)}]
    return parse_scorebook(data)


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return make_engine(f"sqlite:///{tmp_path / 'interviews.db'}")


def close(engine: Engine, book: Scorebook, *months: tuple[str, datetime]) -> None:
    for month, when in months:
        freeze_period(engine, month, book, when)


def called(engine: Engine, month: str) -> list[tuple[str, list[str]]]:
    found = read_findings(engine, month) or {}
    return [(i["unit_key"], i["rules"]) for i in found.get("interviews", [])]


def test_last_place_two_months_running(engine: Engine) -> None:
    """October: UM on time; Greening and Parks late alike, sharing last place. November: UM and
    Greening on time, Parks late, alone in last place. Only Parks was last both months."""
    events: list[EventEnvelope] = []
    events += on_time("O-UM", "UM", at(10, 20, 9)) + late("O-GR", "Greening", at(10, 20, 9))
    events += late("O-PK", "Parks", at(10, 20, 9))
    events += on_time("N-UM", "UM", at(11, 10, 9)) + on_time("N-GR", "Greening", at(11, 10, 9))
    events += late("N-PK", "Parks", at(11, 10, 9))
    project(engine, events)
    book = scorebook({"rule": "last_place", "level": "department", "periods": 2})
    close(engine, book, ("2026-10", END_OF_OCTOBER), ("2026-11", END_OF_NOVEMBER))
    assert called(engine, "2026-10") == []  # September was never closed: nothing is guessed
    assert called(engine, "2026-11") == [("Parks", ["last_place"])]
    [reason] = (read_findings(engine, "2026-11") or {})["interviews"][0]["reasons"]
    assert reason == "ranked last at department level in each of 2026-10, 2026-11"


def test_breaches_in_the_month(engine: Engine) -> None:
    """Housing breaches twice in November, Parks once: the rule wants at least two."""
    events = late("H1", "Housing", at(11, 3, 9)) + late("H2", "Housing", at(11, 17, 9))
    events += late("P1", "Parks", at(11, 3, 9)) + on_time("U1", "UM", at(11, 3, 9))
    project(engine, events)
    book = scorebook({"rule": "counter_at_least", "level": "department", "counter": "breached", "min": 2})
    close(engine, book, ("2026-11", END_OF_NOVEMBER))
    assert called(engine, "2026-11") == [("Housing", ["counter_at_least"])]
    assert (read_findings(engine, "2026-11") or {})["interviews"][0]["reasons"] == [
        "2 breached in the month (the rule: at least 2)"
    ]


def test_an_item_escalated_to_a_city_order_and_overdue(engine: Engine) -> None:
    """Reported Mon 2 Nov 09:00, due Tue 09:00, never rectified: the ladder reaches the city order
    (rung 4) 1 + 3 + 5 = 9 working days after the breach, well before the close. An item reported
    Thu 26 November 09:00 breaches Fri 09:00 (department head) and reaches the district leader a
    working day later, Mon 30th 09:00 (rung 2), and no further by the close."""
    events = item("CITY", "Greening", "Xicheng", at(11, 2, 9), until=END_OF_NOVEMBER)
    events += item("NEW", "Parks", "Xicheng", at(11, 26, 9), until=END_OF_NOVEMBER)
    project(engine, events)
    with engine.connect() as conn:
        levels = dict(conn.execute(select(rm.item_view.c.item_id, rm.item_view.c.escalation_level)).all())
    assert levels == {"CITY": 4, "NEW": 2}
    book = scorebook({"rule": "city_order_overdue", "level": "department"})
    close(engine, book, ("2026-11", END_OF_NOVEMBER))
    assert called(engine, "2026-11") == [("Greening", ["city_order_overdue"])]


def test_interviews_are_recorded_once_as_events_and_reach_the_notice(engine: Engine) -> None:
    events = late("H1", "Housing", at(11, 3, 9)) + late("H2", "Housing", at(11, 17, 9))
    project(engine, events)
    book = scorebook({"rule": "counter_at_least", "level": "department", "counter": "breached", "min": 2})
    close(engine, book, ("2026-11", END_OF_NOVEMBER))
    assert record_interviews(engine, "2026-11", END_OF_NOVEMBER, "2026.1") == 1
    assert record_interviews(engine, "2026-11", END_OF_NOVEMBER, "2026.1") == 0  # once
    [event] = [e for e in EventStore(engine).read() if e.event_type == t.INTERVIEW_REQUIRED]
    assert event.payload["unit_key"] == "Housing" and event.payload["period"] == "2026-11"
    assert backlog(engine) == 1  # stored, not yet projected
    ItemProjector(engine).catch_up()
    with engine.connect() as conn:
        rows = conn.execute(select(rm.interviews)).all()
    assert [(r.period, r.level, r.unit_key) for r in rows] == [("2026-11", "department", "Housing")]
    notice = build_notice(engine, "monthly", "2026-11", book)
    assert [i["unit_key"] for i in notice.findings["interviews"]] == ["Housing"]


@pytest.mark.parametrize(
    ("rule", "field"),
    [
        ({"rule": "sometimes"}, "versions[0].interviews[0].rule"),
        ({"rule": "last_place", "level": "planet"}, "versions[0].interviews[0].level"),
        ({"rule": "counter_at_least", "counter": "sneezes"}, "versions[0].interviews[0].counter"),
        ({"rule": "last_place", "periods": 1}, "versions[0].interviews[0].periods"),
    ],
)
def test_a_bad_rule_is_refused_with_its_path(rule: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        scorebook(rule)
    assert info.value.field == field
