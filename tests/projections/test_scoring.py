"""Scores of the three items of ``test_indicators`` (``item_helpers.three_items``), worked out by hand.

Default scorebook: weights on-time 0.40, rectification 0.30, accurate dispatch 0.10, on-time report-in
0.10, rework 0.10 (lower is better); deductions breached 0.5, escalated 1.0, late report-in 0.5,
returned 0.5; bonus 0.1 per item closed on time; bands 90 / 80 / 60 / 0.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers.items import three_items
from helpers.projections import fresh
from helpers.projections import project as stored_project
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from duban.cli import app
from events.envelope import EventEnvelope, make_event_id
from events.errors import ValidationError
from events.sql import make_engine
from projections import read_models as rm
from projections.scoring import (
    DEFAULT_SCOREBOOK_PATH,
    Score,
    load_scorebook,
    parse_scorebook,
    round_score,
    score_adjustment,
    score_units,
    with_movement,
)

DAY = date(2026, 11, 2)
BOOK = load_scorebook()


def project(engine: Engine, events: list[EventEnvelope], first_offset: int = 0) -> None:
    stored_project(engine, events, first_offset=first_offset)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 's.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    eng = make_engine(url)
    fresh(eng)
    project(eng, three_items())
    yield eng
    fresh(eng)
    eng.dispose()


def scores(engine: Engine, level: str, book: Any = BOOK) -> dict[str, tuple[int, Decimal | None, str]]:
    return {
        s.unit_key: (s.rank, s.score, s.band)
        for s in score_units(engine, level, DAY, date(2026, 11, 3), book)
    }


def test_category_score_by_hand(engine: Engine) -> None:
    [litter] = score_units(engine, "category", DAY, date(2026, 11, 3), BOOK)
    # 100 × (0.4 × 1/2 + 0.3 × 2/2 + 0.1 × 3/4 + 0.1 × 1/2 + 0.1 × (1 − 1/3)) = 69.1666…
    assert litter.composite == Fraction(415, 6)
    assert litter.deductions == Fraction(5, 2)  # a breach 0.5, an escalation 1.0, ISD late 0.5, a return 0.5
    assert litter.bonuses == Fraction(1, 10)  # P closed on time
    assert (litter.score, litter.band, litter.version) == (Decimal("66.77"), "pass", "2026.1")  # 66.7666…


def test_department_scores_and_ranks_by_hand(engine: Engine) -> None:
    assert scores(engine, "department") == {
        "PWD": (1, Decimal("100.00"), "excellent"),  # only its report-in, on time: 100 × 0.1 / 0.1
        "Greening": (2, Decimal("91.77"), "excellent"),  # 100 × (0.4 + 0.1 + 0.1 × 1/2) / 0.6 + 0.1
        # UM registered all three; P and R passed (cohort 2/2): 100 × (0.3 + 0.1 × 2/3 + 0.1) / 0.9 − 2.0
        "UM": (3, Decimal("49.85"), "fail"),  # 51.8518… − 2.0 = 49.8518…
        # its late report-in: 0 − 0.5; below every band's minimum (fail: 0), so the lowest band
        "ISD": (4, Decimal("-0.50"), "fail"),
    }


def test_a_score_below_every_band_gets_the_lowest_band() -> None:
    """Bug: a negative score had no band. The scorebook's bands are the highest whose minimum the
    score reaches; below all of them (deductions past the composite) the lowest band still applies."""
    version = BOOK.in_force(DAY)
    lowest = min(version.bands, key=lambda b: b.min)
    assert (lowest.name, lowest.min) == ("fail", Decimal(0))
    assert [version.band(Decimal(v)) for v in ("-0.01", "-1000", "0", "59.99", "60", "90")] == [
        "fail",
        "fail",
        "fail",
        "fail",
        "pass",
        "excellent",
    ]


def test_caps_limit_the_points_of_a_rule(engine: Engine) -> None:
    data = yaml.safe_load(DEFAULT_SCOREBOOK_PATH.read_text(encoding="utf-8"))
    capped = copy.deepcopy(data)
    capped["versions"][0]["deductions"][1]["cap"] = 0.25  # escalated: 1.0 per event, at most 0.25
    # UM: 51.8518… − (0.5 + 0.25 + 0.5) = 50.6018… → 50.60
    assert scores(engine, "department", parse_scorebook(capped))["UM"][1] == Decimal("50.60")


def test_a_manual_adjustment_is_an_event_with_a_reason_and_an_approver(engine: Engine) -> None:
    at = datetime(2026, 11, 3, 2, tzinfo=UTC)
    good = score_adjustment(
        "A-1", "category", "litter", DAY, Decimal("1.25"), "storm relief work", "chief:li", at
    )
    bad_id = "score-adjustment:A-bad"  # stored, but not an adjustment the projection can apply
    bad = good.__class__(
        **{**good.__dict__, "event_id": make_event_id(bad_id, 1), "item_id": bad_id,
           "payload": {**good.payload, "approver": " "}}
    )  # fmt: skip
    project(engine, [good, good, bad], first_offset=1000)  # the repeat is applied once
    [litter] = score_units(engine, "category", DAY, date(2026, 11, 3), BOOK)
    assert litter.adjustments == Fraction(5, 4) and litter.score == Decimal("68.02")  # 66.7666… + 1.25
    with engine.connect() as conn:
        [dead] = conn.execute(select(rm.dead_letters.c.reason)).scalars()
    assert dead.startswith("payload.approver: must not be empty")
    with pytest.raises(ValidationError) as info:
        score_adjustment("A-2", "category", "litter", DAY, Decimal("1"), "", "chief:li", at)
    assert info.value.field == "reason"


def test_equal_scores_share_a_rank_and_movement_is_against_the_previous_period() -> None:
    def s(unit: str, score: str | None, rank: int) -> Score:
        value = None if score is None else Decimal(score)
        return Score("department", unit, rank, value, "", None, Fraction(0), Fraction(0), Fraction(0), "v")

    current = [s("A", "90.00", 1), s("B", "90.00", 1), s("C", "80.00", 3), s("D", None, 4)]
    previous = [s("A", "70.00", 3), s("C", "95.00", 1), s("D", "60.00", 4)]
    moved = {x.unit_key: x.movement for x in with_movement(current, previous)}
    assert moved == {"A": 2, "B": None, "C": -2, "D": None}


def test_rounding_is_half_up_and_exact() -> None:
    assert round_score(Fraction(66765, 1000)) == Decimal("66.77")  # exactly halfway: up
    assert round_score(Fraction(-1, 200)) == Decimal("-0.01")  # half away from zero
    assert round_score(Fraction(1, 3)) == Decimal("0.33")


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("weights", 0, "weight"), 0.5, "versions[0].weights"),  # weights no longer sum to 1
        (("weights", 0, "indicator"), "mean_handling_hours", "versions[0].weights[0].indicator"),
        (("weights", 4, "better"), "smaller", "versions[0].weights[4].better"),
        (("deductions", 0, "counter"), "coffee", "versions[0].deductions[0].counter"),
        (("deductions", 0, "points"), -1, "versions[0].deductions[0].points"),
        (("effective_from",), "soon", "versions[0].effective_from"),
    ],
)
def test_a_bad_scorebook_names_the_field(path: tuple[Any, ...], value: object, field: str) -> None:
    data = yaml.safe_load(DEFAULT_SCOREBOOK_PATH.read_text(encoding="utf-8"))
    target = data["versions"][0]
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ValidationError) as info:
        parse_scorebook(data)
    assert info.value.field == field


def test_duban_scores_prints_json(engine: Engine) -> None:
    url = str(engine.url)
    done = CliRunner().invoke(
        app,
        ["scores", "--period", "2026-11-02", "--by", "department", "--format", "json", "--database-url", url],
    )
    assert done.exit_code == 0, done.output
    rows = json.loads(done.output)
    assert [(r["rank"], r["unit_key"], r["score"], r["movement"]) for r in rows] == [
        (1, "PWD", "100.00", None),
        (2, "Greening", "91.77", None),
        (3, "UM", "49.85", None),
        (4, "ISD", "-0.50", None),
    ]
    assert rows[2]["composite"] == "51.8519" and rows[2]["deductions"] == "2.0000"


@pytest.mark.parametrize(
    ("text", "field", "reason"),
    [
        ("versions: [", "scorebook", "is not a valid YAML scorebook"),
        ("versions:\n  - version: x\n    effective_from: 2020-13-01\n", "scorebook", "is not a valid YAML"),
        ("versions: 5", "versions", "must be a list"),
        ("- 1\n- 2", "scorebook", "must be a mapping"),
    ],
)
def test_a_scorebook_file_that_is_not_one_is_a_clear_error(
    tmp_path: Path, text: str, field: str, reason: str
) -> None:
    path = tmp_path / "book.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValidationError) as info:
        load_scorebook(path)
    assert info.value.field == field and reason in info.value.reason


def test_a_missing_scorebook_and_a_twice_weighted_indicator(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as info:
        load_scorebook(tmp_path / "nowhere.yaml")
    assert info.value.field == "scorebook" and "cannot be read" in info.value.reason
    data = yaml.safe_load(DEFAULT_SCOREBOOK_PATH.read_text(encoding="utf-8"))
    data["versions"][0]["weights"][1]["indicator"] = "on_time_closure_rate"
    with pytest.raises(ValidationError) as info:
        parse_scorebook(data)
    assert info.value.field == "versions[0].weights[1].indicator" and "twice" in info.value.reason


@pytest.mark.parametrize(
    "args",
    [
        ["scores", "--period", "2026-11-02", "--database-url", "mysql://x/y"],
        ["indicators", "--database-url", "sqlite://"],
        ["rebuild-read-models", "--database-url", "sqlite:////nonexistent/events.sql"],
        ["scores", "--period", "20261102", "--database-url", "sqlite:////nonexistent/events.sql"],
    ],
)
def test_bad_databases_and_periods_are_one_line_errors(args: list[str]) -> None:
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 2 and done.output.startswith("error: ") and "Traceback" not in done.output
    assert done.output.count("\n") == 1
