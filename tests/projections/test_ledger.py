"""The problem ledger's read side (``projections.ledger``) on SQLite and PostgreSQL.

Events come from the real domain core, are stored, then projected. Expected rows are worked out by
hand from the scenario below (2026; ``NOW`` = 03-15T12:00Z), not copied from the code's output.

- A urban/Sibaoshan/C1/G1/North, Shanghai, reg 02-28T17:00Z (03-01 01:00 local), deadline +24 h,
  closed 03-01T01:00Z by office:zhang: 8 h of 24 h → green, on time, 0 days.
- B housing/Zhongbu/C2/G2/South, Shanghai, parking, reg 03-01T02:00Z, deadline 03-02T02:00Z, breached
  and escalated, closed 03-02T08:00Z: 6 h late = 0.25 days → 0.3 (half up), red.
- C urban/Sibaoshan/C1/G3/North, New York, reg 2026-01-01T03:00Z (2025-12-31 22:00 local), no
  deadline, closed 05:00Z: no light, 0 days.
- D housing/Zhongbu/C2/G2/South, Shanghai, reg 03-03T00:00Z, cancelled 01:00Z by office:zhang,
  "duplicate report": withdrawn, no light.
- E transport/Zhongbu/C3/G4, UTC, reg 03-05T08:00Z, merged into A at 09:00Z by office:wang, "same pile"
  (E and G run under the default rulebook, which merges and extensions need).
- F urban/Sibaoshan/C1/G1/North, Shanghai, reg 03-08T00:00Z, deadline 03-10T00:00Z, accepted, open:
  5.5 days overdue at NOW (no breach event was projected: the ledger computes it), red.
- G housing/Zhongbu/C2/G2/South, Shanghai, parking, reg 03-14T00:00Z, deadline 03-15T00:00Z extended
  to 03-24T00:00Z: 1.5 of 10 days → green, extended.
- H transport/Zhongbu/C3/G4, UTC, reg 03-14T00:00Z, deadline 03-15T12:00Z = NOW: yellow, not overdue.
- I urban/Sibaoshan/C1/G1/North, Shanghai, reg 03-15T00:00Z, no deadline, registered.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from helpers.projections import fresh, project
from sqlalchemy import Engine
from sqlalchemy.pool import QueuePool

from events.envelope import EventEnvelope
from events.errors import ValidationError
from events.sql import make_engine
from projections.ledger import LedgerFilter, LedgerRow, days, ledger_rows
from workflows import item_rules
from workflows.item_model import CommandKind as K
from workflows.item_model import ItemCommand, ItemState, Registration
from workflows.item_policy import apply_rulebook
from workflows.rulebook import DEFAULT_RULEBOOK_PATH, load_rulebook

RULEBOOK = load_rulebook(DEFAULT_RULEBOOK_PATH)
ROLE: dict[str, str] = {
    K.DISPATCH: "dispatcher", K.ACCEPT: "handling_unit", K.MERGE: "dispatcher",
    K.REQUEST_EXTENSION: "handling_unit", K.APPROVE_EXTENSION: "duty_chief",
}  # fmt: skip


def utc(month: int, day: int, hour: int = 0, minute: int = 0, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


NOW = utc(3, 15, 12)
SH, NY = "Asia/Shanghai", "America/New_York"
PLACES = {
    "urban": ("Sibaoshan", "C1", "North"),
    "housing": ("Zhongbu", "C2", "South"),
    "transport": ("Zhongbu", "C3", ""),
}


def _register(
    item_id: str,
    dept: str,
    zone: str,
    at: datetime,
    hours: int | None,
    grid: str = "G1",
    cat: str = "litter",
    ruled: bool = False,
) -> tuple[ItemState, list[EventEnvelope]]:
    """An item; ``ruled``: under the default rulebook (merges and extensions need one), its deadline
    given as the source's, so it runs on the clock as the others do."""
    town, community, district = PLACES[dept]
    reg = Registration(
        item_id=item_id, category=cat, reported_at=at, department=dept, unit=f"{dept}-team", town=town,
        community=community, grid=grid, zone=zone, district=district, source="patrol",
        resolution_deadline=at + timedelta(hours=hours) if hours else None,
        deadline_origin=("source" if ruled else "rule") if hours else "none",
    )  # fmt: skip
    return item_rules.register(apply_rulebook(reg, RULEBOOK, "china") if ruled else reg)


