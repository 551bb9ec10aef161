"""Commands the pure core refuses before any rule sees them: malformed data, a reused command id,
commands dated out of order, and who may do what beyond the role table (found by a new-user trial).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

import pytest
from helpers.items import UNIT, cmd, cst, litter, opened, refused, run

from events.errors import ValidationError
from workflows import item_rules as rules


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"actor": " "}, "actor must not be empty"),
        ({"command_id": None}, "command_id must be a string"),
        ({"unit": None}, "unit must be a string"),
        ({"occurred_at": "2026-11-02T09:05:00+08:00"}, "occurred_at must be an aware datetime"),
        ({"occurred_at": datetime(2026, 11, 2, 9, 5)}, "occurred_at must be an aware datetime"),
        ({"new_deadline": datetime(2026, 11, 3, 17, 0)}, "new_deadline must be an aware datetime"),
        ({"departments": "PWD"}, "departments must be a list of strings"),
        ({"evidence": [""]}, "evidence entry 0 must not be empty"),
        ({"rating": True}, "rating must be a whole number"),
        ({"rating": 2.5}, "rating must be a whole number"),
        ({"passed": "yes"}, "passed must be true or false"),
    ],
)
def test_malformed_commands_are_refused_with_the_field_named(changes: dict[str, Any], reason: str) -> None:
    state = opened(cst(11, 2, 9, 0))
    command = cmd("submit_rectification", cst(11, 2, 9, 5))
    for name, value in changes.items():
        setattr(command, name, value)
    assert refused(state, command).startswith(reason)


def test_a_command_id_reused_for_another_kind_is_refused_and_a_repeat_is_a_no_op() -> None:
    state = opened(cst(11, 2, 9, 0))
    dispatch_id = state.applied_command_ids[0]
    reuse = dataclasses.replace(cmd("submit_rectification", cst(11, 2, 9, 5)), command_id=dispatch_id)
    assert refused(state, reuse) == f"command id {dispatch_id!r} was already used for a dispatch command"
    repeat = dataclasses.replace(cmd("dispatch", cst(11, 2, 9, 5), unit=UNIT), command_id=dispatch_id)
    assert rules.apply_command(state, repeat) == []


def test_commands_of_a_rulebook_item_keep_their_order() -> None:
    state = opened(cst(11, 2, 9, 0))
    run(state, cmd("suspend", cst(11, 2, 10, 0)))
    reason = refused(state, cmd("resume", cst(11, 2, 9, 59)))  # would move the deadline back
    assert (
        reason
        == "occurred_at 2026-11-02T01:59:00+00:00 is before the previous command (2026-11-02T02:00:00+00:00)"
    )
    fresh, _ = rules.register(litter(cst(11, 2, 9, 0)))
    assert "before the registration" in refused(fresh, cmd("dispatch", cst(11, 2, 8, 0), unit=UNIT))


def test_who_may_do_what_beyond_the_role() -> None:
    state = opened(cst(11, 2, 9, 0))
    run(state, cmd("request_extension", cst(11, 2, 9, 5), new_deadline=cst(11, 3, 17, 0), actor="chief:self"))
    own = cmd("approve_extension", cst(11, 2, 9, 6), actor="chief:self")
    assert refused(state, own) == "chief:self requested the extension and cannot decide it"
    run(state, cmd("reject_extension", cst(11, 2, 9, 7)))
    assert (
        refused(state, cmd("approve_extension", cst(11, 2, 9, 8)))
        == "no extension request is awaiting a decision"
    )
    run(state, cmd("grid_call", cst(11, 2, 9, 10), actor="grid:wang", departments=["PWD", "ISD"]))
    other = cmd("report_in", cst(11, 2, 9, 11), department="PWD", unit="ISD")
    assert refused(state, other) == "unit 'ISD' cannot report in for department 'PWD'"
    run(state, cmd("submit_rectification", cst(11, 2, 9, 12)))
    assert "inspector's unit" in refused(state, cmd("verify", cst(11, 2, 9, 13), unit=""))
    assert "another item" in refused(state, cmd("merge", cst(11, 2, 9, 14), into_item_id="L-1"))
    padded = cmd("merge", cst(11, 2, 9, 14), into_item_id=" L-1 ")
    assert refused(state, padded) == "into_item_id must not begin or end with whitespace"


def test_registrations_under_a_rulebook_need_an_actor_and_deadlines_after_the_report() -> None:
    reg = litter(cst(11, 2, 9, 0))
    with pytest.raises(ValidationError) as info:
        rules.register(dataclasses.replace(reg, actor=""))
    assert info.value.field == "actor"
    with pytest.raises(ValidationError) as info:
        rules.register(dataclasses.replace(reg, resolution_deadline=cst(11, 2, 8, 0)))
    assert (info.value.field, info.value.reason) == (
        "resolution_deadline",
        "must be after reported_at on an item registered under a rulebook",
    )


def test_rule_categories_match_without_regard_to_case() -> None:
    assert litter(cst(11, 2, 9, 0), category="Litter").resolution_deadline == cst(11, 2, 11, 0)
