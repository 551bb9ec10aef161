"""The pure decision core of a supervision item: registration, commands, timers, outcomes.

No Temporal, no I/O: every function takes the state and aware UTC datetimes and returns the events
to record (``EventEnvelope`` with ``recorded_at`` equal to ``occurred_at``; the recording activity
stamps the real time). Functions that change the item mutate the ``ItemState`` they are given.

Rules (DOMAIN.md "Item lifecycle", "Time limits and escalation"):
- register → dispatch → accept → submit rectification → verify → close out; cancel from any open stage.
- A failed verification sends the item back to the unit (rework); the unit that submitted the
  rectification cannot verify it.
- Accepting meets the response milestone; closing meets the resolution milestone and cancels all
  timers. On time means closed at or before the resolution deadline (Boston's rule: OVERDUE exactly
  when ``CLOSED_DT > TARGET_DT``); an item without a deadline has ``on_time = None``.
- A warning is due at ``warning_fraction`` of each milestone's window; at the deadline a breach, and
  on the resolution deadline one step up the escalation ladder.
"""

from __future__ import annotations

from datetime import datetime

from duban.errors import IllegalCommand, ValidationError
from events import types as t
from events.codec import format_utc
from events.envelope import SCHEMA_VERSION, EventEnvelope, make_event_id
from workflows.item_model import (
    ESCALATION_LADDER,
    CommandKind,
    ItemCommand,
    ItemState,
    Registration,
    Stage,
    Timer,
)

SYSTEM_TIMER_ACTOR = "system:timer"

# Which stage each command needs, and the stage it leads to.
_TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    CommandKind.DISPATCH: (frozenset({Stage.REGISTERED}), Stage.DISPATCHED),
    CommandKind.ACCEPT: (frozenset({Stage.DISPATCHED}), Stage.ACCEPTED),
    CommandKind.SUBMIT_RECTIFICATION: (frozenset({Stage.ACCEPTED}), Stage.RECTIFIED),
    CommandKind.VERIFY: (frozenset({Stage.RECTIFIED}), Stage.VERIFIED),
    CommandKind.CLOSE: (frozenset({Stage.VERIFIED}), Stage.CLOSED),
    CommandKind.CANCEL: (
        frozenset({Stage.REGISTERED, Stage.DISPATCHED, Stage.ACCEPTED, Stage.RECTIFIED, Stage.VERIFIED}),
        Stage.CANCELLED,
    ),
}


def _aware(value: datetime | None, field: str) -> None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise ValidationError(field, "must be an aware datetime (UTC); naive datetimes are refused")


def _event(
    state: ItemState, event_type: str, at: datetime, actor: str, cause: str, **payload: object
) -> EventEnvelope:
    state.sequence += 1
    return EventEnvelope(
        event_id=make_event_id(state.item_id, state.sequence),
        event_type=event_type,
        schema_version=SCHEMA_VERSION,
        item_id=state.item_id,
        sequence=state.sequence,
        occurred_at=at,
        recorded_at=at,
        actor=actor,
        payload=dict(payload),
        correlation_id=f"item-{state.item_id}",
        causation_id=cause,
    )


def plan_timers(reg: Registration) -> list[Timer]:
    """Warning and breach timers of each milestone that has a deadline, ordered by time.

    The warning falls at ``reported_at + warning_fraction × (deadline − reported_at)``; it is
    omitted when the window is empty or negative (the deadline is at or before registration).
    """
    timers: list[Timer] = []
    for milestone, deadline in (("response", reg.response_deadline), ("resolution", reg.resolution_deadline)):
        if deadline is None:
            continue
        window = deadline - reg.reported_at
        if window.total_seconds() > 0:
            timers.append(Timer(reg.reported_at + window * reg.warning_fraction, "warn", milestone, deadline))
        timers.append(Timer(deadline, "breach", milestone, deadline))
    return sorted(timers, key=lambda tm: (tm.at, tm.kind != "warn", tm.milestone))


