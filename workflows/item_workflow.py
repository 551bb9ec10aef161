"""``SupervisionItemWorkflow``: one supervision item from registration to close-out.

Thin orchestration over ``workflows.item_rules``: commands arrive as signals (``submit_command``) or
updates (``apply_command``, validated before they are accepted); deadlines are datetimes in the item
state, and the workflow sleeps until the earliest pending timer or the next command, whichever comes
first. Events of each step are recorded by the ``record_events`` activity.

Business time is ``workflow.now() - clock_offset_s``; the offset is 0 in production and lets a
simulation run historical cases on a time-skipping server whose clock starts today.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.event_recording import RecordEventsInput
    from duban.errors import IllegalCommand, ValidationError
    from events.envelope import EventEnvelope
    from workflows import item_rules
    from workflows import search_attributes as sa
    from workflows.item_model import CommandOutcome, ItemCommand, ItemState, Registration

RECORD_EVENTS_TIMEOUT = timedelta(seconds=60)


@dataclass
class ItemWorkflowInput:
    """Start input. ``initial_commands`` are applied right after registration (e.g. an imported case
    that was dispatched and accepted when it was opened). ``search_attributes`` is false on servers
    that lack duban's custom attributes (the time-skipping test server). A command may be dated at
    most ``command_lead_tolerance_s`` seconds after the item's business time (clock skew; a
    simulation that delivers a day's commands at the start of the day sets a day)."""

    registration: Registration
    initial_commands: list[ItemCommand] = field(default_factory=list)
    clock_offset_s: float = 0.0
    search_attributes: bool = True
    command_lead_tolerance_s: float = 300.0


@dataclass
class ItemOutcome:
    """Result of a finished item."""

    item_id: str
    stage: str
    on_time: bool | None
    overdue: bool
    escalation_level: int
    events: int


@workflow.defn
class SupervisionItemWorkflow:
    """A supervision item as a durable workflow (id ``item-<item id>``)."""

    @workflow.init
    def __init__(self, input: ItemWorkflowInput) -> None:
        self._input = input
        self._state: ItemState | None = None
        self._inbox: list[ItemCommand] = list(input.initial_commands)
        self._outcomes: dict[str, CommandOutcome] = {}

    def _business_now(self) -> datetime:
        return workflow.now() - timedelta(seconds=self._input.clock_offset_s)

    @workflow.run
    async def run(self, input: ItemWorkflowInput) -> ItemOutcome:
        try:
            self._state, events = item_rules.register(input.registration)
        except ValidationError as exc:
            raise ApplicationError(str(exc), type="InvalidRegistration", non_retryable=True) from exc
        await self._step(events)
        while not self._state.terminal:
            await self._wait_for_work()
            await self._step([])
        await workflow.wait_condition(workflow.all_handlers_finished)
        s = self._state
        return ItemOutcome(s.item_id, s.stage, s.on_time, s.overdue, s.escalation_level, s.sequence)

    def _head_ready(self) -> bool:
        """True when the first queued command can be applied now (no earlier timer still pending)."""
        assert self._state is not None
        head = self._inbox[0] if self._inbox else None
        now = self._business_now()
        return head is not None and item_rules.waiting_for_timer(self._state, head, now) is None

    async def _wait_for_work(self) -> None:
        """Sleep until the next timer is due or a command can be applied, whichever comes first."""
        assert self._state is not None
        due = item_rules.next_timer_at(self._state)
        if due is None:
            await workflow.wait_condition(lambda: bool(self._inbox))
            return
        remaining = (due - self._business_now()).total_seconds()
        if remaining <= 0 or self._head_ready():
            return
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(self._head_ready, timeout=remaining)

    async def _step(self, events: list[EventEnvelope]) -> None:
        """Apply queued commands (each after the timers due before it), then timers due now; record."""
        assert self._state is not None
        now = self._business_now()
        done: list[CommandOutcome] = []
        while self._inbox:
            cmd = self._inbox[0]
            if item_rules.waiting_for_timer(self._state, cmd, now) is not None:
                break
            self._inbox.pop(0)
            events += item_rules.fire_due_timers(self._state, min(cmd.occurred_at, now))
            try:
                item_rules.check_command_time(cmd, now, self._input.command_lead_tolerance_s)
                produced = item_rules.apply_command(self._state, cmd)
                done.append(CommandOutcome(cmd.command_id, True, "", [e.event_type for e in produced]))
                events += produced
            except IllegalCommand as exc:
                outcome = CommandOutcome(cmd.command_id, False, exc.reason)
                self._state.rejected.append(outcome)
                done.append(outcome)
                workflow.logger.warning("command %s rejected: %s", cmd.command_id, exc.reason)
        if not self._state.terminal:
            events += item_rules.fire_due_timers(self._state, now)
        if events:
            await workflow.execute_activity(
                "record_events",
                RecordEventsInput(events=events),
                start_to_close_timeout=RECORD_EVENTS_TIMEOUT,
                retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=10)),
            )
            self._upsert_search_attributes()
        for outcome in done:
            previous = self._outcomes.get(outcome.command_id)
            if previous is None or not previous.applied:  # a repeat never hides the real outcome
                self._outcomes[outcome.command_id] = outcome

    def _upsert_search_attributes(self) -> None:
        if not self._input.search_attributes or self._state is None:
            return
        s, reg = self._state, self._state.registration
        updates: list[SearchAttributeUpdate[Any]] = [
            sa.DEPARTMENT.value_set(s.department or "(none)"),
            sa.TOWN.value_set(reg.town or "(none)"),
            sa.COMMUNITY.value_set(reg.community or "(none)"),
            sa.CATEGORY.value_set(reg.category),
            sa.STAGE.value_set(s.stage),
            sa.OVERDUE.value_set(s.overdue),
            sa.ESCALATION_LEVEL.value_set(s.escalation_level),
        ]
        if reg.resolution_deadline is not None:
            updates.append(sa.DEADLINE.value_set(reg.resolution_deadline))
        workflow.upsert_search_attributes(updates)

    @workflow.signal
    def submit_command(self, cmd: ItemCommand) -> None:
        """Queue a command (fire-and-forget). Illegal ones are rejected when applied: see ``state``."""
        self._inbox.append(cmd)

    @workflow.update
    async def apply_command(self, cmd: ItemCommand) -> CommandOutcome:
        """Apply a command and return its outcome once its events are recorded."""
        if self._state is not None and cmd.command_id in self._state.applied_command_ids:
            return self._outcomes.get(cmd.command_id, CommandOutcome(cmd.command_id, True))
        stale = self._outcomes.get(cmd.command_id)
        if stale is not None and not stale.applied:
            del self._outcomes[cmd.command_id]  # rejected before: this delivery gets a fresh answer
        self._inbox.append(cmd)
        await workflow.wait_condition(lambda: cmd.command_id in self._outcomes)
        outcome = self._outcomes[cmd.command_id]
        if not outcome.applied:
            raise ApplicationError(outcome.reason, type="IllegalCommand", non_retryable=True)
        return outcome

    @apply_command.validator
    def _validate_apply_command(self, cmd: ItemCommand) -> None:
        if self._state is None:
            return
        try:
            item_rules.check_command(self._state, cmd)
            item_rules.check_command_time(cmd, self._business_now(), self._input.command_lead_tolerance_s)
        except IllegalCommand as exc:
            raise ApplicationError(exc.reason, type="IllegalCommand", non_retryable=True) from exc

    @workflow.query
    def state(self) -> ItemState | None:
        """The item's current state (stage, timers, escalation level, rejected commands)."""
        return self._state
