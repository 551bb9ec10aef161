"""The full lifecycle of an item registered under the default rulebook on China's calendar (pure core).

Hand-worked values use the rulebook 2026.2 (litter: 2 working hours; response: 1 clock hour) and the
working day 09:00–12:00 + 13:30–17:30 (Asia/Shanghai). 2026 National Day: 1–7 October off, with the
Saturday 10 October a make-up working day (State Council notice; ``holidays`` 0.109 agrees).
"""

from __future__ import annotations

from datetime import datetime

import pytest
from helpers.items import CST, OTHER_UNIT, RULEBOOK, UNIT, cmd, cst, litter, opened, refused, run, timeline

from events import types as t
from events.codec import encode_event
from events.envelope import EventEnvelope
from workflows import item_rules as rules
from workflows.item_model import Registration, Stage
from workflows.item_policy import apply_rulebook

# --- rulebook version, deadlines -------------------------------------------------------------------


def test_an_item_keeps_the_version_in_force_when_it_was_registered() -> None:
    before = litter(datetime(2026, 6, 30, 23, 0, tzinfo=CST))
    after = litter(datetime(2026, 7, 1, 0, 0, tzinfo=CST))
    assert before.policy is not None and after.policy is not None
    assert (before.policy.rulebook_version, after.policy.rulebook_version) == ("2026.1", "2026.2")
    # 2026.1: 4 working hours from Tue 23:00 → Wed 09:00–12:00 + 13:30–14:30
    assert before.resolution_deadline == cst(7, 1, 14, 30)
    # 2026.2: 2 working hours from Wed 00:00 → 09:00–11:00
    assert after.resolution_deadline == cst(7, 1, 11, 0)
    assert after.response_deadline == cst(7, 1, 1, 0)  # 1 clock hour
    assert (after.policy.resolution_basis, after.policy.response_basis) == ("working", "clock")
    assert after.deadline_origin == "rule"


def test_a_source_deadline_overrides_the_rule_and_runs_on_the_clock() -> None:
    reg = Registration("S-1", "litter", cst(9, 30, 15, 30), resolution_deadline=cst(10, 2, 9, 0))
    reg.deadline_origin = "source"
    governed = apply_rulebook(reg, RULEBOOK, "china")
    assert governed.resolution_deadline == cst(10, 2, 9, 0) and governed.deadline_origin == "source"
    assert governed.policy is not None and governed.policy.resolution_basis == "clock"


# --- warnings, traffic light, escalation ladder ----------------------------------------------------


def test_thresholds_light_and_every_rung_across_national_day_and_a_makeup_day() -> None:
    state = opened(cst(9, 30, 15, 30))
    fired = rules.fire_due_timers(state, cst(10, 31, 0))
    assert timeline(fired) == [
        (t.DEADLINE_WARNED, cst(9, 30, 16, 30), "0.50"),  # 1 of 2 working hours
        (t.DEADLINE_WARNED, cst(9, 30, 17, 0), "0.75"),
        (t.DEADLINE_WARNED, cst(9, 30, 17, 6), "0.80"),  # 96 minutes
        (t.TRAFFIC_LIGHT_CHANGED, cst(9, 30, 17, 6), "yellow"),
        (t.DEADLINE_BREACHED, cst(9, 30, 17, 30), "resolution"),
        (t.TRAFFIC_LIGHT_CHANGED, cst(9, 30, 17, 30), "red"),
        (t.ITEM_ESCALATED, cst(9, 30, 17, 30), "department_head"),  # at the breach
        (t.ITEM_ESCALATED, cst(10, 8, 17, 30), "district_leader"),  # 1 working day: 1–7 Oct off
        (t.ITEM_ESCALATED, cst(10, 12, 17, 30), "district_order"),  # 3: Fri 9, Sat 10 (make-up), Mon 12
        (t.ITEM_ESCALATED, cst(10, 19, 17, 30), "city_order"),  # 5: 13, 14, 15, 16, 19
    ]
    assert [e.payload["level"] for e in fired if e.event_type == t.ITEM_ESCALATED] == [1, 2, 3, 4]
    assert state.light == "red" and state.escalation_level == 4 and state.timers == []
    for event in fired:
        encode_event(event)


