"""Which commands are legal when, and for whom: the pure guard of every transition.

``check_command`` raises ``IllegalCommand`` with the reason; update validators call it, so an illegal
command is refused before it enters the workflow history (DOMAIN.md "Item lifecycle"; issue 3).
Role rules apply to items registered under a rulebook policy; items registered before rulebooks keep
the original basic path (dispatch → accept → submit → verify → close, cancel) without role checks.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from events import bounds as b
from events.codec import format_utc
from events.errors import ValidationError
from workflows.errors import IllegalCommand
from workflows.item_model import (
    OPEN_STAGES,
    CommandKind,
    ItemCommand,
    ItemState,
    Registration,
    Responder,
    Role,
    Stage,
)
from workflows.item_policy import check_policy, limit_deadline

K = CommandKind
_OPEN = frozenset(OPEN_STAGES)
_WORKING = frozenset({Stage.DISPATCHED, Stage.ACCEPTED, Stage.RECTIFIED})

STAGES: dict[str, frozenset[str]] = {
    K.DISPATCH: frozenset({Stage.REGISTERED}),
    K.ACCEPT: frozenset({Stage.DISPATCHED}),
    K.SUBMIT_RECTIFICATION: frozenset({Stage.ACCEPTED}),
    K.VERIFY: frozenset({Stage.RECTIFIED}),
    K.CLOSE: frozenset({Stage.VERIFIED}),
    K.CANCEL: _OPEN,
    K.RETURN: frozenset({Stage.DISPATCHED}),
    K.REQUEST_EXTENSION: _WORKING,
    K.APPROVE_EXTENSION: _WORKING,
    K.REJECT_EXTENSION: _WORKING,
    K.SUSPEND: _OPEN,
    K.RESUME: _OPEN,
    K.MERGE: _OPEN,
    K.GRID_CALL: _OPEN,
    K.REPORT_IN: _OPEN,
    K.RATE_RESPONDER: _OPEN,
}
"""The stages in which each command kind is legal."""

ROLES: dict[str, frozenset[str]] = {
    K.DISPATCH: frozenset({Role.DISPATCHER}),
    K.ACCEPT: frozenset({Role.HANDLING_UNIT}),
    K.SUBMIT_RECTIFICATION: frozenset({Role.HANDLING_UNIT}),
    K.VERIFY: frozenset({Role.INSPECTOR}),
    K.CLOSE: frozenset({Role.DISPATCHER}),
    K.CANCEL: frozenset({Role.DISPATCHER}),
    K.RETURN: frozenset({Role.HANDLING_UNIT}),
    K.REQUEST_EXTENSION: frozenset({Role.HANDLING_UNIT}),
    K.SUSPEND: frozenset({Role.DUTY_CHIEF, Role.DISTRICT_LEADER}),
    K.RESUME: frozenset({Role.DUTY_CHIEF, Role.DISTRICT_LEADER}),
    K.MERGE: frozenset({Role.DISPATCHER}),
    K.GRID_CALL: frozenset({Role.GRID_WORKER}),
    K.REPORT_IN: frozenset({Role.HANDLING_UNIT}),
    K.RATE_RESPONDER: frozenset({Role.GRID_WORKER}),
}
"""Roles allowed to issue each kind; extension decisions are checked against the policy's approvers."""

BASIC_KINDS = frozenset({K.DISPATCH, K.ACCEPT, K.SUBMIT_RECTIFICATION, K.VERIFY, K.CLOSE, K.CANCEL})
_UNIT_BOUND = frozenset({K.ACCEPT, K.SUBMIT_RECTIFICATION, K.RETURN, K.REQUEST_EXTENSION})
_NEEDS_REASON = frozenset({K.CANCEL, K.RETURN, K.REQUEST_EXTENSION, K.REJECT_EXTENSION, K.SUSPEND, K.MERGE})


DEADLINE_ORIGINS = frozenset({"source", "rule", "none"})