def register(reg: Registration) -> tuple[ItemState, list[EventEnvelope]]:
    """Create the item's state and its ``ItemRegistered`` event.

    Raises:
        ValidationError: empty item id or category, a naive datetime, a zero/negative warning fraction.
    """
    if not reg.item_id.strip():
        raise ValidationError("item_id", "must not be empty")
    if not reg.category.strip():
        raise ValidationError("category", "must not be empty")
    for name in ("reported_at", "response_deadline", "resolution_deadline"):
        _aware(getattr(reg, name), name)
    if not 0 < reg.warning_fraction < 1:
        raise ValidationError("warning_fraction", "must be between 0 and 1 (exclusive)")
    state = ItemState(registration=reg, department=reg.department, unit=reg.unit, timers=plan_timers(reg))
    event = _event(
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
        response_deadline=format_utc(reg.response_deadline) if reg.response_deadline else None,
        resolution_deadline=format_utc(reg.resolution_deadline) if reg.resolution_deadline else None,
    )
    return state, [event]


def check_command(state: ItemState, cmd: ItemCommand) -> None:
    """Raise ``IllegalCommand`` (with the reason) if ``cmd`` may not be applied now; else return.

    A command id already applied is legal (it will be a no-op), so redelivery never fails.
    """
    if cmd.command_id in state.applied_command_ids:
        return
    if not cmd.command_id.strip():
        raise IllegalCommand("command_id must not be empty")
    if cmd.kind not in _TRANSITIONS:
        raise IllegalCommand(f"unknown command kind {cmd.kind!r}; known: {', '.join(_TRANSITIONS)}")
    if cmd.occurred_at.tzinfo is None:
        raise IllegalCommand("occurred_at must be an aware UTC datetime")
    allowed, _ = _TRANSITIONS[cmd.kind]
    if state.stage not in allowed:
        raise IllegalCommand(f"cannot {cmd.kind} an item that is {state.stage}")
    if cmd.kind == CommandKind.VERIFY and state.rectified_by and cmd.actor == state.rectified_by:
        raise IllegalCommand(f"{cmd.actor} submitted the rectification and cannot verify it")
    if cmd.kind == CommandKind.CANCEL and not cmd.reason.strip():
        raise IllegalCommand("cancel needs a reason")


def apply_command(state: ItemState, cmd: ItemCommand) -> list[EventEnvelope]:
    """Apply a legal command; a repeated ``command_id`` returns no events and changes nothing.

    Raises:
        IllegalCommand: as ``check_command``.
    """
    check_command(state, cmd)
    if cmd.command_id in state.applied_command_ids:
        return []
    at, actor, cause = cmd.occurred_at, cmd.actor, cmd.command_id
    state.applied_command_ids.append(cmd.command_id)
    _, next_stage = _TRANSITIONS[cmd.kind]
    state.stage = next_stage
    if cmd.kind == CommandKind.DISPATCH:
        state.department = cmd.department or state.department
        state.unit = cmd.unit or state.unit
        return [
            _event(state, t.ITEM_DISPATCHED, at, actor, cause, department=state.department, unit=state.unit)
        ]
    if cmd.kind == CommandKind.ACCEPT:
        state.accepted_at = at
        _drop_timers(state, "response")
        return [_event(state, t.ITEM_ACCEPTED, at, actor, cause, unit=cmd.unit or state.unit)]
    if cmd.kind == CommandKind.SUBMIT_RECTIFICATION:
        state.rectified_by = actor
        return [
            _event(
                state,
                t.RECTIFICATION_SUBMITTED,
                at,
                actor,
                cause,
                unit=cmd.unit or state.unit,
                notes=cmd.notes,
                evidence=list(cmd.evidence),
            )
        ]
    if cmd.kind == CommandKind.VERIFY:
        if not cmd.passed:
            state.stage = Stage.ACCEPTED  # rework: back to the same unit
        return [_event(state, t.RECTIFICATION_VERIFIED, at, actor, cause, passed=cmd.passed, notes=cmd.notes)]
    if cmd.kind == CommandKind.CLOSE:
        return [_close(state, at, actor, cause)]
    state.timers.clear()
    return [_event(state, t.ITEM_CANCELLED, at, actor, cause, reason=cmd.reason)]


