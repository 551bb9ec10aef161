"""``SupervisionItemWorkflow``: one supervision item from registration to close-out.

Thin orchestration over ``workflows.item_rules``: commands arrive as signals (``submit_command``) or
updates (``apply_command``, validated before they are accepted); deadlines are datetimes in the item
state, and the workflow sleeps until the earliest pending timer or the next command, whichever comes
first. Events of each step are recorded by the ``record_events`` activity (a local activity for runs
that ask for it: ``ItemWorkflowInput.local_recording``).

Business time is ``workflow.now() - clock_offset_s``; the offset is 0 in production and lets a
simulation run historical cases on a time-skipping server whose clock starts today.

Long-lived items continue as new once their history passes ``continue_as_new_after`` events (or
Temporal suggests it), when no command is queued and every update handler has finished: the new run
gets the whole item state (deadlines, clocks, applied command ids, the last refusals, clipped).
Items of a supervision order tell the order workflow
(``order-<order id>``) whenever their summary changes.

Hostile input never wedges an item: the start input and every command arrive as raw payloads and are
decoded strictly (``workflows.item_payloads``). An input that cannot be decoded, or a registration
out of bounds, fails the workflow at once with ``InvalidRegistration`` and the reason; a signal that
cannot be decoded is listed in the ``state`` query's ``rejected`` with the reason; an update that
cannot be decoded is refused (``MalformedCommand``) before it enters the history.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RawValue, RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from events import bounds
    from events.envelope import EventEnvelope
    from events.errors import ValidationError
    from workflows import item_checks, item_payloads, item_rules, item_step
    from workflows import search_attributes as sa
    from workflows.activity_contracts import RecordEventsInput, item_registered, record_events
    from workflows.errors import IllegalCommand
    from workflows.item_memo import changed_only, item_memo
    from workflows.item_model import (
        RULES_REVISION,
        CommandOutcome,
        ItemCommand,
        ItemState,
        Registration,
    )
    from workflows.order_model import ItemProgress, order_workflow_id

RECORD_EVENTS_TIMEOUT = timedelta(seconds=60)
LOOKUP_TIMEOUT = timedelta(seconds=30)
MEMO_PATCH = "item-memo-and-order-progress"
"""``workflow.patched`` id guarding the memo upsert and order notifications (README, "Changing
workflow code"): histories recorded before them replay without them."""
LOCAL_RECORDING_PATCH = "record-events-local"
"""``workflow.patched`` id of recording each step's events by a local activity when the start input
asks for it (``ItemWorkflowInput.local_recording``; issue 14): the step's events are stored and
published by the worker that runs the workflow task, without a round trip through the server's
activity queue (one workflow task less per step). The activity's result carries the events it
recorded into the history's marker, where ``duban audit item`` finds them as it finds an
activity's input in the other histories."""
RULES_PATCH = "rules-revision-2"
"""``workflow.patched`` id of the command rules of revision 2 (``item_model.RULES_REVISION``): a
dispatch names its unit and a submit has evidence on every item, and a merge target must be a
registered item (checked by the ``item_registered`` activity)."""


@dataclass
class ItemWorkflowInput:
    """Start input. ``initial_commands`` are applied right after registration (e.g. an imported case
    that was dispatched and accepted when it was opened). ``search_attributes`` is false on servers
    that lack duban's custom attributes (the time-skipping test server). A command may be dated at
    most ``command_lead_tolerance_s`` seconds after the item's business time (clock skew; a
    simulation that delivers a day's commands at the start of the day sets a day).

    ``carried`` is the item state handed over by continue-as-new (``None`` on the first run); the run
    continues as new once its history holds ``continue_as_new_after`` events.

    ``local_recording`` records each step by a local activity (``LOCAL_RECORDING_PATCH``): only for a
    run whose worker's crash ends the whole run (the simulation), because a local activity stores
    the step before the workflow task that computed it commits, and a task retried after a crash may
    compute the step again with a later time (other timers due): the store would refuse it
    (``EventConflict``) and the item would stop. Production items record by an ordinary activity,
    scheduled in the history before anything is stored.

    ``memo`` false upserts no memo: for a run whose server nobody inspects (the simulation's own
    time-skipping server, discarded at its end); each memo value is a payload, which the SDK's
    sandbox visits one by one."""

    registration: Registration
    initial_commands: list[ItemCommand] = field(default_factory=list)
    clock_offset_s: float = 0.0
    search_attributes: bool = True
    command_lead_tolerance_s: float = 300.0
    carried: ItemState | None = None
    continue_as_new_after: int = 4000
    local_recording: bool = False
    memo: bool = True


def check_input(input: ItemWorkflowInput, workflow_id: str) -> None:
    """Raise ``ValidationError`` naming the field unless ``input`` can start the workflow
    ``workflow_id``: the id is ``item-<item id>`` (one workflow per item, so event ids never collide),
    at most ``events.bounds.MAX_INITIAL_COMMANDS`` initial commands, a finite clock offset of at most
    a hundred years either way (a simulation replays history), a lead tolerance of at most ten years,
    and continue-as-new after 10 to 40,000 events (Temporal's hard limit is 51,200). The
    registration itself is checked by ``item_rules.register``."""
    item_id = (input.carried.registration if input.carried else input.registration).item_id
    if workflow_id != f"item-{item_id}":
        raise ValidationError(
            "registration.item_id", f"the workflow id must be item-<item id>, not {workflow_id!r}"
        )
    if len(input.initial_commands) > bounds.MAX_INITIAL_COMMANDS:
        raise ValidationError("initial_commands", f"at most {bounds.MAX_INITIAL_COMMANDS} commands")
    ten_years = bounds.DEADLINE_HORIZON.total_seconds()
    for name, low in (("clock_offset_s", -10 * ten_years), ("command_lead_tolerance_s", 0.0)):
        if problem := bounds.float_problem(getattr(input, name), low, 10 * ten_years if low else ten_years):
            raise ValidationError(name, problem)
    if (problem := bounds.int_problem(input.continue_as_new_after, 10, 40_000)) is not None:
        raise ValidationError("continue_as_new_after", problem)


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
    def __init__(self, raw: RawValue) -> None:
        try:
            data = item_payloads.payload_data(raw.payload, "input")
            input = item_payloads.decode_json(data, ItemWorkflowInput, "input", item_payloads.MAX_INPUT_BYTES)
            check_input(input, workflow.info().workflow_id)
        except ValidationError as exc:
            raise ApplicationError(str(exc), type="InvalidRegistration", non_retryable=True) from exc
        self._input = input
        self._state: ItemState | None = None
        self._inbox: list[ItemCommand] = list(input.initial_commands)
        self._outcomes: dict[str, CommandOutcome] = {}
        self._reported: ItemProgress | None = None
        self._early_refusals: list[CommandOutcome] = []
        self._memo_shown: dict[str, Any] = {}
        self._attributes_shown: dict[str, Any] = {}

    def _business_now(self) -> datetime:
        return workflow.now() - timedelta(seconds=self._input.clock_offset_s)

    @workflow.run
    async def run(self, raw: RawValue) -> ItemOutcome:
        input = self._input
        revision = RULES_REVISION if workflow.patched(RULES_PATCH) else 1
        if input.carried is not None:
            self._state = input.carried
            self._state.rules_revision = revision
            await self._step([])
        else:
            try:
                self._state, events = item_rules.register(input.registration)
            except ValidationError as exc:  # fields named from the input, as its decoding does
                message = f"registration.{exc.field}: {exc.reason}"
                raise ApplicationError(message, type="InvalidRegistration", non_retryable=True) from exc
            self._state.rules_revision = revision
            await self._step(events)
        while not self._state.terminal:
            if self._history_is_long() and not self._inbox:
                await workflow.wait_condition(workflow.all_handlers_finished)
                if not self._inbox:
                    workflow.continue_as_new(
                        dataclasses.replace(input, carried=self._state, initial_commands=[])
                    )
            await self._wait_for_work()
            await self._step([])
        await workflow.wait_condition(workflow.all_handlers_finished)
        s = self._state
        return ItemOutcome(s.item_id, s.stage, s.on_time, s.overdue, s.escalation_level, s.sequence)

    def _history_is_long(self) -> bool:
        info = workflow.info()
        return info.get_current_history_length() >= self._input.continue_as_new_after or (
            info.is_continue_as_new_suggested()
        )

    def _head_ready(self) -> bool:
        """True when the first queued command can be applied now (no earlier timer still pending)."""
        assert self._state is not None
        head = self._inbox[0] if self._inbox else None
        now = self._business_now()
        tolerance = self._input.command_lead_tolerance_s
        return head is not None and item_rules.waiting_for_timer(self._state, head, now, tolerance) is None

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
        for early in self._early_refusals:
            item_rules.note_refusal(self._state, early)
        self._early_refusals.clear()
        now = self._business_now()
        done: list[CommandOutcome] = []
        while self._inbox:
            cmd = self._inbox[0]
            if item_rules.waiting_for_timer(self._state, cmd, now, self._input.command_lead_tolerance_s):
                break
            self._inbox.pop(0)
            step = item_step.handle_command(self._state, cmd, now, self._input.command_lead_tolerance_s)
            if step.outcome is None:  # a merge under rules revision 2: is the target registered?
                found = await self._registered(step.lookup)
                known = {step.lookup: found}
                more = item_step.handle_command(
                    self._state, cmd, now, self._input.command_lead_tolerance_s, known
                )
                step = item_step.Step(step.events + more.events, more.outcome)
            assert step.outcome is not None
            events += step.events
            done.append(step.outcome)
            if not step.outcome.applied:
                kept = self._state.rejected[-1]  # clipped: a log line of a huge id is a hazard too
                workflow.logger.warning("command %s rejected: %s", kept.command_id, kept.reason)
        if not self._state.terminal:
            events += item_rules.fire_due_timers(self._state, now)
        if events:
            local = self._input.local_recording and workflow.patched(LOCAL_RECORDING_PATCH)
            execute = workflow.execute_local_activity if local else workflow.execute_activity
            await execute(
                record_events,
                RecordEventsInput(events=events),
                start_to_close_timeout=RECORD_EVENTS_TIMEOUT,
                retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=10)),
            )
            self._upsert_search_attributes()
            if workflow.patched(MEMO_PATCH):
                self._upsert_memo()
                await self._tell_order()
        for outcome in done:
            previous = self._outcomes.get(outcome.command_id)
            if previous is None or not previous.applied:  # a repeat never hides the real outcome
                self._outcomes[outcome.command_id] = outcome

    async def _registered(self, item_id: str) -> bool:
        """Whether the event store holds ``item_id``'s registration (the ``item_registered``
        activity): a merge target must exist under rules revision 2."""
        found: bool = await workflow.execute_activity(
            item_registered,
            item_id,
            start_to_close_timeout=LOOKUP_TIMEOUT,
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=10)),
        )
        return found

    def _upsert_search_attributes(self) -> None:
        if not self._input.search_attributes or self._state is None:
            return
        s, reg = self._state, self._state.registration
        updates: list[SearchAttributeUpdate[Any]] = [
            sa.STAGE.value_set(s.shown_stage),  # first: the one always sent (see changed_only)
            sa.DEPARTMENT.value_set(s.department or "(none)"),
            sa.TOWN.value_set(reg.town or "(none)"),
            sa.COMMUNITY.value_set(reg.community or "(none)"),
            sa.CATEGORY.value_set(reg.category),
            sa.OVERDUE.value_set(s.overdue),
            sa.ESCALATION_LEVEL.value_set(s.escalation_level),
            sa.LIGHT.value_set(s.shown_light or "(none)"),
            sa.ORDER.value_set(reg.order_id or "(none)"),
        ]
        clock = s.clock("resolution")
        if clock is not None:
            updates.append(sa.DEADLINE.value_set(clock.deadline))
        shown = {u.key.name: u.value for u in updates}
        changed = changed_only(shown, self._attributes_shown)
        self._attributes_shown = shown
        workflow.upsert_search_attributes([u for u in updates if u.key.name in changed])

    def _upsert_memo(self) -> None:
        """The memo the Temporal UI shows: what an operator asks first about an item (none when the
        input says nobody looks: ``ItemWorkflowInput.memo``)."""
        assert self._state is not None
        if not self._input.memo:
            return
        memo = item_memo(self._state)
        changed = changed_only(memo, self._memo_shown)
        self._memo_shown = memo
        workflow.upsert_memo({name: memo[name] for name in changed})

    async def _tell_order(self) -> None:
        """Signal the item's new summary to its supervision order, if it has one and it changed."""
        assert self._state is not None
        order_id = self._state.registration.order_id
        progress = ItemProgress.of(self._state)
        if not order_id or progress == self._reported:
            return
        self._reported = progress
        handle = workflow.get_external_workflow_handle(order_workflow_id(order_id))
        try:
            await handle.signal("item_progress", progress.signal_args())
        except Exception as exc:  # the order may have ended; the item carries on
            workflow.logger.warning("order %s not told about %s: %s", order_id, self._state.item_id, exc)

    @workflow.signal
    def submit_command(self, raw: RawValue) -> None:
        """Queue a command (an ``ItemCommand`` as JSON; fire-and-forget). Illegal or undecodable
        ones are refused with the reason: see ``state``'s ``rejected``."""
        try:
            cmd = item_payloads.decode_command(raw.payload)
        except ValidationError as exc:
            refusal = CommandOutcome(item_payloads.command_id_of(raw.payload), False, str(exc))
            if self._state is None:
                self._early_refusals.append(refusal)
            else:
                item_rules.note_refusal(self._state, refusal)
            workflow.logger.warning(
                "undecodable command refused: %s", bounds.clipped(str(exc), bounds.KEPT_REASON_CHARS)
            )
            return
        self._inbox.append(cmd)

    @workflow.update
    async def apply_command(self, raw: RawValue) -> CommandOutcome:
        """Apply a command (an ``ItemCommand`` as JSON) and return its outcome once its events are
        recorded; an illegal one raises ``ApplicationError`` of type ``IllegalCommand``."""
        cmd = _decoded(raw)
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
    def _validate_apply_command(self, raw: RawValue) -> None:
        cmd = _decoded(raw)
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

    @workflow.query
    def pending_commands(self) -> list[ItemCommand]:
        """Commands received but not yet applied (waiting for an earlier timer), in arrival order."""
        return list(self._inbox)


def _decoded(raw: RawValue) -> ItemCommand:
    """The command of an update's payload; ``MalformedCommand`` with the field and reason if it
    cannot be decoded or is malformed (``item_checks.shape_problem``)."""
    try:
        cmd = item_payloads.decode_command(raw.payload)
    except ValidationError as exc:
        raise ApplicationError(str(exc), type="MalformedCommand", non_retryable=True) from exc
    problem = item_checks.shape_problem(cmd)
    if problem is not None:
        raise ApplicationError(problem, type="MalformedCommand", non_retryable=True)
    return cmd
