"""Bug: ``ItemSuspended`` was not projected, so a suspended item showed its old stage, and its light
and days overdue ran on while its clock stood still. Items from the real domain core (category
``pavement``: 24 clock hours to resolve, Asia/Shanghai, ``helpers.notices``), stored and projected,
read at ``NOW`` = Tue 10 Nov 2026 12:00 local. Worked out by hand:

- S: reported Mon 2 Nov 09:00 (deadline Tue 3rd 09:00), accepted 09:30, suspended Tue 3rd 03:00: its
  clock stopped at 18 h of 24 h (75% < 80%): green, not overdue, 0.0 days, stage ``suspended``. (Read
  at NOW without the suspension: red and 7.1 days overdue.)
- T: reported Mon 10:00 (deadline Tue 10:00), accepted, suspended Tue 16:00, 6 h past its deadline:
  red, overdue 0.25 days → 0.3 (half up), and it stays 0.3 at NOW.
- U: reported Mon 09:00, accepted, suspended Mon 21:00 (12 h used, 12 h left), resumed Thu 5th 09:00:
  stage ``accepted`` again, deadline Thu 5th 21:00 (the 12 h left from the resumption), open at NOW:
  4 days 15 h overdue = 4.625 → 4.6 days, red.
- V: reported Mon 09:00, accepted, suspended Mon 12:00, cancelled Mon 13:00: ``cancelled`` (a
  withdrawal ends the suspension), no light.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from helpers.notices import at, item
from helpers.projections import fresh, project, rebuilt
from sqlalchemy import Engine, select

from events.sql import make_engine
from projections import read_models as rm
from projections.dashboard import dashboard_data
from projections.findings import compute_findings
from projections.ledger import LedgerFilter, ledger_rows
from projections.scoring import load_scorebook

NOW = at(11, 10, 12)


def events() -> list[Any]:
    return (
        item("S", "UM", "Qiaotou", at(11, 2, 9), ("suspend", at(11, 3, 3)))
        + item("T", "UM", "Qiaotou", at(11, 2, 10), ("suspend", at(11, 3, 16)))
        + item("U", "Greening", "Xicheng", at(11, 2, 9), ("suspend", at(11, 2, 21)), ("resume", at(11, 5, 9)))
        + item(
            "V", "Greening", "Xicheng", at(11, 2, 9), ("suspend", at(11, 2, 12)), ("cancel", at(11, 2, 13))
        )
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Engine:
    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'suspended.db'}")
    else:
        eng = make_engine(request.getfixturevalue("pg_url"))
        fresh(eng)
    assert project(eng, events()).dead_lettered == 0
    return eng


def test_the_item_view_shows_a_suspension_and_a_resumption(engine: Engine, tmp_path: Path) -> None:
    with engine.connect() as conn:
        views = {r.item_id: r for r in conn.execute(select(rm.item_view))}
    assert {k: v.stage for k, v in views.items()} == {
        "S": "suspended", "T": "suspended", "U": "accepted", "V": "cancelled"
    }  # fmt: skip
    assert views["S"].suspended_at == at(11, 3, 3) and views["S"].resume_stage == "accepted"
    assert views["U"].suspended_at is None and views["U"].resume_stage is None
    assert views["U"].resolution_deadline == at(11, 5, 21)
    assert views["V"].suspended_at is None
    # the live read models equal those rebuilt from the event store (duban rebuild-read-models)
    assert rm.table_checksum(engine, rm.READ_MODEL_TABLES) == rebuilt(engine, tmp_path)


def test_the_ledger_stops_a_suspended_items_clock(engine: Engine) -> None:
    rows = {r.item_id: r for r in ledger_rows(engine, LedgerFilter(), NOW)}
    got = {k: (r.stage, r.light, r.overdue, r.days_overdue) for k, r in rows.items()}
    assert got == {
        "S": ("suspended", "green", False, Decimal("0.0")),
        "T": ("suspended", "red", True, Decimal("0.3")),
        "U": ("accepted", "red", True, Decimal("4.6")),
        "V": ("cancelled", None, False, Decimal("0.0")),
    }
    assert [r.item_id for r in ledger_rows(engine, LedgerFilter(stage="suspended"), NOW)] == ["S", "T"]
    assert [r.item_id for r in ledger_rows(engine, LedgerFilter(stage="open"), NOW)] == ["S", "U", "T"]
    assert [r.item_id for r in ledger_rows(engine, LedgerFilter(light="green"), NOW)] == ["S"]


def test_the_dashboard_and_the_findings_count_a_suspended_item_as_it_stood(engine: Engine) -> None:
    board = dashboard_data(engine, "2026-11", "department", load_scorebook(), NOW)
    cards = board["cards"]
    # open: S, T, U; lights: S green, T and U red; past the deadline: T (when suspended) and U
    assert (cards["open"], cards["green"], cards["yellow"], cards["red"], cards["overdue"]) == (3, 1, 0, 2, 2)
    found = compute_findings(engine, datetime(2026, 11, 2).date(), datetime(2026, 11, 9).date(), NOW)
    overdue = {line["item_id"]: line["days"] for line in found["overdue_open"]["items"]}
    assert overdue == {"T": "0.3", "U": "4.6"}  # T: 6 h at its suspension; U: 4 d 15 h at NOW


def test_the_items_list_filters_suspended_items(engine: Engine) -> None:
    from duban.gateway.views import ItemFilter, list_items

    page = list_items(engine, ItemFilter(stage="suspended"), 1, 50)
    assert (page["total"], sorted(i["item_id"] for i in page["items"])) == (2, ["S", "T"])
    lights = {i["item_id"]: i["light"] for i in page["items"]}
    assert lights == {"S": "green", "T": "red"}