def shape_problem(cmd: ItemCommand) -> str | None:
    """What is malformed about ``cmd`` as data, or ``None``: a field of the wrong type or outside its
    bounds (``events.bounds``: length, characters, instants from 1990 to 2100, list sizes), an empty
    id or actor, an unknown kind. Checked before anything else, so no rule ever sees a malformed command."""
    for name, bound in b.COMMAND_TEXT.items():
        problem = b.text_problem(getattr(cmd, name), bound)
        if problem is not None:
            return f"{name} {problem}"
    for name, (most, entry) in b.COMMAND_LISTS.items():
        problem = b.list_problem(getattr(cmd, name), most, entry)
        if problem is not None:
            return f"{name} {problem}"
    if not cmd.command_id.strip():
        return "command_id must not be empty"
    if not cmd.actor.strip():
        return "actor must not be empty"
    if cmd.kind not in STAGES:
        return f"kind {cmd.kind!r} is not a command kind; known: {', '.join(STAGES)}"
    problem = b.instant_problem(cmd.occurred_at)
    if problem is not None:
        return f"occurred_at {problem}"
    if cmd.new_deadline is not None and (problem := b.instant_problem(cmd.new_deadline)) is not None:
        return f"new_deadline {problem}"
    if not isinstance(cmd.passed, bool):
        return "passed must be true or false"
    if b.int_problem(cmd.rating, 0, 5) is not None:
        return "rating must be a whole number from 1 to 5 (0 when the command rates nobody)"
    return None