def test_an_item_closed_early_has_no_timers_left() -> None:
    state = opened(cst(9, 30, 15, 30))
    events = run(
        state,
        cmd("submit_rectification", cst(9, 30, 15, 45)),
        cmd("verify", cst(9, 30, 16, 0)),
        cmd("close", cst(9, 30, 16, 10)),
    )
    assert events[-1].event_type == t.ITEM_CLOSED and events[-1].payload["on_time"] is True
    assert state.timers == [] and rules.fire_due_timers(state, cst(12, 31, 0)) == []


def test_the_response_milestone_warns_and_breaches_on_the_clock_until_accepted() -> None:
    state, _ = rules.register(litter(cst(11, 2, 9, 0)))
    fired = rules.fire_due_timers(state, cst(11, 2, 9, 59))
    assert [(e.payload["milestone"], e.occurred_at) for e in fired] == [
        ("response", cst(11, 2, 9, 30)),  # 50% of 1 clock hour
        ("response", cst(11, 2, 9, 45)),
        ("response", cst(11, 2, 9, 48)),
    ]
    assert state.light == "green"  # the light follows the resolution deadline only
    run(
        state,
        cmd("dispatch", cst(11, 2, 9, 59), unit=UNIT),
        cmd(
            "accept",
            cst(
                11,
                2,
                9,
                59,
            ),
        ),
    )
    assert {tm.milestone for tm in state.timers} == {"resolution"}


# --- extensions ---------------------------------------------------------------------------------------


def test_an_approved_extension_moves_every_timer() -> None:
    state = opened(cst(11, 2, 9, 0))  # Monday; 2 working hours → 11:00
    assert [tm.at for tm in state.timers] == [
        cst(11, 2, 10, 0), cst(11, 2, 10, 30), cst(11, 2, 10, 36), cst(11, 2, 11, 0)
    ]  # fmt: skip
    events = run(
        state,
        cmd("request_extension", cst(11, 2, 9, 30), new_deadline=cst(11, 3, 17, 30)),
        cmd("approve_extension", cst(11, 2, 9, 45)),
    )
    assert types(events) == [t.EXTENSION_REQUESTED, t.EXTENSION_APPROVED]
    assert events[1].payload["deadline"] == "2026-11-03T09:30:00+00:00"
    assert events[1].payload["previous_deadline"] == "2026-11-02T03:00:00+00:00"
    # budget: 7 h on Monday + 7 h on Tuesday = 14 working hours from Monday 09:00
    assert [(tm.kind, tm.at) for tm in state.timers] == [
        ("warn", cst(11, 2, 17, 30)),  # 7 h
        ("warn", cst(11, 3, 14, 0)),  # 10.5 h: Tuesday 09:00–12:00 + 13:30–14:00
        ("warn", cst(11, 3, 14, 42)),  # 11.2 h
        ("breach", cst(11, 3, 17, 30)),
    ]
    closed = run(
        state,
        cmd("submit_rectification", cst(11, 3, 15, 0)),
        cmd("verify", cst(11, 3, 16, 0)),
        cmd("close", cst(11, 3, 16, 30)),
    )
    assert closed[-1].payload["on_time"] is True  # late by the first deadline, on time by the new one


