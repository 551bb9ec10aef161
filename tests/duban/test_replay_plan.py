"""Planning a replay (duban.jobs.replay_plan.plan_case) on hand-built imported cases.

Each plan is also applied to the real domain core (workflows.item_rules) in the order the replay
delivers it: register → initial commands → timers due by ``later_at`` → later commands. Expected
values (deadlines, dates, on-time outcomes) are worked out by hand from the cases below.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from duban.importers.base import CaseStatus, ImportedCase
from duban.jobs.replay_plan import CasePlan, plan_case
from events import types as t
from events.envelope import EventEnvelope
from workflows import item_rules
from workflows.errors import IllegalCommand
from workflows.item_model import CommandKind, ItemCommand, ItemState, Registration, Stage

PROFILE = "boston311"


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


REPORTED = utc(2022, 1, 17, 16, 20)
DEADLINE = utc(2022, 1, 18, 16, 20, 22)  # 24 h 0 min 22 s after the report
CLOSED = utc(2022, 1, 18, 15, 8, 24)  # 1 h 11 min 58 s before the deadline: on time

CLOSED_CASE = ImportedCase(
    item_id="101004128563",
    category="Street Light Knock Downs",
    category_group="Street Lights",
    department="PWDx",
    unit="PWDx_Street Light Knock Downs",
    town="Downtown / Financial District",
    community="Ward 3",
    grid="0306",
    zone="America/New_York",
    reported_at=REPORTED,
    deadline=DEADLINE,
    closed_at=CLOSED,
    status=CaseStatus.CLOSED,
    source="Constituent Call",
    row_number=2,
    city_on_time=True,
)
UNIT_ACTOR = "unit:PWDx_Street Light Knock Downs"


def apply_plan(plan: CasePlan) -> tuple[ItemState, list[EventEnvelope]]:
    """Run the plan through the pure domain core as the replay delivers it."""
    state, events = item_rules.register(plan.registration)
    for cmd in plan.initial_commands:
        events += item_rules.apply_command(state, cmd)
    if plan.later_at is not None:
        events += item_rules.fire_due_timers(state, plan.later_at)
        for cmd in plan.later:
            events += item_rules.apply_command(state, cmd)
    return state, events


def kinds_and_times(commands: list[ItemCommand]) -> list[tuple[str, datetime]]:
    return [(c.kind, c.occurred_at) for c in commands]


# --- closed cases --------------------------------------------------------------------------------


def test_closed_case_registration_carries_the_city_deadline() -> None:
    plan = plan_case(CLOSED_CASE, PROFILE)
    assert plan.case is CLOSED_CASE
    assert plan.registration == Registration(
        item_id="101004128563",
        category="Street Light Knock Downs",
        category_group="Street Lights",
        reported_at=REPORTED,
        department="PWDx",
        unit="PWDx_Street Light Knock Downs",
        town="Downtown / Financial District",
        community="Ward 3",
        grid="0306",
        zone="America/New_York",
        source="Constituent Call",
        actor="source:boston311",
        response_deadline=None,
        resolution_deadline=DEADLINE,
        deadline_origin="source",
    )


def test_closed_case_initial_commands_dispatch_and_accept_when_reported() -> None:
    plan = plan_case(CLOSED_CASE, PROFILE)
    assert kinds_and_times(plan.initial_commands) == [
        (CommandKind.DISPATCH, REPORTED),
        (CommandKind.ACCEPT, REPORTED),
    ]
    dispatch, accept = plan.initial_commands
    assert dispatch.command_id == "101004128563:dispatch"
    assert accept.command_id == "101004128563:accept"
    assert dispatch.actor == "dispatcher:boston311"
    assert (dispatch.department, dispatch.unit) == ("PWDx", "PWDx_Street Light Knock Downs")
    assert (accept.actor, accept.unit) == (UNIT_ACTOR, "PWDx_Street Light Knock Downs")


def test_closed_case_later_commands_rectify_verify_close_when_closed() -> None:
    plan = plan_case(CLOSED_CASE, PROFILE)
    assert kinds_and_times(plan.later) == [
        (CommandKind.SUBMIT_RECTIFICATION, CLOSED),
        (CommandKind.VERIFY, CLOSED),
        (CommandKind.CLOSE, CLOSED),
    ]
    assert [c.command_id for c in plan.later] == [
        "101004128563:submit_rectification",
        "101004128563:verify",
        "101004128563:close",
    ]
    assert plan.later_at == CLOSED
    submit, verify, close = plan.later
    assert submit.actor == UNIT_ACTOR
    assert verify.actor == "inspector:boston311"
    assert close.actor == "office:boston311"
    assert verify.actor != submit.actor  # the unit that rectified cannot verify
    assert verify.passed is True


def test_command_ids_are_unique_and_stable_across_plans() -> None:
    first, second = plan_case(CLOSED_CASE, PROFILE), plan_case(CLOSED_CASE, PROFILE)
    ids = [c.command_id for c in first.initial_commands + first.later]
    assert len(set(ids)) == len(ids) == 5
    assert ids == [c.command_id for c in second.initial_commands + second.later]


def test_closed_case_on_time_applied_through_the_domain_core() -> None:
    state, events = apply_plan(plan_case(CLOSED_CASE, PROFILE))
    assert state.stage == Stage.CLOSED
    assert state.on_time is True  # closed 2022-01-18 15:08:24Z ≤ deadline 16:20:22Z
    assert state.overdue is False
    assert state.closed_at == CLOSED
    assert state.rectified_by == UNIT_ACTOR
    assert [e.event_type for e in events] == [
        t.ITEM_REGISTERED,
        t.ITEM_DISPATCHED,
        t.ITEM_ACCEPTED,
        # the warning is due at 75 % of the window: 2022-01-17 16:20 + 18 h 0 min 16.5 s
        t.DEADLINE_WARNED,
        t.RECTIFICATION_SUBMITTED,
        t.RECTIFICATION_VERIFIED,
        t.ITEM_CLOSED,
    ]
    warned = events[3]
    assert warned.occurred_at == datetime(2022, 1, 18, 10, 20, 16, 500000, tzinfo=UTC)
    closed = events[-1]
    assert closed.payload["on_time"] is True
    assert closed.payload["handling_seconds"] == 22 * 3600 + 48 * 60 + 24  # 16:20:00 → 15:08:24 next day
    assert closed.occurred_at == CLOSED


def test_closed_case_overdue_applied_through_the_domain_core() -> None:
    late = replace(CLOSED_CASE, closed_at=utc(2022, 1, 18, 16, 20, 23))  # one second after the deadline
    state, events = apply_plan(plan_case(late, PROFILE))
    assert state.stage == Stage.CLOSED
    assert state.on_time is False and state.overdue is True
    assert [e.event_type for e in events][3:] == [
        t.DEADLINE_WARNED,
        t.DEADLINE_BREACHED,
        t.ITEM_ESCALATED,
        t.RECTIFICATION_SUBMITTED,
        t.RECTIFICATION_VERIFIED,
        t.ITEM_CLOSED,
    ]
    assert events[-1].payload["on_time"] is False


def test_closed_exactly_at_the_deadline_is_on_time() -> None:
    at_deadline = replace(CLOSED_CASE, closed_at=DEADLINE)
    state, _ = apply_plan(plan_case(at_deadline, PROFILE))
    assert (state.stage, state.on_time) == (Stage.CLOSED, True)


def test_rectifying_unit_cannot_verify_its_own_work() -> None:
    """The rule the plan's actors satisfy: the same actor verifying is refused by the domain core."""
    plan = plan_case(CLOSED_CASE, PROFILE)
    state, _ = item_rules.register(plan.registration)
    for cmd in [*plan.initial_commands, plan.later[0]]:
        item_rules.apply_command(state, cmd)
    own = replace(plan.later[1], actor=plan.later[0].actor)
    with pytest.raises(IllegalCommand, match="cannot verify"):
        item_rules.apply_command(state, own)
    item_rules.apply_command(state, plan.later[1])  # the planned inspector may
    assert state.stage == Stage.VERIFIED