def _do(
    state: ItemState, kind: str, at: datetime, actor: str = "unit:team", **kw: Any
) -> list[EventEnvelope]:
    if kind in (K.DISPATCH, K.ACCEPT, K.REQUEST_EXTENSION):
        kw.setdefault("unit", state.unit)
    if kind == K.SUBMIT_RECTIFICATION:
        kw.setdefault("evidence", ["photo.jpg"])
    if state.registration.policy is not None:
        kw.setdefault("role", ROLE[kind])
    return item_rules.apply_command(state, ItemCommand(f"{state.item_id}:{kind}", kind, actor, at, **kw))


def _close(state: ItemState, times: list[datetime]) -> list[EventEnvelope]:
    """Dispatch, accept, submit, verify, close at ``times`` (close by office:zhang)."""
    kinds = (K.DISPATCH, K.ACCEPT, K.SUBMIT_RECTIFICATION, K.VERIFY, K.CLOSE)
    actors = ("dispatcher:ann", "unit:team", "unit:team", "inspector:li", "office:zhang")
    return [e for k, a, at in zip(kinds, actors, times, strict=True) for e in _do(state, k, at, a)]


def scenario() -> list[EventEnvelope]:
    """Every event of the module docstring's items, in time order."""
    out: list[EventEnvelope] = []
    st, ev = _register("A", "urban", SH, utc(2, 28, 17), 24)
    out += ev + _close(
        st, [utc(2, 28, 17, 10), utc(2, 28, 17, 20), utc(3, 1), utc(3, 1, 0, 30), utc(3, 1, 1)]
    )
    st, ev = _register("B", "housing", SH, utc(3, 1, 2), 24, grid="G2", cat="parking")
    ev += _do(st, K.DISPATCH, utc(3, 1, 2, 10), "dispatcher:ann") + _do(st, K.ACCEPT, utc(3, 1, 3))
    ev += item_rules.fire_due_timers(st, utc(3, 2, 3))  # warned, breached, escalated
    ev += _do(st, K.SUBMIT_RECTIFICATION, utc(3, 2, 4)) + _do(st, K.VERIFY, utc(3, 2, 5), "inspector:li")
    out += ev + _do(st, K.CLOSE, utc(3, 2, 8), "office:zhang")
    st, ev = _register("C", "urban", NY, utc(1, 1, 3), None, grid="G3")
    out += ev + _close(st, [utc(1, 1, 3, m) for m in (10, 20, 40, 50)] + [utc(1, 1, 5)])
    st, ev = _register("D", "housing", SH, utc(3, 3), 24, grid="G2")
    out += ev + _do(st, K.CANCEL, utc(3, 3, 1), "office:zhang", reason="duplicate report")
    st, ev = _register("E", "transport", "UTC", utc(3, 5, 8), 24, grid="G4", ruled=True)
    out += ev + _do(st, K.MERGE, utc(3, 5, 9), "office:wang", into_item_id="A", reason="same pile")
    st, ev = _register("F", "urban", SH, utc(3, 8), 48)
    out += ev + _do(st, K.DISPATCH, utc(3, 8, 1), "dispatcher:ann") + _do(st, K.ACCEPT, utc(3, 8, 2))
    st, ev = _register("G", "housing", SH, utc(3, 14), 24, grid="G2", cat="parking", ruled=True)
    ev += _do(st, K.DISPATCH, utc(3, 14, 1), "dispatcher:ann") + _do(st, K.ACCEPT, utc(3, 14, 2))
    ev += _do(st, K.REQUEST_EXTENSION, utc(3, 14, 6), new_deadline=utc(3, 24), reason="materials")
    out += ev + _do(st, K.APPROVE_EXTENSION, utc(3, 14, 6, 30), "chief:liu")
    out += _register("H", "transport", "UTC", utc(3, 14), 36, grid="G4")[1]
    out += _register("I", "urban", SH, utc(3, 15), None)[1]
    return sorted(out, key=lambda e: (e.occurred_at, e.item_id, e.sequence))


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """The scenario stored and projected, on a SQLite file or the session's PostgreSQL database."""
    url = f"sqlite:///{tmp_path / 'l.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    eng = make_engine(url)
    fresh(eng)
    result = project(eng, scenario())
    assert result.dead_lettered == 0
    yield eng
    eng.dispose()