def test_extension_approval_chain_and_limits() -> None:
    state = opened(cst(11, 2, 9, 0))
    run(state, cmd("request_extension", cst(11, 2, 9, 10), new_deadline=cst(11, 2, 17, 30)))
    reason = refused(state, cmd("approve_extension", cst(11, 2, 9, 20), role="grid_worker"))
    assert "may not approve extension 1; allowed: district_leader, duty_chief" in reason
    assert "extension 1 is still awaiting" in refused(
        state, cmd("request_extension", cst(11, 2, 9, 21), new_deadline=cst(11, 4, 17, 30))
    )
    run(state, cmd("approve_extension", cst(11, 2, 9, 30)))
    run(state, cmd("request_extension", cst(11, 2, 10, 0), new_deadline=cst(11, 3, 17, 30)))
    reason = refused(state, cmd("approve_extension", cst(11, 2, 10, 5)))  # the duty chief again
    assert "may not approve extension 2" in reason and "district_leader" in reason
    [rejected] = run(state, cmd("reject_extension", cst(11, 2, 10, 6), role="district_leader"))
    assert rejected.event_type == t.EXTENSION_REJECTED and rejected.payload["extension_number"] == 2
    run(state, cmd("request_extension", cst(11, 2, 10, 10), new_deadline=cst(11, 3, 17, 30)))
    [approved] = run(state, cmd("approve_extension", cst(11, 2, 10, 15), role="district_leader"))
    assert approved.payload["extension_number"] == 2 and state.extensions_granted == 2
    assert "the most allowed" in refused(
        state, cmd("request_extension", cst(11, 2, 10, 20), new_deadline=cst(11, 5, 17, 30))
    )


def test_extension_refused_after_the_deadline_or_for_an_earlier_date() -> None:
    state = opened(cst(11, 2, 9, 0))
    assert "must be after" in refused(
        state, cmd("request_extension", cst(11, 2, 9, 5), new_deadline=cst(11, 2, 10, 0))
    )
    rules.fire_due_timers(state, cst(11, 2, 11, 0))
    reason = refused(state, cmd("request_extension", cst(11, 2, 11, 5), new_deadline=cst(11, 3, 17, 0)))
    assert "has passed" in reason


def test_an_extension_after_the_yellow_light_turns_it_back_to_green() -> None:
    state = opened(cst(11, 2, 9, 0))
    events = run(
        state,
        cmd("request_extension", cst(11, 2, 10, 40), new_deadline=cst(11, 3, 17, 30)),
        cmd("approve_extension", cst(11, 2, 10, 45)),
    )
    assert [e.payload.get("light") for e in events if e.event_type == t.TRAFFIC_LIGHT_CHANGED] == [
        "yellow",
        "green",
    ]
    assert state.light == "green"
    # the 50% warning already fired stays fired; the later ones are armed at their new instants
    assert [tm.subject for tm in state.timers if tm.kind == "warn"] == ["0.50", "0.75", "0.80"]


# --- suspension ------------------------------------------------------------------------------------------


def test_a_suspension_over_national_day_keeps_the_working_time_left() -> None:
    state = opened(cst(9, 30, 15, 30))  # deadline Wed 30 Sep 17:30
    events = run(state, cmd("suspend", cst(9, 30, 16, 30)))
    assert types(events) == [t.DEADLINE_WARNED, t.ITEM_SUSPENDED]  # the 50% warning is due at 16:30
    assert events[1].payload["remaining_seconds"] == 3600 and events[1].payload["basis"] == "working"
    assert [(tm.kind, tm.at) for tm in state.timers] == [("review", cst(10, 30, 16, 30))]
    assert "suspended item" in refused(state, cmd("submit_rectification", cst(10, 1, 9, 0)))
    [resumed] = run(state, cmd("resume", cst(10, 2, 10, 0)))  # a holiday: counting restarts Thu 8 Oct
    assert resumed.payload["resolution_deadline"] == "2026-10-08T02:00:00+00:00"  # 10:00 CST
    assert resumed.payload["suspended_seconds"] == (41 * 3600 + 30 * 60)
    assert [(tm.kind, tm.subject, tm.at) for tm in state.timers] == [
        ("warn", "0.75", cst(10, 8, 9, 30)),
        ("warn", "0.80", cst(10, 8, 9, 36)),
        ("breach", "", cst(10, 8, 10, 0)),
    ]
    closed = run(
        state,
        cmd("submit_rectification", cst(10, 8, 9, 40)),
        cmd("verify", cst(10, 8, 9, 45)),
        cmd("close", cst(10, 8, 9, 50)),
    )
    assert closed[-1].payload["on_time"] is True