def test_replaying_a_plan_twice_applies_each_command_once() -> None:
    plan = plan_case(CLOSED_CASE, PROFILE)
    state, events = apply_plan(plan)
    again = [e for cmd in plan.initial_commands + plan.later for e in item_rules.apply_command(state, cmd)]
    assert again == []
    assert state.sequence == len(events)


def test_case_without_deadline() -> None:
    case = replace(CLOSED_CASE, deadline=None, city_on_time=None)
    plan = plan_case(case, PROFILE)
    assert plan.registration.resolution_deadline is None
    assert plan.registration.deadline_origin == "none"
    state, events = apply_plan(plan)
    assert state.stage == Stage.CLOSED
    assert state.on_time is None and state.overdue is False
    assert [e.event_type for e in events] == [
        t.ITEM_REGISTERED,
        t.ITEM_DISPATCHED,
        t.ITEM_ACCEPTED,
        t.RECTIFICATION_SUBMITTED,
        t.RECTIFICATION_VERIFIED,
        t.ITEM_CLOSED,
    ]  # no timers without a deadline
    assert events[-1].payload["on_time"] is None
    assert events[-1].payload["resolution_deadline"] is None


def test_case_closed_before_it_was_reported_is_delivered_at_registration() -> None:
    early = utc(2022, 1, 17, 15, 0)  # 1 h 20 min before the report (a data anomaly)
    case = replace(CLOSED_CASE, closed_at=early, anomalies=("closed_before_reported",))
    plan = plan_case(case, PROFILE)
    assert plan.later_at == REPORTED
    assert [c.kind for c in plan.later] == [
        CommandKind.SUBMIT_RECTIFICATION,
        CommandKind.VERIFY,
        CommandKind.CLOSE,
    ]
    assert all(c.occurred_at == early for c in plan.later)  # dated as recorded
    state, events = apply_plan(plan)
    assert state.stage == Stage.CLOSED
    assert state.closed_at == early
    assert state.on_time is True  # closed before the deadline (and before the report)
    assert events[-1].payload["handling_seconds"] == -80 * 60


