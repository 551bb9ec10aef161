"""The pure decision core of a supervision item: registration and commands.

No Temporal, no I/O: every function takes the state and aware UTC datetimes and returns the events
to record (``EventEnvelope`` with ``recorded_at`` equal to ``occurred_at``; the recording activity
stamps the real time). Functions that change the item mutate the ``ItemState`` they are given.
Guards live in ``workflows.item_checks``, timers in ``workflows.item_timers``.

Rules (DOMAIN.md "Item lifecycle", "Time limits and escalation"):
- register → dispatch → accept → submit rectification (with evidence) → verify → close out.
- Return for re-dispatch (within the policy's window after dispatch): back to registered, counted
  against the dispatcher; the returning unit cannot get the item again.
- A failed verification sends the item back to the same unit: a rework episode, counted.
- Extensions: the handling unit requests a new resolution deadline before it passes; the n-th is
  decided by the n-th approver of the policy; an approval moves every timer.
- Suspension stops the milestone clocks (the working time left is kept); resuming restarts them.
- Cancel and merge end the item; a merged duplicate carries the link to the surviving item.
- Grid calls: the called departments report in by the arrival deadline; the caller rates each.
- Accepting meets the response milestone; closing meets the resolution milestone. On time means
  closed at or before the resolution deadline as it stands (Boston's rule: OVERDUE exactly when
  ``CLOSED_DT > TARGET_DT``); an item without a deadline has ``on_time = None``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime

from events import types as t
from events.bounds import IDENTIFIER, KEPT_REASON_CHARS, MAX_REJECTED_KEPT, clipped
from events.codec import format_utc
from events.envelope import EventEnvelope
from workflows.errors import IllegalCommand
from workflows.item_checks import check_command, check_registration
from workflows.item_events import SYSTEM_TIMER_ACTOR, command_event, emit, utc_or_none
from workflows.item_exceptions import EXCEPTION_HANDLERS
from workflows.item_model import (
    CommandKind,
    CommandOutcome,
    ItemCommand,
    ItemState,
    Registration,
    Stage,
    Timer,
)
from workflows.item_timers import (
    fire_due_timers,
    next_timer_at,
    rearm,
    start_clocks,
    waiting_for_timer,
)

__all__ = [
    "SYSTEM_TIMER_ACTOR",
    "apply_command",
    "check_command",
    "check_command_time",
    "fire_due_timers",
    "next_timer_at",
    "note_refusal",
    "plan_timers",
    "register",
    "waiting_for_timer",
]
K = CommandKind
Handler = Callable[[ItemState, ItemCommand], list[EventEnvelope]]


def register(reg: Registration) -> tuple[ItemState, list[EventEnvelope]]:
    """Create the item's state (clocks and timers armed) and its ``ItemRegistered`` event.

    Raises:
        ValidationError: as ``workflows.item_checks.check_registration`` (the field and the reason).
    """
    check_registration(reg)
    state = ItemState(registration=reg, department=reg.department, unit=reg.unit)
    start_clocks(state)
    rearm(state)
    policy = reg.policy
    event = emit(
        state,
        t.ITEM_REGISTERED,
        reg.reported_at,
        reg.actor,
        f"register:{reg.item_id}",
        category=reg.category,
        category_group=reg.category_group,
        department=reg.department,
        unit=reg.unit,
        town=reg.town,
        community=reg.community,
        grid=reg.grid,
        zone=reg.zone,
        source=reg.source,
        deadline_origin=reg.deadline_origin,
        response_deadline=utc_or_none(reg.response_deadline),
        resolution_deadline=utc_or_none(reg.resolution_deadline),
        urgency=reg.urgency,
        rulebook_version=policy.rulebook_version if policy else "",
        calendar=policy.calendar if policy else "",
        order_id=reg.order_id,
        district=reg.district,
    )
    return state, [event]


def plan_timers(reg: Registration) -> list[Timer]:
    """The timers a newly registered item arms (see ``workflows.item_timers.plan``)."""
    return register(reg)[0].timers


def apply_command(state: ItemState, cmd: ItemCommand) -> list[EventEnvelope]:
    """Apply a legal command; a repeated ``command_id`` returns no events and changes nothing.

    Raises:
        IllegalCommand: as ``workflows.item_checks.check_command``.
    """
    check_command(state, cmd)
    if cmd.command_id in state.applied_command_ids:
        return []
    state.applied_command_ids.append(cmd.command_id)
    state.applied_kinds[cmd.command_id] = cmd.kind
    state.last_command_at = max(cmd.occurred_at, state.last_command_at or cmd.occurred_at)
    events = _HANDLERS[cmd.kind](state, cmd)
    rearm(state)
    return events


def _dispatch(state: ItemState, cmd: ItemCommand) -> list[EventEnvelope]:
    state.stage = Stage.DISPATCHED
    state.department = cmd.department or state.department
    state.unit = cmd.unit or state.unit
    state.dispatched_at, state.dispatched_by = cmd.occurred_at, cmd.actor
    return [
        command_event(
            state, cmd, t.ITEM_DISPATCHED, department=state.department, unit=state.unit, role=cmd.role
        )
    ]


def _accept(state: ItemState, cmd: ItemCommand) -> list[EventEnvelope]:
    state.stage = Stage.ACCEPTED
    state.accepted_at = cmd.occurred_at
    response = state.clock("response")
    if response is not None and response.met_at is None:
        response.met_at = cmd.occurred_at
    return [command_event(state, cmd, t.ITEM_ACCEPTED, unit=cmd.unit or state.unit, role=cmd.role)]


def _submit(state: ItemState, cmd: ItemCommand) -> list[EventEnvelope]:
    state.stage = Stage.RECTIFIED
    state.rectified_by, state.rectified_unit = cmd.actor, cmd.unit or state.unit
    return [
        command_event(
            state,
            cmd,
            t.RECTIFICATION_SUBMITTED,
            unit=cmd.unit or state.unit,
            notes=cmd.notes,
            evidence=list(cmd.evidence),
            location=cmd.location,
            role=cmd.role,
        )
    ]


def _verify(state: ItemState, cmd: ItemCommand) -> list[EventEnvelope]:
    events = [
        command_event(state, cmd, t.RECTIFICATION_VERIFIED, passed=cmd.passed, notes=cmd.notes, role=cmd.role)
    ]
    if cmd.passed:
        state.stage = Stage.VERIFIED
        return events
    state.stage = Stage.ACCEPTED  # rework: back to the same unit
    state.rework_episodes += 1
    episode = state.rework_episodes
    rework = command_event(state, cmd, t.REWORK_ORDERED, unit=state.unit, episode=episode, reason=cmd.notes)
    return [*events, rework]


def _close(state: ItemState, cmd: ItemCommand) -> list[EventEnvelope]:
    at = cmd.occurred_at
    clock = state.clock("resolution")
    deadline = clock.deadline if clock else None
    state.stage = Stage.CLOSED
    state.closed_at = at
    if clock is not None:
        clock.met_at = at
    state.on_time = None if deadline is None else at <= deadline
    # The closing time decides: a close that arrives late but is dated in time is not overdue
    # (the breach and escalation recorded meanwhile stay in the history).
    state.overdue = state.on_time is False
    handling = int((at - state.registration.reported_at).total_seconds())
    return [
        command_event(
            state,
            cmd,
            t.ITEM_CLOSED,
            on_time=state.on_time,
            resolution_deadline=utc_or_none(deadline),
            handling_seconds=handling,
            role=cmd.role,
        )
    ]


def _cancel(state: ItemState, cmd: ItemCommand) -> list[EventEnvelope]:
    state.stage = Stage.CANCELLED
    return [command_event(state, cmd, t.ITEM_CANCELLED, reason=cmd.reason, role=cmd.role)]


_HANDLERS: dict[str, Handler] = {
    K.DISPATCH: _dispatch,
    K.ACCEPT: _accept,
    K.SUBMIT_RECTIFICATION: _submit,
    K.VERIFY: _verify,
    K.CLOSE: _close,
    K.CANCEL: _cancel,
    **EXCEPTION_HANDLERS,
}


def note_refusal(state: ItemState, outcome: CommandOutcome) -> None:
    """List a refused command in ``state.rejected`` (the newest ``MAX_REJECTED_KEPT`` are kept, each
    with its id and reason clipped: ``events.bounds.KEPT_REASON_CHARS``) and count it in
    ``state.rejected_total``."""
    command_id, reason = (
        clipped(outcome.command_id, IDENTIFIER.max_chars),
        clipped(outcome.reason, KEPT_REASON_CHARS),
    )
    state.rejected.append(dataclasses.replace(outcome, command_id=command_id, reason=reason))
    del state.rejected[: max(0, len(state.rejected) - MAX_REJECTED_KEPT)]
    state.rejected_total += 1


def check_command_time(cmd: ItemCommand, now: datetime, lead_tolerance_s: float) -> None:
    """Raise ``IllegalCommand`` if ``cmd.occurred_at`` lies more than ``lead_tolerance_s`` seconds
    after ``now`` (business time): a command cannot report an act that has not happened yet."""
    lead = (cmd.occurred_at - now).total_seconds()
    if lead > lead_tolerance_s:
        raise IllegalCommand(
            f"occurred_at {format_utc(cmd.occurred_at)} is {lead:.0f} s in the future "
            f"(tolerance {lead_tolerance_s:.0f} s)"
        )