def test_a_long_suspension_is_reviewed_every_30_days_and_stops_the_ladder() -> None:
    state = opened(cst(11, 2, 9, 0))
    run(state, cmd("suspend", cst(11, 2, 10, 0)))
    fired = rules.fire_due_timers(state, datetime(2027, 1, 2, tzinfo=CST))
    assert [(e.event_type, e.occurred_at, e.payload["review"]) for e in fired] == [
        (t.SUSPENSION_REVIEW_DUE, cst(12, 2, 10, 0), 1),
        (t.SUSPENSION_REVIEW_DUE, datetime(2027, 1, 1, 10, 0, tzinfo=CST), 2),
    ]
    assert state.escalation_level == 0 and not state.overdue


# --- return for re-dispatch, rework, roles ------------------------------------------------------------


def test_return_within_the_window_then_redispatch_elsewhere() -> None:
    state, _ = rules.register(litter(cst(11, 2, 9, 0)))
    run(state, cmd("dispatch", cst(11, 2, 9, 0), unit=UNIT, department="UM"))
    assert "return window closed at 2026-11-02T03:00:00+00:00" in refused(
        state, cmd("return", cst(11, 2, 11, 1))
    )
    assert "not the unit" in refused(state, cmd("return", cst(11, 2, 10, 0), unit=OTHER_UNIT))
    returned = run(state, cmd("return", cst(11, 2, 10, 59)))[-1]
    assert returned.payload["dispatched_by"] == "centre:li" and returned.payload["redispatch_count"] == 1
    assert state.stage == Stage.REGISTERED
    assert "dispatch it elsewhere" in refused(state, cmd("dispatch", cst(11, 2, 11, 0), unit=UNIT))
    run(state, cmd("dispatch", cst(11, 2, 11, 0), unit=OTHER_UNIT, department="Greening"))
    assert (state.unit, state.department) == (OTHER_UNIT, "Greening")


def test_rework_episodes_and_who_may_verify() -> None:
    state = opened(cst(11, 2, 9, 0))
    assert "needs evidence" in refused(state, cmd("submit_rectification", cst(11, 2, 9, 10), evidence=[]))
    run(state, cmd("submit_rectification", cst(11, 2, 9, 10), location="31.23,121.47", notes="swept"))
    assert "rectified the item" in refused(state, cmd("verify", cst(11, 2, 9, 20), unit=UNIT))
    assert "cannot verify" in refused(state, cmd("verify", cst(11, 2, 9, 20), actor="unit:U1"))
    assert "may not verify" in refused(
        state, cmd("verify", cst(11, 2, 9, 20), role="handling_unit", actor="unit:U9")
    )
    for episode in (1, 2):
        events = run(state, cmd("verify", cst(11, 2, 9, 20 * episode), passed=False, notes="still dirty"))
        assert events[-1].event_type == t.REWORK_ORDERED and events[-1].payload["episode"] == episode
        assert state.stage == Stage.ACCEPTED and state.unit == UNIT
        run(state, cmd("submit_rectification", cst(11, 2, 9, 20 * episode + 5)))
    run(state, cmd("verify", cst(11, 2, 9, 50)), cmd("close", cst(11, 2, 9, 55)))
    assert state.rework_episodes == 2 and state.on_time is True


@pytest.mark.parametrize(
    ("kind", "role"),
    [
        ("dispatch", "handling_unit"),
        ("merge", "inspector"),
        ("suspend", "handling_unit"),
        ("cancel", "grid_worker"),
    ],
)
def test_roles_are_enforced(kind: str, role: str) -> None:
    state = opened(cst(11, 2, 9, 0)) if kind != "dispatch" else rules.register(litter(cst(11, 2, 9, 0)))[0]
    assert f"role '{role}' may not" in refused(state, cmd(kind, cst(11, 2, 9, 5), role=role, unit=UNIT))


def test_an_item_without_a_policy_has_only_the_basic_path() -> None:
    state, _ = rules.register(Registration("B-1", "Litter", cst(11, 2, 9, 0)))
    assert "needs an item registered under a rulebook" in refused(state, cmd("suspend", cst(11, 2, 9, 5)))