def test_uncategorised_case_and_missing_unit_fall_back() -> None:
    case = replace(CLOSED_CASE, category="", unit="")
    plan = plan_case(case, PROFILE)
    assert plan.registration.category == "(uncategorised)"
    assert plan.initial_commands[1].actor == "unit:PWDx"  # the department stands in for the unit
    case = replace(CLOSED_CASE, department="", unit="")
    assert plan_case(case, PROFILE).initial_commands[1].actor == "unit:unknown"


# --- cancelled and referred-out cases --------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (CaseStatus.CANCELLED, "cancelled in source"),
        (CaseStatus.REFERRED_OUT, "referred out in source"),
    ],
)
def test_cancelled_and_referred_out_cases_get_one_cancel(status: CaseStatus, reason: str) -> None:
    case = replace(CLOSED_CASE, status=status)
    plan = plan_case(case, PROFILE)
    assert len(plan.later) == 1
    cancel = plan.later[0]
    assert cancel.kind == CommandKind.CANCEL
    assert cancel.command_id == "101004128563:cancel"
    assert cancel.actor == "office:boston311"
    assert cancel.reason == reason
    assert cancel.occurred_at == CLOSED
    assert plan.later_at == CLOSED
    state, events = apply_plan(plan)
    assert state.stage == Stage.CANCELLED
    assert state.on_time is None and state.closed_at is None
    assert events[-1].event_type == t.ITEM_CANCELLED
    assert events[-1].payload == {"reason": reason, "role": ""}


@pytest.mark.parametrize("status", [CaseStatus.CANCELLED, CaseStatus.REFERRED_OUT])
def test_cancel_without_closing_time_happens_when_reported(status: CaseStatus) -> None:
    plan = plan_case(replace(CLOSED_CASE, status=status, closed_at=None), PROFILE)
    assert [(c.kind, c.occurred_at) for c in plan.later] == [(CommandKind.CANCEL, REPORTED)]
    assert plan.later_at == REPORTED
    state, _ = apply_plan(plan)
    assert state.stage == Stage.CANCELLED


# --- open cases ---------------------------------------------------------------------------------------


def test_open_case_has_no_later_commands() -> None:
    case = replace(CLOSED_CASE, status=CaseStatus.OPEN, closed_at=None, city_on_time=None)
    plan = plan_case(case, PROFILE)
    assert plan.later == []
    assert plan.later_at is None
    assert [c.kind for c in plan.initial_commands] == [CommandKind.DISPATCH, CommandKind.ACCEPT]
    assert plan.registration.deadline_origin == "source"
    state, _ = apply_plan(plan)
    assert state.stage == Stage.ACCEPTED
    assert state.closed_at is None and state.on_time is None
    # the resolution timers are still pending (the response milestone has no deadline)
    assert [(tm.kind, tm.milestone, tm.deadline) for tm in state.timers] == [
        ("warn", "resolution", DEADLINE),
        ("breach", "resolution", DEADLINE),
    ]