def ids(engine: Engine, **filters: Any) -> list[str]:
    return [r.item_id for r in ledger_rows(engine, LedgerFilter(**filters), NOW)]


Z = Decimal("0.0")
# item: stage, light, overdue, days overdue, on time, escalation, extended, ended_at, by, reason, merged into
EXPECTED = {
    "C": ("closed", None, False, Z, None, 0, False, utc(1, 1, 5), "office:zhang", "", ""),
    "A": ("closed", "green", False, Z, True, 0, False, utc(3, 1, 1), "office:zhang", "", ""),
    "B": ("closed", "red", True, Decimal("0.3"), False, 1, False, utc(3, 2, 8), "office:zhang", "", ""),
    "D": ("cancelled", None, False, Z, None, 0, False, utc(3, 3, 1), "office:zhang", "duplicate report", ""),
    "E": ("merged", None, False, Z, None, 0, False, utc(3, 5, 9), "office:wang", "same pile", "A"),
    "F": ("accepted", "red", True, Decimal("5.5"), None, 0, False, None, "", "", ""),
    "G": ("accepted", "green", False, Z, None, 0, True, None, "", "", ""),
    "H": ("registered", "yellow", False, Z, None, 0, False, None, "", "", ""),
    "I": ("registered", None, False, Z, None, 0, False, None, "", "", ""),
}  # fmt: skip


def _outcome(r: LedgerRow) -> tuple[Any, ...]:
    return (
        r.stage, r.light, r.overdue, r.days_overdue, r.on_time, r.escalation_level, r.extended,
        r.ended_at, r.ended_by, r.end_reason, r.merged_into,
    )  # fmt: skip


def test_every_row_by_hand_in_registration_order(engine: Engine) -> None:
    rows = list(ledger_rows(engine, LedgerFilter(), NOW))
    assert [r.item_id for r in rows] == list(EXPECTED)  # by registration; G and H tie, then by id
    assert {r.item_id: _outcome(r) for r in rows} == EXPECTED
    by_id = {r.item_id: r for r in rows}
    a = by_id["A"]
    assert (a.department, a.unit, a.district, a.town, a.community, a.grid, a.category, a.zone) == (
        "urban", "urban-team", "North", "Sibaoshan", "C1", "G1", "litter", SH)  # fmt: skip
    assert a.registered_at == utc(2, 28, 17) and a.registered_at.tzinfo is not None
    assert a.local(a.registered_at).isoformat() == "2026-03-01T01:00:00+08:00"
    assert a.resolution_deadline is not None and a.ended_at is not None
    assert a.local(a.resolution_deadline).isoformat() == "2026-03-02T01:00:00+08:00"
    assert a.local(a.ended_at).isoformat() == "2026-03-01T09:00:00+08:00"
    assert a.local(None) is None
    c = by_id["C"]
    assert c.local(c.registered_at).isoformat() == "2025-12-31T22:00:00-05:00"
    assert by_id["G"].resolution_deadline == utc(3, 24)  # the extended deadline
    assert by_id["B"].resolution_deadline == utc(3, 2, 2)


def test_days_overdue_grow_with_now_for_open_items_only(engine: Engine) -> None:
    later = {r.item_id: r for r in ledger_rows(engine, LedgerFilter(), NOW + timedelta(hours=30))}
    assert later["F"].days_overdue == Decimal("6.8")  # 5.5 + 1.25 = 6.75 → 6.8
    assert later["B"].days_overdue == Decimal("0.3")  # closed late: fixed
    assert (later["H"].light, later["H"].days_overdue) == ("red", Decimal("1.3"))  # 1.25 → 1.3
    assert later["G"].light == "green"  # 2.75 of 10 days


