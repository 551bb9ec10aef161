"""Timers that follow the deadline: pure planning and firing of an item's business timers.

Timers are derived from the item's state (milestone clocks, escalation, suspension, grid calls), so a
deadline that moves (extension, resumption) moves every timer that depends on it, and a timer whose
reason is gone (the item closed, the department reported in) is simply no longer planned: a cancelled
timer can never fire later. DOMAIN.md "Time limits and escalation":
- warnings at each threshold share of the limit (rulebook ``warning_thresholds``, default 50/75/80%);
  the resolution light turns yellow at the last one and red at the breach;
- at the resolution breach, the escalation ladder is climbed one rung at a time, each rung
  ``delay`` after the previous (the first after the breach);
- a suspended item's milestone clocks stop (no warnings, breach or rungs) and a review falls due
  every ``suspension_review``;
- a grid call's departments must report in by the arrival deadline, else ``ReportInOverdue``.

An item registered without a policy (before rulebooks) keeps the original rules: one warning at
``warning_fraction``, the breach, and one rung (department head) at the resolution breach.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from events import types as t
from events.codec import format_utc
from events.envelope import EventEnvelope
from workflows.item_checks import shape_problem
from workflows.item_events import SYSTEM_TIMER_ACTOR, emit
from workflows.item_model import ESCALATION_LADDER, RED, YELLOW, ItemCommand, ItemState, MilestoneClock, Timer
from workflows.item_policy import advance, elapsed, limit_deadline, share_seconds

_KIND_ORDER = {"report_in": 0, "warn": 1, "breach": 2, "rung": 3, "review": 4}
MILESTONE_NAMES = ("response", "resolution")


def basis_and_calendar(state: ItemState, milestone: str) -> tuple[str, str]:
    """The time basis (``working``/``clock``) and calendar name of ``milestone`` on this item."""
    policy = state.registration.policy
    if policy is None:
        return "clock", ""
    return getattr(policy, f"{milestone}_basis"), policy.calendar


def start_clocks(state: ItemState) -> None:
    """Create a running clock for each milestone that has a deadline, counted from ``reported_at``."""
    reg = state.registration
    for name in MILESTONE_NAMES:
        due = getattr(reg, f"{name}_deadline")
        if due is None:
            continue
        basis, calendar = basis_and_calendar(state, name)
        budget = elapsed(reg.reported_at, due, basis, calendar)
        state.clocks.append(MilestoneClock(name, basis, due, budget, running_since=reg.reported_at))


def thresholds(state: ItemState) -> list[str]:
    """Warning thresholds of this item, as decimal strings (``"0.75"``)."""
    policy = state.registration.policy
    return list(policy.warning_thresholds) if policy else [str(state.registration.warning_fraction)]


def threshold_at(state: ItemState, clock: MilestoneClock, share: str) -> datetime:
    """When ``clock`` reaches ``share`` of its budget (if it keeps running from ``running_since``):
    working seconds rounded half up on the working basis; microseconds on the clock basis."""
    assert clock.running_since is not None
    if clock.basis == "clock":  # microsecond precision, as timedelta × float (items in flight rely on it)
        todo = timedelta(seconds=clock.budget_s) * float(share) - timedelta(seconds=clock.used_s)
        return clock.running_since + max(todo, timedelta(0))
    _, calendar = basis_and_calendar(state, clock.name)
    todo_s = max(0, share_seconds(clock.budget_s, share) - clock.used_s)
    return advance(clock.running_since, todo_s, clock.basis, calendar)


def _ladder(state: ItemState) -> list[tuple[str, datetime]]:
    """The next rung to reach and when (aware UTC), or nothing: one rung is pending at a time, its
    delay counted from ``ladder_anchor`` (the breach, the previous rung, or the resumption)."""
    policy, anchor = state.registration.policy, state.ladder_anchor
    if anchor is None or state.suspended:
        return []
    if policy is None:  # before rulebooks: one rung, at the breach
        level = state.escalation_level + 1
        return [(ESCALATION_LADDER[level], anchor)] if state.escalation_level == 0 else []
    if state.escalation_level >= len(policy.ladder):
        return []
    rung = policy.ladder[state.escalation_level]
    return [(rung.name, limit_deadline(rung.delay, anchor, policy.calendar))]


def next_review_at(state: ItemState) -> datetime | None:
    """When the next periodic review of a suspension falls due, or ``None`` if not suspended."""
    policy, at = state.registration.policy, state.suspended_at
    if at is None or policy is None:
        return None
    for _ in range(state.suspension_reviews + 1):
        at = limit_deadline(policy.suspension_review, at, policy.calendar)
    return at


def plan(state: ItemState) -> list[Timer]:
    """Every timer pending on the item now, in firing order (time, then report-in, warning, breach,
    rung, review; response before resolution)."""
    if state.terminal:
        return []
    timers: list[Timer] = []
    for clock in state.clocks:
        if clock.met_at is not None or clock.running_since is None:
            continue
        if clock.budget_s > 0:
            for share in thresholds(state):
                if share not in clock.fired:
                    at = threshold_at(state, clock, share)
                    timers.append(Timer(at, "warn", clock.name, clock.deadline, share))
        if "breach" not in clock.fired:
            timers.append(Timer(clock.deadline, "breach", clock.name, clock.deadline))
    resolution = state.clock("resolution")
    for name, at in _ladder(state):
        timers.append(Timer(at, "rung", "resolution", resolution.deadline if resolution else at, name))
    review = next_review_at(state)
    if review is not None:
        timers.append(Timer(review, "review", "", review))
    for r in state.responders:
        if r.reported_in_at is None and not r.late:
            timers.append(Timer(r.report_in_deadline, "report_in", "", r.report_in_deadline, r.department))
    return sorted(timers, key=lambda tm: (tm.at, _KIND_ORDER[tm.kind], tm.milestone))


def rearm(state: ItemState) -> None:
    """Recompute ``state.timers`` from the state (after any change)."""
    state.timers = plan(state)


def next_timer_at(state: ItemState) -> datetime | None:
    """When the earliest pending timer is due (aware UTC), or ``None`` if none is pending."""
    return min((tm.at for tm in state.timers), default=None)


def fire_due_timers(state: ItemState, until: datetime) -> list[EventEnvelope]:
    """Fire every timer due at or before ``until``, earliest first, and return their events.

    Firing one timer may plan the next (a breach plans the first rung, a rung the next one), so
    timers are re-planned after each.
    """
    events: list[EventEnvelope] = []
    rearm(state)
    while state.timers and state.timers[0].at <= until:
        events += _fire(state, state.timers[0])
        rearm(state)
    return events


def set_light(
    state: ItemState,
    light: str,
    at: datetime,
    clock: MilestoneClock,
    cause: str,
    actor: str = SYSTEM_TIMER_ACTOR,
) -> list[EventEnvelope]:
    """Turn the item's light to ``light`` and return its ``TrafficLightChanged`` event (none if the
    light is already that or the item has no rulebook policy)."""
    if state.registration.policy is None or state.light == light:
        return []
    previous, state.light = state.light, light
    return [
        emit(
            state,
            t.TRAFFIC_LIGHT_CHANGED,
            at,
            actor,
            cause,
            milestone=clock.name,
            light=light,
            previous=previous,
            deadline=format_utc(clock.deadline),
        )
    ]


def _fire(state: ItemState, tm: Timer) -> list[EventEnvelope]:
    cause = f"timer:{tm.milestone or tm.kind}:{tm.kind}" + (f":{tm.subject}" if tm.subject else "")
    policy = state.registration.policy
    if tm.kind in ("warn", "breach"):
        clock = state.clock(tm.milestone)
        assert clock is not None
        due = format_utc(clock.deadline)
        if tm.kind == "warn":
            clock.fired.append(tm.subject)
            event = emit(
                state,
                t.DEADLINE_WARNED,
                tm.at,
                SYSTEM_TIMER_ACTOR,
                cause,
                milestone=tm.milestone,
                deadline=due,
                threshold=tm.subject,
            )
            yellow = (
                policy is not None and tm.milestone == "resolution" and tm.subject == policy.yellow_threshold
            )
            return [event] + (set_light(state, YELLOW, tm.at, clock, cause) if yellow else [])
        clock.fired.append("breach")
        clock.breached_at = tm.at
        events = [
            emit(
                state,
                t.DEADLINE_BREACHED,
                tm.at,
                SYSTEM_TIMER_ACTOR,
                cause,
                milestone=tm.milestone,
                deadline=due,
            )
        ]
        if tm.milestone == "resolution":
            state.overdue = True
            state.ladder_anchor = tm.at
            events += set_light(state, RED, tm.at, clock, cause)
        return events
    if tm.kind == "rung":
        state.escalation_level += 1
        state.ladder_anchor = tm.at
        return [
            emit(
                state,
                t.ITEM_ESCALATED,
                tm.at,
                SYSTEM_TIMER_ACTOR,
                cause,
                milestone="resolution",
                level=state.escalation_level,
                rung=tm.subject,
            )
        ]
    if tm.kind == "review":
        state.suspension_reviews += 1
        assert state.suspended_at is not None
        return [
            emit(
                state,
                t.SUSPENSION_REVIEW_DUE,
                tm.at,
                SYSTEM_TIMER_ACTOR,
                cause,
                suspended_since=format_utc(state.suspended_at),
                review=state.suspension_reviews,
            )
        ]
    responder = next(r for r in state.responders if r.department == tm.subject)
    responder.late = True
    return [
        emit(
            state,
            t.REPORT_IN_OVERDUE,
            tm.at,
            SYSTEM_TIMER_ACTOR,
            cause,
            department=tm.subject,
            report_in_deadline=format_utc(tm.deadline),
        )
    ]


def waiting_for_timer(
    state: ItemState, cmd: ItemCommand, now: datetime, lead_tolerance_s: float | None = None
) -> datetime | None:
    """The pending timer a command must wait for, or ``None`` if it can be applied now.

    A command dated after ``now`` (allowed within the lead tolerance; a simulation delivers a day's
    commands at the start of the day) is applied only once every timer due before its
    ``occurred_at`` has fired, so events keep business-time order. Commands dated at or before
    ``now`` never wait, and neither does a command that will be refused anyway (malformed, or dated
    more than ``lead_tolerance_s`` seconds ahead): it must not hold up the commands behind it.
    """
    if shape_problem(cmd) is not None:
        return None
    if lead_tolerance_s is not None and (cmd.occurred_at - now).total_seconds() > lead_tolerance_s:
        return None
    due = next_timer_at(state)
    if due is not None and now < due < cmd.occurred_at:
        return due
    return None


def pause_clocks(state: ItemState, at: datetime) -> int:
    """Stop the running milestone clocks at ``at`` (suspension); return the resolution seconds left."""
    left = 0
    for clock in state.clocks:
        if clock.met_at is None and clock.running_since is not None:
            _, calendar = basis_and_calendar(state, clock.name)
            clock.used_s += elapsed(clock.running_since, at, clock.basis, calendar)
            clock.running_since = None
            if clock.name == "resolution":
                left = max(0, clock.budget_s - clock.used_s)
    return left


def resume_clocks(state: ItemState, at: datetime) -> None:
    """Restart stopped clocks at ``at``: each deadline becomes ``at`` plus the budget left (a breached
    milestone keeps its deadline); the next escalation rung counts its delay from ``at``."""
    for clock in state.clocks:
        if clock.met_at is None and clock.running_since is None:
            _, calendar = basis_and_calendar(state, clock.name)
            clock.running_since = at
            if "breach" not in clock.fired:
                clock.deadline = advance(at, max(0, clock.budget_s - clock.used_s), clock.basis, calendar)
    if state.ladder_anchor is not None:
        state.ladder_anchor = at


def move_deadline(state: ItemState, clock: MilestoneClock, new_deadline: datetime, at: datetime) -> None:
    """Move ``clock``'s deadline (an approved extension at ``at``): the budget grows to reach
    ``new_deadline``; thresholds whose new instant lies after ``at`` are armed again."""
    assert clock.running_since is not None
    _, calendar = basis_and_calendar(state, clock.name)
    clock.budget_s = clock.used_s + elapsed(clock.running_since, new_deadline, clock.basis, calendar)
    clock.deadline = new_deadline
    clock.fired = [s for s in clock.fired if s == "breach" or threshold_at(state, clock, s) <= at]


def share_used(state: ItemState, clock: MilestoneClock, at: datetime) -> float:
    """Share of ``clock``'s budget used at ``at`` (for the traffic light)."""
    if clock.budget_s <= 0:
        return 1.0
    used = clock.used_s
    if clock.running_since is not None:
        _, calendar = basis_and_calendar(state, clock.name)
        used += elapsed(clock.running_since, at, clock.basis, calendar)
    return used / clock.budget_s
