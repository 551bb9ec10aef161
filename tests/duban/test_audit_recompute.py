"""Issue 12, SLA repair: Thursday 5 November 2026 turns out to have been a public holiday that the
calendar missed. Greenery items have 5 working days (the close of business of the 5th working day
after the report's day); every number below is worked out by hand.

- A (parks): reported Mon 2 Nov 10:00. Deadline as recorded: Tue 3, Wed 4, Thu 5, Fri 6, Mon 9 →
  Mon 9 Nov 17:30 (09:30 UTC). Closed Tue 10 Nov 09:00: late; the breach (Mon 17:30) escalated it to
  the department head; the district leader was a working day later (Tue 17:30), after the close.
  Corrected (Thu 5 off): Tue 3, Wed 4, Fri 6, Mon 9, Tue 10 → Tue 10 Nov 17:30: on time, and the
  breach and the escalation had not been reached: both taken back.
- B (parks): reported Mon 2 Nov 11:00, closed Fri 6 Nov 15:00: on time either way; its deadline
  moves from Mon 9 to Tue 10 Nov 17:30.
- C, E (forestry): reported Wed 11 and Thu 12 Nov, after the holiday: untouched, on time.

November 2026 is scored under scorebook 2026.1 (on-time 0.4, rectification 0.3, dispatch 0.1,
rework 0.1 lower is better; report-in has no denominator and drops out; breach −0.5, escalation −1.0,
on-time close +0.1): rectification, dispatch and rework are perfect everywhere.
- parks as recorded: on-time 1/2: 100 × (0.4 × 1/2 + 0.5) / 0.9 = 77.7778; − 0.5 − 1.0 + 0.1 = 76.38,
  rank 2. Corrected: on-time 2/2: 100, + 0.2 = 100.20, rank 1 (shared).
- forestry: on-time 2/2: 100 + 0.2 = 100.20, rank 1 both ways.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers.items import CST, RULEBOOK
from helpers.notices import at, done, item
from helpers.projections import project
from sqlalchemy import Engine, select

from duban.audit.recompute import apply_corrections, recompute
from events.sql import make_engine
from projections import read_models as rm
from projections.frozen_periods import freeze_period, read_snapshots
from projections.projector import ItemProjector
from projections.scoring import load_scorebook

HOLIDAY = frozenset({datetime(2026, 11, 5).date()})
CLOSE = at(12, 1, 0, 10)


@pytest.fixture
def closed_month(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'sla.db'}")
    greenery = {"category": "greenery"}
    events = item("A", "parks", "Xicheng", at(11, 2, 10), *done(at(11, 10, 8)), **greenery)
    events += item("B", "parks", "Xicheng", at(11, 2, 11), *done(at(11, 6, 14)), **greenery)
    events += item("C", "forestry", "Nanhu", at(11, 11, 9), *done(at(11, 13, 9)), **greenery)
    events += item("E", "forestry", "Nanhu", at(11, 12, 9), *done(at(11, 13, 10)), **greenery)
    project(engine, events)
    freeze_period(engine, "2026-11", load_scorebook(), CLOSE)
    return engine


def by(differences: list, level: str, unit: str) -> dict[str, tuple[object, object]]:
    return {d.field: (d.found, d.expected) for d in differences if (d.level, d.unit) == (level, unit)}


def test_a_missed_holiday_moves_deadlines_outcomes_scores_and_ranks(closed_month: Engine) -> None:
    done_ = recompute(closed_month, "2026-11", RULEBOOK, added=HOLIDAY)
    fixes = {f.item_id: f for f in done_.corrections}
    assert sorted(fixes) == ["A", "B"]
    a, b = fixes["A"], fixes["B"]
    assert (a.previous_deadline, a.deadline) == (
        datetime(2026, 11, 9, 9, 30, tzinfo=UTC),
        datetime(2026, 11, 10, 9, 30, tzinfo=UTC),
    )
    assert (a.previous_on_time, a.on_time, a.breaches_reversed, a.escalations_reversed) == (False, True, 1, 1)
    assert (b.deadline, b.previous_on_time, b.on_time, b.breaches_reversed) == (a.deadline, True, True, 0)
    indicators = by([d for d in done_.differences if d.what == "indicators"], "department", "parks")
    assert (
        indicators["on_time_closure_rate"][0]["numerator"] == 1
        and indicators["on_time_closure_rate"][1]["numerator"] == 2
    )
    assert (
        indicators["on_time_closure_rate"][0]["value"],
        indicators["on_time_closure_rate"][1]["value"],
    ) == ("0.5000", "1.0000")
    assert (indicators["overdue_rate"][0]["value"], indicators["overdue_rate"][1]["value"]) == (
        "0.5000",
        "0.0000",
    )
    assert set(indicators) == {"on_time_closure_rate", "overdue_rate"}
    scores = by([d for d in done_.differences if d.what == "scores"], "department", "parks")
    assert scores["score"] == ("76.38", "100.20") and scores["rank"] == (2, 1)
    assert scores["deductions"] == ("1.5000", "0.0000") and scores["bonuses"] == ("0.1000", "0.2000")
    assert by([d for d in done_.differences if d.what == "scores"], "department", "forestry") == {}


def test_applied_corrections_count_in_the_next_open_period_and_the_snapshot_stays(
    closed_month: Engine,
) -> None:
    before = read_snapshots(closed_month, "2026-11", "department")[0]
    fixes = recompute(closed_month, "2026-11", RULEBOOK, added=HOLIDAY).corrections
    assert apply_corrections(closed_month, "2026-11", fixes, "5 November 2026 was a public holiday") == 2
    assert apply_corrections(closed_month, "2026-11", fixes, "5 November 2026 was a public holiday") == 0
    ItemProjector(closed_month).catch_up()
    assert read_snapshots(closed_month, "2026-11", "department")[0] == before  # a closed period never changes
    c = rm.unit_day_counters.c
    today = datetime.now(CST).date()  # the items' local day: after 16:00 UTC it is tomorrow there
    with closed_month.connect() as conn:
        moved = conn.execute(
            select(c.closed_on_time, c.closed_overdue, c.breached, c.escalated).where(
                c.level == "department",
                c.unit_key == "parks",
                c.day >= datetime(2026, 12, 1).date(),
                c.day <= today,
            )
        ).all()
        a = conn.execute(select(rm.item_view).where(rm.item_view.c.item_id == "A")).one()
    assert [tuple(r) for r in moved] == [(1, -1, -1, -1)]  # A's correction, counted on the day it was made
    assert a.on_time is True and a.resolution_deadline == datetime(2026, 11, 10, 9, 30, tzinfo=UTC)


def test_a_day_both_added_and_removed_is_refused(closed_month: Engine, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from duban.cli import app
    from events.errors import ValidationError

    url = closed_month.url.render_as_string(hide_password=False)
    args = ["audit", "recompute", "--period", "2026-11", "--database-url", url, "--add-holiday", "2026-11-05",
            "--add-holiday", "2026-11-06", "--remove-holiday", "2026-11-05"]  # fmt: skip
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 2 and done.stdout == "", done.output
    assert done.stderr == (
        "error: add_holiday, remove_holiday: 2026-11-05 given to both --add-holiday and "
        "--remove-holiday: a day is either added as a holiday or removed from the holidays, not both\n"
    )
    with pytest.raises(ValidationError, match="2026-11-05 given to both --add-holiday and --remove-holiday"):
        recompute(closed_month, "2026-11", RULEBOOK, added=HOLIDAY, removed=HOLIDAY)