def test_periods_are_local_days_of_each_items_zone(engine: Engine) -> None:
    assert ids(engine, period="2026-03") == ["A", "B", "D", "E", "F", "G", "H", "I"]
    assert ids(engine, period="2026-02") == []  # A is 02-28 in UTC but 03-01 in Shanghai
    assert ids(engine, period="2025-12") == ["C"]  # 2026-01-01 in UTC, 2025-12-31 in New York
    assert ids(engine, period="2026") == ["A", "B", "D", "E", "F", "G", "H", "I"]
    assert ids(engine, period="2026-W09") == ["A", "B"]  # Monday 02-23 to Sunday 03-01
    assert ids(engine, period="2026-W10") == ["D", "E", "F"]  # F: Sunday 03-08 08:00 in Shanghai
    assert ids(engine, period="2026-03-14") == ["G", "H"]  # I: 03-15 08:00 in Shanghai
    assert ids(engine, period="2026-03-H1") == ["A", "B", "D", "E", "F", "G", "H", "I"]


def test_filters_by_hand(engine: Engine) -> None:
    assert ids(engine, department="urban") == ["C", "A", "F", "I"]
    assert ids(engine, district="South") == ["B", "D", "G"]
    assert ids(engine, town="Zhongbu") == ["B", "D", "E", "G", "H"]
    assert ids(engine, community="C2") == ["B", "D", "G"]
    assert ids(engine, category="parking") == ["B", "G"]
    assert ids(engine, stage="open") == ["F", "G", "H", "I"]
    assert ids(engine, stage="closed") == ["C", "A", "B"]
    assert ids(engine, stage="merged") == ["E"]
    assert ids(engine, stage="accepted") == ["F", "G"]
    assert ids(engine, light="red") == ["B", "F"]
    assert ids(engine, light="yellow") == ["H"]
    assert ids(engine, light="green") == ["A", "G"]
    assert ids(engine, overdue=True) == ["B", "F"]
    assert ids(engine, overdue=False) == ["C", "A", "D", "E", "G", "H", "I"]
    assert ids(engine, department="urban", overdue=True, period="2026-03") == ["F"]
    assert ids(engine, stage="open", light="red") == ["F"]
    assert ids(engine, department="nobody") == []


def test_rows_stream_in_batches_and_release_the_connection(engine: Engine) -> None:
    rows = ledger_rows(engine, LedgerFilter(), NOW, batch_size=2)
    assert next(rows).item_id == "C"
    rows.close()  # the connection goes back to the pool
    assert [r.item_id for r in ledger_rows(engine, LedgerFilter(), NOW, batch_size=1)] == list(EXPECTED)
    assert isinstance(engine.pool, QueuePool) and engine.pool.checkedout() == 0


def test_bad_filters_are_refused_at_the_call(engine: Engine) -> None:
    with pytest.raises(ValidationError, match="stage"):
        ledger_rows(engine, LedgerFilter(stage="done"))
    with pytest.raises(ValidationError, match="light"):
        ledger_rows(engine, LedgerFilter(light="blue"))
    with pytest.raises(ValidationError, match="period"):
        ledger_rows(engine, LedgerFilter(period="2026-13"))
    with pytest.raises(ValueError, match="aware"):
        ledger_rows(engine, LedgerFilter(), datetime(2026, 3, 15, 12))  # naive on purpose


def test_days_to_a_tenth_half_up() -> None:
    assert days(timedelta(hours=6)) == Decimal("0.3")  # 0.25
    assert days(timedelta(hours=3, minutes=36)) == Decimal("0.2")  # 0.15
    assert days(timedelta(minutes=72)) == Decimal("0.1")  # 0.05
    assert days(timedelta(minutes=71, seconds=59)) == Decimal("0.0")
    assert days(timedelta(days=3, hours=12)) == Decimal("3.5")
    assert days(timedelta(0)) == Decimal("0.0")
