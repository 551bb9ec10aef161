"""The exception paths of an item (DOMAIN.md "Item lifecycle"): return for re-dispatch, extensions,
suspension, merge and grid calls. Pure handlers, one per command kind, applied by
``workflows.item_rules.apply_command`` after ``workflows.item_checks`` has found the command legal.
"""

from __future__ import annotations

from collections.abc import Callable

from events import types as t
from events.codec import format_utc
from events.envelope import EventEnvelope
from workflows.item_events import command_event, utc_or_none
from workflows.item_model import (
    GREEN,
    YELLOW,
    CommandKind,
    ExtensionRequest,
    ItemCommand,
    ItemState,
    Responder,
    Stage,
)
from workflows.item_policy import limit_deadline
from workflows.item_timers import move_deadline, pause_clocks, resume_clocks, set_light, share_used

K = CommandKind


def _return(state: ItemState, cmd: ItemCommand) -> list[EventEnvelope]:
    unit, department, dispatcher = state.unit, state.department, state.dispatched_by
    state.stage = Stage.REGISTERED
    state.redispatch_count += 1
    state.returned_units.append(unit)
    return [
        command_event(
            state,
            cmd,
            t.ITEM_RETURNED,
            unit=unit,
            department=department,
            dispatched_by=dispatcher,
            reason=cmd.reason,
            role=cmd.role,
            redispatch_count=state.redispatch_count,
        )
    ]


def _request_extension(state: ItemState, cmd: ItemCommand) -> list[EventEnvelope]:
    clock = state.clock("resolution")
    assert clock is not None and cmd.new_deadline is not None
    number = state.extensions_granted + 1
    state.pending_extension = ExtensionRequest(
        cmd.command_id, cmd.actor, cmd.occurred_at, cmd.new_deadline, cmd.reason, number
    )
    return [
        command_event(
            state,
            cmd,
            t.EXTENSION_REQUESTED,
            milestone="resolution",
            current_deadline=format_utc(clock.deadline),
            requested_deadline=format_utc(cmd.new_deadline),
            reason=cmd.reason,
            role=cmd.role,
            extension_number=number,
        )
    ]


def _approve_extension(state: ItemState, cmd: ItemCommand) -> list[EventEnvelope]:
    request, clock = state.pending_extension, state.clock("resolution")
    assert request is not None and clock is not None and state.registration.policy is not None
    previous = clock.deadline
    move_deadline(state, clock, request.requested_deadline, cmd.occurred_at)
    state.pending_extension = None
    state.extensions_granted += 1
    events = [
        command_event(
            state,
            cmd,
            t.EXTENSION_APPROVED,
            milestone="resolution",
            previous_deadline=format_utc(previous),
            deadline=format_utc(clock.deadline),
            extension_number=request.number,
            role=cmd.role,
            reason=cmd.reason,
        )
    ]
    policy = state.registration.policy
    light = YELLOW if share_used(state, clock, cmd.occurred_at) >= float(policy.yellow_threshold) else GREEN
    return events + set_light(state, light, cmd.occurred_at, clock, cmd.command_id, cmd.actor)


def _reject_extension(state: ItemState, cmd: ItemCommand) -> list[EventEnvelope]:
    request = state.pending_extension
    assert request is not None
    state.pending_extension = None
    return [
        command_event(
            state,
            cmd,
            t.EXTENSION_REJECTED,
            milestone="resolution",
            requested_deadline=format_utc(request.requested_deadline),
            extension_number=request.number,
            role=cmd.role,
            reason=cmd.reason,
        )
    ]


def _suspend(state: ItemState, cmd: ItemCommand) -> list[EventEnvelope]:
    left = pause_clocks(state, cmd.occurred_at)
    state.suspended_at = cmd.occurred_at
    state.suspension_reviews = 0
    clock = state.clock("resolution")
    return [
        command_event(
            state,
            cmd,
            t.ITEM_SUSPENDED,
            reason=cmd.reason,
            role=cmd.role,
            remaining_seconds=left,
            basis=clock.basis if clock else "",
        )
    ]


def _resume(state: ItemState, cmd: ItemCommand) -> list[EventEnvelope]:
    assert state.suspended_at is not None
    paused = int((cmd.occurred_at - state.suspended_at).total_seconds())
    state.suspended_seconds += max(0, paused)
    state.suspended_at = None
    resume_clocks(state, cmd.occurred_at)
    response, resolution = state.clock("response"), state.clock("resolution")
    return [
        command_event(
            state,
            cmd,
            t.ITEM_RESUMED,
            role=cmd.role,
            reason=cmd.reason,
            suspended_seconds=max(0, paused),
            response_deadline=utc_or_none(
                response.deadline if response and response.met_at is None else None
            ),
            resolution_deadline=utc_or_none(resolution.deadline if resolution else None),
        )
    ]


def _merge(state: ItemState, cmd: ItemCommand) -> list[EventEnvelope]:
    state.stage = Stage.MERGED
    state.merged_into = cmd.into_item_id
    return [
        command_event(
            state, cmd, t.ITEM_MERGED, into_item_id=cmd.into_item_id, reason=cmd.reason, role=cmd.role
        )
    ]


def _grid_call(state: ItemState, cmd: ItemCommand) -> list[EventEnvelope]:
    policy = state.registration.policy
    assert policy is not None
    due = limit_deadline(policy.report_in, cmd.occurred_at, policy.calendar)
    for department in cmd.departments:
        state.responders.append(Responder(department, cmd.actor, cmd.occurred_at, due))
    return [
        command_event(
            state,
            cmd,
            t.GRID_CALL_PLACED,
            departments=list(cmd.departments),
            report_in_deadline=format_utc(due),
            reason=cmd.reason,
            role=cmd.role,
        )
    ]


def _report_in(state: ItemState, cmd: ItemCommand) -> list[EventEnvelope]:
    responder = next(r for r in state.responders if r.department == cmd.department)
    responder.reported_in_at = cmd.occurred_at
    late = cmd.occurred_at > responder.report_in_deadline
    return [
        command_event(
            state,
            cmd,
            t.DEPARTMENT_REPORTED_IN,
            department=cmd.department,
            late=late,
            report_in_deadline=format_utc(responder.report_in_deadline),
            role=cmd.role,
        )
    ]


def _rate(state: ItemState, cmd: ItemCommand) -> list[EventEnvelope]:
    responder = next(r for r in state.responders if r.department == cmd.department)
    responder.rating = cmd.rating
    return [
        command_event(
            state, cmd, t.RESPONDER_RATED, department=cmd.department, rating=cmd.rating, notes=cmd.notes
        )
    ]


EXCEPTION_HANDLERS: dict[str, Callable[[ItemState, ItemCommand], list[EventEnvelope]]] = {
    K.RETURN: _return,
    K.REQUEST_EXTENSION: _request_extension,
    K.APPROVE_EXTENSION: _approve_extension,
    K.REJECT_EXTENSION: _reject_extension,
    K.SUSPEND: _suspend,
    K.RESUME: _resume,
    K.MERGE: _merge,
    K.GRID_CALL: _grid_call,
    K.REPORT_IN: _report_in,
    K.RATE_RESPONDER: _rate,
}
"""Handler of each exception command kind."""