def _drop_timers(state: ItemState, milestone: str) -> None:
    state.timers = [tm for tm in state.timers if tm.milestone != milestone]


def _close(state: ItemState, at: datetime, actor: str, cause: str) -> EventEnvelope:
    deadline = state.registration.resolution_deadline
    state.closed_at = at
    state.on_time = None if deadline is None else at <= deadline
    # The closing time decides: a close that arrives late but is dated in time is not overdue
    # (the breach and escalation recorded meanwhile stay in the history).
    state.overdue = state.on_time is False
    state.timers.clear()
    handling = int((at - state.registration.reported_at).total_seconds())
    return _event(
        state,
        t.ITEM_CLOSED,
        at,
        actor,
        cause,
        on_time=state.on_time,
        resolution_deadline=format_utc(deadline) if deadline else None,
        handling_seconds=handling,
    )


def next_timer_at(state: ItemState) -> datetime | None:
    """When the earliest pending timer is due (aware UTC), or ``None`` if none is pending."""
    return min((tm.at for tm in state.timers), default=None)


def fire_due_timers(state: ItemState, until: datetime) -> list[EventEnvelope]:
    """Fire every pending timer due at or before ``until``, in time order, and return their events.

    A warning gives ``DeadlineWarned``; a breach gives ``DeadlineBreached`` and, for the resolution
    milestone, ``ItemEscalated`` one rung up the ladder (capped at the top rung).
    """
    events: list[EventEnvelope] = []
    due = [tm for tm in state.timers if tm.at <= until]
    state.timers = [tm for tm in state.timers if tm.at > until]
    for tm in due:
        cause = f"timer:{tm.milestone}:{tm.kind}"
        if tm.kind == "warn":
            events.append(
                _event(
                    state,
                    t.DEADLINE_WARNED,
                    tm.at,
                    SYSTEM_TIMER_ACTOR,
                    cause,
                    milestone=tm.milestone,
                    deadline=format_utc(tm.deadline),
                    threshold=f"{state.registration.warning_fraction:.2f}",
                )
            )
            continue
        events.append(
            _event(
                state,
                t.DEADLINE_BREACHED,
                tm.at,
                SYSTEM_TIMER_ACTOR,
                cause,
                milestone=tm.milestone,
                deadline=format_utc(tm.deadline),
            )
        )
        if tm.milestone == "resolution":
            state.overdue = True
            state.escalation_level = min(state.escalation_level + 1, len(ESCALATION_LADDER) - 1)
            events.append(
                _event(
                    state,
                    t.ITEM_ESCALATED,
                    tm.at,
                    SYSTEM_TIMER_ACTOR,
                    cause,
                    milestone=tm.milestone,
                    level=state.escalation_level,
                    rung=ESCALATION_LADDER[state.escalation_level],
                )
            )
    return events


def check_command_time(cmd: ItemCommand, now: datetime, lead_tolerance_s: float) -> None:
    """Raise ``IllegalCommand`` if ``cmd.occurred_at`` lies more than ``lead_tolerance_s`` seconds
    after ``now`` (business time): a command cannot report an act that has not happened yet."""
    lead = (cmd.occurred_at - now).total_seconds()
    if lead > lead_tolerance_s:
        raise IllegalCommand(
            f"occurred_at {format_utc(cmd.occurred_at)} is {lead:.0f} s in the future "
            f"(tolerance {lead_tolerance_s:.0f} s)"
        )


def waiting_for_timer(state: ItemState, cmd: ItemCommand, now: datetime) -> datetime | None:
    """The pending timer a command must wait for, or ``None`` if it can be applied now.

    A command dated after ``now`` (allowed within the lead tolerance; a simulation delivers a day's
    commands at the start of the day) is applied only once every timer due before its
    ``occurred_at`` has fired, so events keep business-time order. Commands dated at or before
    ``now`` never wait.
    """
    due = next_timer_at(state)
    if due is not None and now < due < cmd.occurred_at:
        return due
    return None
