"""The pure decision core of a supervision item (``workflows.item_rules``), with hand-computed values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from events import types as t
from events.codec import encode_event
from events.envelope import EventEnvelope, make_event_id
from events.errors import ValidationError
from workflows import item_rules as rules
from workflows.errors import IllegalCommand
from workflows.item_model import ESCALATION_LADDER, ItemCommand, ItemState, Registration, Stage, Timer

REPORTED = datetime(2022, 1, 1, 0, 0, tzinfo=UTC)
RESOLUTION = datetime(2022, 1, 2, 0, 0, tzinfo=UTC)  # 24 h window
RESPONSE = datetime(2022, 1, 1, 0, 30, tzinfo=UTC)  # 30 min window


def at(hours: float = 0, **kwargs: float) -> datetime:
    return REPORTED + timedelta(hours=hours, **kwargs)


def reg(**changes: Any) -> Registration:
    base: dict[str, Any] = {
        "item_id": "ZB-001",
        "category": "Litter",
        "reported_at": REPORTED,
        "department": "Urban management",
        "unit": "Sibaoshan street team",
        "resolution_deadline": RESOLUTION,
        "deadline_origin": "rule",
    }
    base.update(changes)
    return Registration(**base)


def cmd(command_id: str, kind: str, when: datetime, actor: str = "unit:PWD", **fields: Any) -> ItemCommand:
    """A command; a dispatch names the unit and a submit carries evidence unless told otherwise."""
    if kind == "dispatch":
        fields.setdefault("unit", "Sibaoshan street team")
    if kind == "submit_rectification":
        fields.setdefault("evidence", ["photo.jpg"])
    return ItemCommand(command_id=command_id, kind=kind, actor=actor, occurred_at=when, **fields)


def types_of(events: list[EventEnvelope]) -> list[str]:
    return [e.event_type for e in events]


def accepted_item(**changes: Any) -> tuple[ItemState, list[EventEnvelope]]:
    """An item registered at REPORTED, dispatched at +5 min and accepted at +10 min."""
    state, events = rules.register(reg(**changes))
    events += rules.apply_command(state, cmd("c-dispatch", "dispatch", at(minutes=5), "dispatcher:ann"))
    events += rules.apply_command(state, cmd("c-accept", "accept", at(minutes=10)))
    return state, events


def verified_item(**changes: Any) -> tuple[ItemState, list[EventEnvelope]]:
    state, events = accepted_item(**changes)
    events += rules.apply_command(state, cmd("c-submit", "submit_rectification", at(2), evidence=["x.jpg"]))
    events += rules.apply_command(state, cmd("c-verify", "verify", at(3), "inspector:li"))
    return state, events


# --- timer planning ------------------------------------------------------------------------------


def test_warning_at_75_percent_of_the_resolution_window() -> None:
    assert rules.plan_timers(reg()) == [
        Timer(datetime(2022, 1, 1, 18, 0, tzinfo=UTC), "warn", "resolution", RESOLUTION, "0.75"),
        Timer(RESOLUTION, "breach", "resolution", RESOLUTION),
    ]


def test_response_and_resolution_milestones_in_time_order() -> None:
    timers = rules.plan_timers(reg(response_deadline=RESPONSE))
    assert [(tm.at, tm.kind, tm.milestone) for tm in timers] == [
        (datetime(2022, 1, 1, 0, 22, 30, tzinfo=UTC), "warn", "response"),  # 75 % of 30 min
        (RESPONSE, "breach", "response"),
        (datetime(2022, 1, 1, 18, 0, tzinfo=UTC), "warn", "resolution"),
        (RESOLUTION, "breach", "resolution"),
    ]
    assert [tm.deadline for tm in timers] == [RESPONSE, RESPONSE, RESOLUTION, RESOLUTION]


def test_warning_fraction_is_honoured() -> None:
    assert rules.plan_timers(reg(warning_fraction=0.5))[0].at == datetime(2022, 1, 1, 12, 0, tzinfo=UTC)


def test_no_deadline_no_timers() -> None:
    assert rules.plan_timers(reg(resolution_deadline=None)) == []


def test_deadline_before_reported_gives_no_warning_and_breaches_at_once() -> None:
    past = datetime(2021, 12, 31, 0, 0, tzinfo=UTC)
    assert rules.plan_timers(reg(resolution_deadline=past)) == [Timer(past, "breach", "resolution", past)]
    state, _ = rules.register(reg(resolution_deadline=past))
    assert rules.next_timer_at(state) == past
    fired = rules.fire_due_timers(state, REPORTED)
    assert types_of(fired) == [t.DEADLINE_BREACHED, t.ITEM_ESCALATED]
    assert all(e.occurred_at == past for e in fired)
    assert state.overdue is True and state.escalation_level == 1


def test_deadline_equal_to_reported_gives_no_warning() -> None:
    assert rules.plan_timers(reg(resolution_deadline=REPORTED)) == [
        Timer(REPORTED, "breach", "resolution", REPORTED)
    ]


# --- registration --------------------------------------------------------------------------------


def test_register_event() -> None:
    state, [event] = rules.register(reg(response_deadline=RESPONSE))
    assert state.stage == Stage.REGISTERED and state.sequence == 1
    assert state.department == "Urban management" and state.unit == "Sibaoshan street team"
    assert event.event_type == t.ITEM_REGISTERED
    assert (event.sequence, event.occurred_at, event.recorded_at) == (1, REPORTED, REPORTED)
    assert event.event_id == make_event_id("ZB-001", 1)
    assert event.actor == "system:intake"
    assert event.correlation_id == "item-ZB-001"
    assert event.payload["resolution_deadline"] == "2022-01-02T00:00:00+00:00"
    assert event.payload["response_deadline"] == "2022-01-01T00:30:00+00:00"
    assert event.payload["deadline_origin"] == "rule"
    assert rules.next_timer_at(state) == datetime(2022, 1, 1, 0, 22, 30, tzinfo=UTC)


@pytest.mark.parametrize("name", ["reported_at", "response_deadline", "resolution_deadline"])
def test_register_rejects_naive_datetimes_naming_the_field(name: str) -> None:
    with pytest.raises(ValidationError) as info:
        rules.register(reg(**{name: datetime(2022, 1, 1, 12, 0)}))
    assert info.value.field == name


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"item_id": " "}, "item_id"),
        ({"category": ""}, "category"),
        ({"warning_fraction": 0.0}, "warning_fraction"),
        ({"warning_fraction": 1.0}, "warning_fraction"),
    ],
)
def test_register_rejects_bad_input(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        rules.register(reg(**changes))
    assert info.value.field == field


# --- the closed loop -----------------------------------------------------------------------------


def test_happy_path_events_and_sequences() -> None:
    state, events = verified_item()
    events += rules.apply_command(state, cmd("c-close", "close", at(4), "inspector:li"))
    assert types_of(events) == [
        t.ITEM_REGISTERED,
        t.ITEM_DISPATCHED,
        t.ITEM_ACCEPTED,
        t.RECTIFICATION_SUBMITTED,
        t.RECTIFICATION_VERIFIED,
        t.ITEM_CLOSED,
    ]
    assert [e.sequence for e in events] == [1, 2, 3, 4, 5, 6]
    assert [e.event_id for e in events] == [make_event_id("ZB-001", n) for n in range(1, 7)]
    assert [e.causation_id for e in events[1:]] == [
        "c-dispatch",
        "c-accept",
        "c-submit",
        "c-verify",
        "c-close",
    ]
    assert [e.occurred_at for e in events] == [at(0), at(minutes=5), at(minutes=10), at(2), at(3), at(4)]
    assert events[3].payload == {
        "unit": "Sibaoshan street team",
        "notes": "",
        "evidence": ["x.jpg"],
        "location": "",
        "role": "",
    }
    assert events[5].payload == {
        "on_time": True,
        "resolution_deadline": "2022-01-02T00:00:00+00:00",
        "handling_seconds": 4 * 3600,
        "role": "",
    }
    assert state.stage == Stage.CLOSED and state.terminal
    assert state.on_time is True and state.overdue is False
    assert state.closed_at == at(4) and state.accepted_at == at(minutes=10)
    assert state.sequence == 6 and state.timers == []
    for event in events:  # every produced event passes the codec's validation
        encode_event(event)


def test_dispatch_may_change_department_and_unit() -> None:
    state, _ = rules.register(reg())
    [event] = rules.apply_command(state, cmd("d", "dispatch", at(1), department="Housing", unit="H-2"))
    assert event.payload == {"department": "Housing", "unit": "H-2", "role": ""}
    assert (state.department, state.unit) == ("Housing", "H-2")


def test_closed_exactly_at_the_deadline_is_on_time() -> None:
    state, _ = verified_item()
    [event] = rules.apply_command(state, cmd("c-close", "close", RESOLUTION, "inspector:li"))
    assert event.payload["on_time"] is True and event.payload["handling_seconds"] == 86400
    assert state.on_time is True and state.overdue is False


def test_closed_one_second_late_is_not_on_time() -> None:
    state, _ = verified_item()
    late = RESOLUTION + timedelta(seconds=1)
    [event] = rules.apply_command(state, cmd("c-close", "close", late, "inspector:li"))
    assert event.payload["on_time"] is False and event.payload["handling_seconds"] == 86401
    assert state.on_time is False and state.overdue is True


def test_no_deadline_gives_on_time_none() -> None:
    state, _ = verified_item(resolution_deadline=None)
    [event] = rules.apply_command(state, cmd("c-close", "close", at(400), "inspector:li"))
    assert event.payload["on_time"] is None and event.payload["resolution_deadline"] is None
    assert state.on_time is None and state.overdue is False


def test_failed_verification_is_rework_then_resubmit() -> None:
    state, _ = accepted_item()
    rules.apply_command(state, cmd("s1", "submit_rectification", at(2)))
    failed, rework = rules.apply_command(
        state, cmd("v1", "verify", at(3), "inspector:li", passed=False, notes="dirty")
    )
    assert rework.event_type == t.REWORK_ORDERED and rework.payload["episode"] == 1
    assert failed.event_type == t.RECTIFICATION_VERIFIED
    assert failed.payload == {"passed": False, "notes": "dirty", "role": ""}
    assert state.stage == Stage.ACCEPTED  # back to the same unit
    with pytest.raises(IllegalCommand):
        rules.apply_command(state, cmd("c1", "close", at(4), "inspector:li"))
    [resubmitted] = rules.apply_command(state, cmd("s2", "submit_rectification", at(5)))
    assert resubmitted.event_type == t.RECTIFICATION_SUBMITTED and state.stage == Stage.RECTIFIED
    rules.apply_command(state, cmd("v2", "verify", at(6), "inspector:li"))
    [closed] = rules.apply_command(state, cmd("c2", "close", at(7), "inspector:li"))
    assert closed.sequence == 9 and state.on_time is True  # 8 + ReworkOrdered


# --- illegal commands ---------------------------------------------------------------------------


def test_close_before_verify_is_illegal() -> None:
    state, _ = accepted_item()
    before = (state.stage, state.sequence, list(state.applied_command_ids))
    with pytest.raises(IllegalCommand) as info:
        rules.apply_command(state, cmd("c-close", "close", at(1), "inspector:li"))
    assert info.value.reason == "cannot close an item that is accepted"
    assert (state.stage, state.sequence, state.applied_command_ids) == before


def test_verify_by_the_submitter_is_illegal() -> None:
    state, _ = accepted_item()
    rules.apply_command(state, cmd("s", "submit_rectification", at(1), "unit:PWD"))
    with pytest.raises(IllegalCommand) as info:
        rules.apply_command(state, cmd("v", "verify", at(2), "unit:PWD"))
    assert info.value.reason == "unit:PWD submitted the rectification and cannot verify it"
    assert state.stage == Stage.RECTIFIED


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        (cmd("d2", "dispatch", at(1)), "cannot dispatch an item that is accepted"),
        (cmd("v", "verify", at(1), "inspector:li"), "cannot verify an item that is accepted"),
        (cmd("", "submit_rectification", at(1)), "command_id must not be empty"),
        (cmd("x", "teleport", at(1)), "kind 'teleport' is not a command kind"),
        (
            cmd("n", "submit_rectification", datetime(2022, 1, 1, 1)),
            "occurred_at must be an aware datetime",
        ),
    ],
)
def test_illegal_commands_carry_a_reason(command: ItemCommand, reason: str) -> None:
    state, _ = accepted_item()
    with pytest.raises(IllegalCommand) as info:
        rules.check_command(state, command)
    assert info.value.reason.startswith(reason)
    with pytest.raises(IllegalCommand):
        rules.apply_command(state, command)
    assert state.sequence == 3


def test_accept_before_dispatch_is_illegal() -> None:
    state, _ = rules.register(reg())
    with pytest.raises(IllegalCommand, match="cannot accept an item that is registered"):
        rules.apply_command(state, cmd("a", "accept", at(1)))


def test_cancel_needs_a_reason() -> None:
    state, _ = accepted_item(response_deadline=RESPONSE)
    with pytest.raises(IllegalCommand) as info:
        rules.apply_command(state, cmd("x", "cancel", at(1), "office:zhang", reason="  "))
    assert info.value.reason == "cancel needs a reason"
    [event] = rules.apply_command(state, cmd("x", "cancel", at(1), "office:zhang", reason="duplicate"))
    assert event.event_type == t.ITEM_CANCELLED and event.payload == {"reason": "duplicate", "role": ""}
    assert state.stage == Stage.CANCELLED and state.terminal and state.timers == []
    assert rules.fire_due_timers(state, at(1000)) == []
    with pytest.raises(IllegalCommand, match="cannot close an item that is cancelled"):
        rules.apply_command(state, cmd("c", "close", at(2), "inspector:li"))


def test_nothing_after_close() -> None:
    state, _ = verified_item()
    rules.apply_command(state, cmd("c-close", "close", at(4), "inspector:li"))
    with pytest.raises(IllegalCommand, match="cannot cancel an item that is closed"):
        rules.apply_command(state, cmd("x", "cancel", at(5), "office:zhang", reason="late"))


def test_a_repeated_command_id_is_applied_once() -> None:
    state, _ = accepted_item()
    submit = cmd("c-submit", "submit_rectification", at(2))
    assert len(rules.apply_command(state, submit)) == 1
    assert rules.apply_command(state, submit) == []
    rules.check_command(state, submit)  # redelivery is legal, not an error
    rules.apply_command(state, cmd("c-verify", "verify", at(3), "inspector:li"))
    assert rules.apply_command(state, submit) == []  # even once the stage has moved on
    assert rules.apply_command(state, cmd("c-accept", "accept", at(9))) == []
    assert state.stage == Stage.VERIFIED and state.sequence == 5
    assert state.applied_command_ids == ["c-dispatch", "c-accept", "c-submit", "c-verify"]


# --- timers -------------------------------------------------------------------------------------


def test_fire_due_timers_in_order_with_escalation() -> None:
    state, _ = rules.register(reg(response_deadline=RESPONSE))
    fired = rules.fire_due_timers(state, at(48))
    assert [(e.event_type, e.occurred_at, e.payload.get("milestone")) for e in fired] == [
        (t.DEADLINE_WARNED, datetime(2022, 1, 1, 0, 22, 30, tzinfo=UTC), "response"),
        (t.DEADLINE_BREACHED, RESPONSE, "response"),  # a response breach does not escalate
        (t.DEADLINE_WARNED, datetime(2022, 1, 1, 18, 0, tzinfo=UTC), "resolution"),
        (t.DEADLINE_BREACHED, RESOLUTION, "resolution"),
        (t.ITEM_ESCALATED, RESOLUTION, "resolution"),
    ]
    assert [e.sequence for e in fired] == [2, 3, 4, 5, 6]
    assert fired[2].payload == {
        "milestone": "resolution",
        "deadline": "2022-01-02T00:00:00+00:00",
        "threshold": "0.75",
    }
    assert fired[4].payload == {"milestone": "resolution", "level": 1, "rung": "department_head"}
    assert all(e.actor == rules.SYSTEM_TIMER_ACTOR for e in fired)
    assert fired[4].causation_id == "timer:resolution:rung:department_head"
    assert state.escalation_level == 1 and state.overdue is True and state.timers == []
    for event in fired:
        encode_event(event)


def test_fire_due_timers_fires_only_what_is_due() -> None:
    state, _ = rules.register(reg(response_deadline=RESPONSE))
    assert rules.fire_due_timers(state, at(minutes=22)) == []
    fired = rules.fire_due_timers(state, datetime(2022, 1, 1, 18, 0, tzinfo=UTC))  # inclusive
    assert types_of(fired) == [t.DEADLINE_WARNED, t.DEADLINE_BREACHED, t.DEADLINE_WARNED]
    assert state.overdue is False and state.escalation_level == 0
    assert state.timers == [Timer(RESOLUTION, "breach", "resolution", RESOLUTION)]
    assert rules.next_timer_at(state) == RESOLUTION
    assert rules.fire_due_timers(state, RESOLUTION - timedelta(seconds=1)) == []
    assert types_of(rules.fire_due_timers(state, RESOLUTION)) == [t.DEADLINE_BREACHED, t.ITEM_ESCALATED]
    assert rules.next_timer_at(state) is None


def test_an_item_without_a_policy_climbs_one_rung_only() -> None:
    state, _ = rules.register(reg())
    fired = rules.fire_due_timers(state, RESOLUTION + timedelta(days=365))
    assert [e.payload["rung"] for e in fired if e.event_type == t.ITEM_ESCALATED] == [ESCALATION_LADDER[1]]
    assert state.escalation_level == 1 and state.timers == []


def test_accept_drops_the_response_timers() -> None:
    state, _ = rules.register(reg(response_deadline=RESPONSE))
    rules.apply_command(state, cmd("d", "dispatch", at(minutes=1)))
    assert {tm.milestone for tm in state.timers} == {"response", "resolution"}
    rules.apply_command(state, cmd("a", "accept", at(minutes=10)))
    assert [(tm.kind, tm.milestone) for tm in state.timers] == [
        ("warn", "resolution"),
        ("breach", "resolution"),
    ]
    assert [e.payload["milestone"] for e in rules.fire_due_timers(state, at(48))] == ["resolution"] * 3


def test_close_clears_timers_and_a_later_timer_never_fires() -> None:
    state, _ = verified_item(response_deadline=RESPONSE)
    assert state.timers  # the resolution warning and breach are still pending
    rules.apply_command(state, cmd("c-close", "close", at(4), "inspector:li"))
    assert state.timers == [] and rules.next_timer_at(state) is None
    assert rules.fire_due_timers(state, at(1000)) == []
    assert state.escalation_level == 0 and state.overdue is False and state.sequence == 6


def test_close_after_a_breach_keeps_escalation() -> None:
    state, _ = verified_item()
    rules.fire_due_timers(state, at(25))
    [closed] = rules.apply_command(state, cmd("c-close", "close", at(26), "inspector:li"))
    assert closed.payload["on_time"] is False
    assert state.overdue is True and state.escalation_level == 1


# --- determinism --------------------------------------------------------------------------------


def _scenario() -> list[EventEnvelope]:
    state, events = verified_item(response_deadline=RESPONSE)
    events += rules.fire_due_timers(state, at(20))
    events += rules.apply_command(state, cmd("c-close", "close", at(21), "inspector:li"))
    return events


def test_event_ids_are_deterministic() -> None:
    first, second = _scenario(), _scenario()
    assert first == second
    assert [e.event_id for e in first] == [make_event_id("ZB-001", n) for n in range(1, len(first) + 1)]
    assert len({e.event_id for e in first}) == len(first)
    _, [other] = rules.register(reg(item_id="ZB-002"))
    assert other.event_id != first[0].event_id