# --- merge, cancel ---------------------------------------------------------------------------------------


def test_merge_closes_the_duplicate_with_a_link() -> None:
    state = opened(cst(11, 2, 9, 0))
    assert "another item" in refused(state, cmd("merge", cst(11, 2, 9, 5), into_item_id="L-1"))
    [merged] = run(state, cmd("merge", cst(11, 2, 9, 5), into_item_id="L-0", reason="same pile, same corner"))
    assert merged.payload == {"into_item_id": "L-0", "reason": "same pile, same corner", "role": "dispatcher"}
    assert state.stage == Stage.MERGED and state.terminal and state.timers == []
    assert "cannot cancel an item that is merged" in refused(state, cmd("cancel", cst(11, 2, 9, 6)))


# --- grid calls ---------------------------------------------------------------------------------------------


def test_grid_call_report_in_deadline_late_report_and_ratings() -> None:
    state = opened(cst(11, 2, 9, 0))
    caller = "grid:wang"
    [call] = run(state, cmd("grid_call", cst(11, 2, 9, 0), actor=caller, departments=["PWD", "ISD"]))
    assert call.payload["report_in_deadline"] == "2026-11-02T01:30:00+00:00"  # 30 minutes (anchor)
    assert "called twice" in refused(
        state, cmd("grid_call", cst(11, 2, 9, 1), actor=caller, departments=["ISD"])
    )
    [pwd] = run(state, cmd("report_in", cst(11, 2, 9, 20), department="PWD", unit="PWD"))
    assert pwd.payload["late"] is False
    overdue = rules.fire_due_timers(state, cst(11, 2, 9, 31))
    assert [(e.event_type, e.payload["department"], e.occurred_at) for e in overdue] == [
        (t.REPORT_IN_OVERDUE, "ISD", cst(11, 2, 9, 30))
    ]
    [isd] = run(state, cmd("report_in", cst(11, 2, 9, 40), department="ISD", unit="ISD"))
    assert isd.payload["late"] is True
    assert "was not called" in refused(
        state, cmd("report_in", cst(11, 2, 9, 41), department="BTD", unit="BTD")
    )
    assert "only the caller" in refused(
        state, cmd("rate_responder", cst(11, 2, 9, 50), department="PWD", rating=4)
    )
    assert "1 to 5" in refused(
        state, cmd("rate_responder", cst(11, 2, 9, 50), actor=caller, department="PWD", rating=6)
    )
    [rated] = run(state, cmd("rate_responder", cst(11, 2, 9, 50), actor=caller, department="PWD", rating=4))
    assert rated.payload == {"department": "PWD", "rating": 4, "notes": ""}
    assert "already rated" in refused(
        state, cmd("rate_responder", cst(11, 2, 9, 51), actor=caller, department="PWD", rating=5)
    )
    assert [r.department for r in state.responders] == ["PWD", "ISD"]  # they stay on the item


def types(events: list[EventEnvelope]) -> list[str]:
    return [e.event_type for e in events]


def test_every_new_event_encodes() -> None:
    state = opened(cst(11, 2, 9, 0))
    events = run(
        state,
        cmd("grid_call", cst(11, 2, 9, 0), actor="grid:wang", departments=["PWD"]),
        cmd("request_extension", cst(11, 2, 9, 10), new_deadline=cst(11, 3, 17, 30)),
        cmd("approve_extension", cst(11, 2, 9, 15)),
        cmd("suspend", cst(11, 2, 9, 20)),
        cmd("resume", cst(11, 2, 9, 25)),
        cmd("merge", cst(11, 2, 9, 30), into_item_id="X"),
    )
    assert {e.event_type for e in events} >= {
        t.GRID_CALL_PLACED,
        t.EXTENSION_REQUESTED,
        t.EXTENSION_APPROVED,
        t.ITEM_SUSPENDED,
        t.ITEM_RESUMED,
        t.REPORT_IN_OVERDUE,
        t.ITEM_MERGED,
    }
    for event in events:
        encode_event(event)
    assert state.stage == Stage.MERGED and state.merged_into == "X"