def check_registration(reg: Registration) -> None:
    """Raise ``ValidationError`` naming the field if ``reg`` is malformed or out of bounds: a text
    too long or with forbidden characters, an empty item id, category or actor, an unknown time
    zone, an instant outside 1990–2100, a deadline more than ``events.bounds.DEADLINE_HORIZON``
    after ``reported_at`` (or, under a rulebook, not after it), a warning fraction outside (0, 1), a
    malformed policy (``workflows.item_policy.check_policy``)."""
    for name, bound in b.REGISTRATION_TEXT.items():
        problem = b.text_problem(getattr(reg, name), bound)
        if problem is not None:
            raise ValidationError(name, problem)
    for name in ("item_id", "category", "actor"):
        if not getattr(reg, name).strip():
            raise ValidationError(name, "must not be empty")
    try:
        ZoneInfo(reg.zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError("zone", f"unknown IANA time zone {reg.zone!r}") from None
    if reg.deadline_origin not in DEADLINE_ORIGINS:
        raise ValidationError("deadline_origin", f"must be one of {', '.join(sorted(DEADLINE_ORIGINS))}")
    if (problem := b.instant_problem(reg.reported_at)) is not None:
        raise ValidationError("reported_at", problem)
    for name in ("response_deadline", "resolution_deadline"):
        due = getattr(reg, name)
        if due is None:
            continue
        if (problem := b.instant_problem(due)) is not None:
            raise ValidationError(name, problem)
        if due > reg.reported_at + b.DEADLINE_HORIZON:
            raise ValidationError(name, f"must be at most {b.DEADLINE_HORIZON.days} days after reported_at")
        if reg.policy is not None and due <= reg.reported_at:
            raise ValidationError(name, "must be after reported_at on an item registered under a rulebook")
    fraction = reg.warning_fraction
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 < fraction < 1:
        raise ValidationError("warning_fraction", "must be between 0 and 1 (exclusive)")
    if reg.policy is not None:
        check_policy(reg.policy)


def check_command(state: ItemState, cmd: ItemCommand) -> None:
    """Raise ``IllegalCommand`` (with the reason) if ``cmd`` may not be applied now; else return.

    A command id already applied is legal when it is the same kind (a redelivery: a no-op), so
    redelivery never fails; an id reused for another kind is refused.
    """
    problem = shape_problem(cmd)
    if problem is not None:
        raise IllegalCommand(problem)
    if cmd.command_id in state.applied_command_ids:
        used_for = state.applied_kinds.get(cmd.command_id, cmd.kind)
        if used_for != cmd.kind:
            raise IllegalCommand(f"command id {cmd.command_id!r} was already used for a {used_for} command")
        return
    if len(state.applied_command_ids) >= b.MAX_COMMANDS_PER_ITEM:
        raise IllegalCommand(f"the item has applied {b.MAX_COMMANDS_PER_ITEM} commands, the most allowed")
    if cmd.kind not in STAGES:
        raise IllegalCommand(f"unknown command kind {cmd.kind!r}; known: {', '.join(STAGES)}")
    policy = state.registration.policy
    if policy is None and cmd.kind not in BASIC_KINDS:
        raise IllegalCommand(f"{cmd.kind} needs an item registered under a rulebook (this one has none)")
    if state.stage not in STAGES[cmd.kind]:
        raise IllegalCommand(f"cannot {cmd.kind} an item that is {state.stage}")
    if state.suspended and cmd.kind not in (K.RESUME, K.CANCEL, K.MERGE):
        raise IllegalCommand(f"cannot {cmd.kind} a suspended item; resume it first")
    if cmd.kind in _NEEDS_REASON and not cmd.reason.strip():
        raise IllegalCommand(f"{cmd.kind} needs a reason")
    if cmd.kind == K.VERIFY and state.rectified_by and cmd.actor == state.rectified_by:
        raise IllegalCommand(f"{cmd.actor} submitted the rectification and cannot verify it")
    if policy is not None:
        _check_order(state, cmd)
        if cmd.kind in (K.APPROVE_EXTENSION, K.REJECT_EXTENSION):
            _decide_extension(state, cmd)
        _check_role(state, cmd)
        _CHECKS.get(cmd.kind, _no_check)(state, cmd)
    elif state.rules_revision >= 2 and cmd.kind in (K.DISPATCH, K.SUBMIT_RECTIFICATION):
        _CHECKS[cmd.kind](state, cmd)  # every item: a dispatch names the unit, a submit has evidence


def _check_order(state: ItemState, cmd: ItemCommand) -> None:
    """Commands of a rulebook item keep their order: none is dated before the registration or the
    previous applied command (a resume before its suspension would move the deadline back)."""
    floor, what = state.registration.reported_at, "the registration"
    if state.last_command_at is not None and state.last_command_at > floor:
        floor, what = state.last_command_at, "the previous command"
    if cmd.occurred_at < floor:
        raise IllegalCommand(
            f"occurred_at {format_utc(cmd.occurred_at)} is before {what} ({format_utc(floor)})"
        )


def _no_check(state: ItemState, cmd: ItemCommand) -> None:
    return None


def _check_role(state: ItemState, cmd: ItemCommand) -> None:
    assert state.registration.policy is not None
    if cmd.kind in (K.APPROVE_EXTENSION, K.REJECT_EXTENSION):
        approvers = state.registration.policy.extension_approvers
        number = state.pending_extension.number if state.pending_extension else state.extensions_granted + 1
        allowed = frozenset(approvers[number - 1 :]) if number <= len(approvers) else frozenset()
        what = f"{cmd.kind.split('_')[0]} extension {number}"
    else:
        allowed, what = ROLES[cmd.kind], cmd.kind
    if cmd.role not in allowed:
        need = ", ".join(sorted(allowed)) or "nobody"
        raise IllegalCommand(
            f"role {cmd.role or '(none)'!r} may not {what.replace('_', ' ')}; allowed: {need}"
        )
    if cmd.kind in _UNIT_BOUND and cmd.unit != state.unit:
        raise IllegalCommand(
            f"unit {cmd.unit or '(none)'!r} is not the unit the item is dispatched to ({state.unit!r})"
        )


def _dispatch(state: ItemState, cmd: ItemCommand) -> None:
    if not cmd.unit.strip():
        raise IllegalCommand("dispatch needs the unit")
    if cmd.unit in state.returned_units:
        raise IllegalCommand(f"unit {cmd.unit!r} returned this item as not theirs; dispatch it elsewhere")


def _return(state: ItemState, cmd: ItemCommand) -> None:
    policy = state.registration.policy
    assert policy is not None and state.dispatched_at is not None
    window_end = limit_deadline(policy.redispatch_window, state.dispatched_at, policy.calendar)
    if cmd.occurred_at > window_end:
        since = format_utc(state.dispatched_at)
        raise IllegalCommand(f"the return window closed at {format_utc(window_end)} (dispatched {since})")


def _submit(state: ItemState, cmd: ItemCommand) -> None:
    if not cmd.evidence:
        raise IllegalCommand("submit_rectification needs evidence (photo references)")


def _verify(state: ItemState, cmd: ItemCommand) -> None:
    if not cmd.unit.strip():
        raise IllegalCommand("verify needs the inspector's unit (it must not be the rectifying unit)")
    if cmd.unit == state.rectified_unit:
        raise IllegalCommand(f"unit {cmd.unit!r} rectified the item and cannot verify it")


def _resolution_open(state: ItemState, at: datetime, what: str) -> None:
    clock = state.clock("resolution")
    if clock is None:
        raise IllegalCommand(f"{what}: the item has no resolution deadline")
    if "breach" in clock.fired or at > clock.deadline:
        raise IllegalCommand(f"{what}: the resolution deadline {format_utc(clock.deadline)} has passed")


def _request_extension(state: ItemState, cmd: ItemCommand) -> None:
    policy = state.registration.policy
    assert policy is not None
    _resolution_open(state, cmd.occurred_at, "extension refused")
    clock = state.clock("resolution")
    assert clock is not None
    if state.pending_extension is not None:
        raise IllegalCommand(f"extension {state.pending_extension.number} is still awaiting a decision")
    if state.extensions_granted >= len(policy.extension_approvers):
        raise IllegalCommand(f"the item already had {state.extensions_granted} extensions, the most allowed")
    if cmd.new_deadline is None or cmd.new_deadline.tzinfo is None:
        raise IllegalCommand("request_extension needs new_deadline (an aware UTC datetime)")
    if cmd.new_deadline <= clock.deadline:
        raise IllegalCommand(f"new_deadline must be after the current deadline {format_utc(clock.deadline)}")
    horizon = state.registration.reported_at + b.DEADLINE_HORIZON
    if cmd.new_deadline > horizon:
        raise IllegalCommand(
            f"new_deadline must be at most {b.DEADLINE_HORIZON.days} days after the registration "
            f"(by {format_utc(horizon)})"
        )


def _decide_extension(state: ItemState, cmd: ItemCommand) -> None:
    if state.pending_extension is None:
        raise IllegalCommand("no extension request is awaiting a decision")
    if cmd.actor == state.pending_extension.requested_by:
        raise IllegalCommand(f"{cmd.actor} requested the extension and cannot decide it")
    if cmd.kind == K.APPROVE_EXTENSION:
        _resolution_open(state, cmd.occurred_at, "extension cannot be approved")


def _suspend(state: ItemState, cmd: ItemCommand) -> None:
    if state.suspended:
        raise IllegalCommand("the item is already suspended")


def _resume(state: ItemState, cmd: ItemCommand) -> None:
    if not state.suspended:
        raise IllegalCommand("the item is not suspended")


def _merge(state: ItemState, cmd: ItemCommand) -> None:
    if not cmd.into_item_id.strip() or cmd.into_item_id.strip() == state.item_id.strip():
        raise IllegalCommand("merge needs into_item_id, the id of another item (the one that survives)")


def _grid_call(state: ItemState, cmd: ItemCommand) -> None:
    if not cmd.departments or any(not d.strip() for d in cmd.departments):
        raise IllegalCommand("grid_call needs departments (non-empty names)")
    if len(state.responders) + len(cmd.departments) > b.MAX_RESPONDERS:
        raise IllegalCommand(f"an item may call at most {b.MAX_RESPONDERS} departments in all")
    called = {r.department for r in state.responders}
    again = sorted(called & set(cmd.departments))
    if again or len(set(cmd.departments)) != len(cmd.departments):
        raise IllegalCommand(f"department called twice: {', '.join(again) or 'repeated in the call'}")


def _responder(state: ItemState, department: str) -> Responder:
    found = next((r for r in state.responders if r.department == department), None)
    if found is None:
        raise IllegalCommand(f"department {department or '(none)'!r} was not called to this item")
    return found


def _report_in(state: ItemState, cmd: ItemCommand) -> None:
    if cmd.unit != cmd.department:
        raise IllegalCommand(
            f"unit {cmd.unit or '(none)'!r} cannot report in for department {cmd.department!r}"
        )
    if _responder(state, cmd.department).reported_in_at is not None:
        raise IllegalCommand(f"department {cmd.department!r} has already reported in")


def _rate(state: ItemState, cmd: ItemCommand) -> None:
    responder = _responder(state, cmd.department)
    if cmd.actor != responder.called_by:
        raise IllegalCommand(f"only the caller {responder.called_by!r} rates the departments it called")
    if responder.reported_in_at is None:
        raise IllegalCommand(f"department {cmd.department!r} has not reported in yet")
    if responder.rating:
        raise IllegalCommand(f"department {cmd.department!r} is already rated")
    if not 1 <= cmd.rating <= 5:
        raise IllegalCommand("rating must be a whole number from 1 to 5")


_CHECKS: dict[str, Callable[[ItemState, ItemCommand], None]] = {
    K.DISPATCH: _dispatch,
    K.RETURN: _return,
    K.SUBMIT_RECTIFICATION: _submit,
    K.VERIFY: _verify,
    K.REQUEST_EXTENSION: _request_extension,
    K.SUSPEND: _suspend,
    K.RESUME: _resume,
    K.MERGE: _merge,
    K.GRID_CALL: _grid_call,
    K.REPORT_IN: _report_in,
    K.RATE_RESPONDER: _rate,
}
