"""``duban demo``: a small live sample on the dev server, in real time, with scaled deadlines.

Takes the first cases of the Boston sample (their categories, departments and areas), registers them
now with a resolution window of ``window_minutes`` (response window a quarter of it), and plays four
fates so that warnings, breaches and escalations happen within about a minute: closed early (no
warning), closed after the warning (on time), closed after the breach (overdue, escalated), and left
open (breached, escalated, still waiting in the Temporal UI). Items run under the default rulebook's
rules (thresholds, traffic lights, the escalation ladder, roles) with its delays scaled to the window,
so lights and rungs change while you watch: an open item is red and escalated to the district leader
when the demo ends. The stack is left running.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError

from duban import wiring
from duban.config import EMBEDDED_TEMPORAL_UI_PORT, Settings
from duban.errors import ConfigurationError
from duban.importers.profiles import load_cases
from duban.processes.worker import build_worker
from duban.stack.embedded import stack_up
from duban.stack.probes import ensure_topics
from events.errors import DubanError
from workflows.item_client import apply_command, start_item
from workflows.item_model import CommandKind, ItemCommand, ItemPolicy, LimitSpec, Registration, RungSpec
from workflows.item_policy import policy_of
from workflows.item_workflow import ItemWorkflowInput, SupervisionItemWorkflow
from workflows.payload_converter import DATA_CONVERTER
from workflows.rulebook import DEFAULT_RULEBOOK_PATH, load_rulebook

MAX_ITEMS = 1000
"""A demo, not a load test: at most this many items (``bench/`` measures load)."""
MIN_MINUTES, MAX_MINUTES = 0.25, 60.0
"""The resolution window in real minutes: at least 15 s (each fate's steps must fit in it), at most an
hour (someone is watching)."""
DEFAULT_SAMPLE = Path("../shared/data/boston311_2022_sample.csv")
FATES = ("closed early", "closed after warning", "closed after breach", "left open")
CLOSE_AT = {0: 0.3, 1: 0.85, 2: 1.25}  # share of the resolution window at which each fate closes
INSPECTION_UNIT = "inspection"  # the inspectors' unit, which verifies the rectifying unit's work
LEFT_OPEN_UNTIL = 1.6  # share of the window the demo watches an open item: past the second rung (1.5)


def _hours(seconds: float) -> LimitSpec:
    return LimitSpec(f"{seconds / 3600:.6f}", "hours")


def demo_policy(now: datetime, window: timedelta) -> ItemPolicy:
    """The rulebook version in force ``now`` on China's calendar, with every delay scaled to
    ``window``: rungs at the breach and then every half window, grid calls answered in a tenth."""
    policy = policy_of(load_rulebook(DEFAULT_RULEBOOK_PATH).in_force(now), "china")
    step = window.total_seconds()
    policy.ladder = [RungSpec(r.name, _hours(0 if i == 0 else step / 2)) for i, r in enumerate(policy.ladder)]
    policy.redispatch_window = _hours(step / 4)
    policy.suspension_review = _hours(step)
    policy.report_in = _hours(step / 10)
    return policy


def _registration(case_id: str, base: object, now: datetime, window: timedelta) -> Registration:
    from duban.importers.base import ImportedCase

    assert isinstance(base, ImportedCase)
    return Registration(
        item_id=case_id,
        category=base.category,
        category_group=base.category_group,
        reported_at=now,
        department=base.department,
        unit=base.unit or base.department or "unit",
        town=base.town,
        community=base.community,
        grid=base.grid,
        zone=base.zone,
        source="demo",
        actor="source:demo",
        response_deadline=now + window / 4,
        resolution_deadline=now + window,
        deadline_origin="rule",
        policy=demo_policy(now, window),
    )


class DemoStepFailed(DubanError):
    """A command of the demo was refused: the demo's own script no longer fits the rules."""


async def _apply(handle: WorkflowHandle[Any, Any], reg: Registration, command: ItemCommand) -> None:
    """Apply ``command``; ``DemoStepFailed`` with the item, the kind and the refusal if it is refused."""
    try:
        await apply_command(handle, command)
    except WorkflowUpdateFailedError as exc:
        reason = getattr(exc.cause, "message", None) or str(exc.cause or exc)
        raise DemoStepFailed(f"demo item {reg.item_id}: {command.kind} was refused: {reason}") from None


async def _play(
    client: Client, queue: str, reg: Registration, fate: int, window: timedelta, now: datetime
) -> str:
    dispatch = ItemCommand(
        f"{reg.item_id}:dispatch",
        CommandKind.DISPATCH,
        "dispatcher:demo",
        now,
        role="dispatcher",
        unit=reg.unit,
    )
    handle = await start_item(client, ItemWorkflowInput(reg, [dispatch]), queue)
    unit = f"unit:{reg.unit}"
    await asyncio.sleep(window.total_seconds() / 8)
    accept = ItemCommand(
        f"{reg.item_id}:accept",
        CommandKind.ACCEPT,
        unit,
        datetime.now(UTC),
        role="handling_unit",
        unit=reg.unit,
    )
    await _apply(handle, reg, accept)
    if fate not in CLOSE_AT:  # wait until the ladder reaches the district leader (half a window on)
        await asyncio.sleep(window.total_seconds() * (LEFT_OPEN_UNTIL - 1 / 8))
        state = await handle.query(SupervisionItemWorkflow.state)
        assert state is not None
        return (
            f"{reg.item_id}: {FATES[fate]} → light {state.light}, escalation level {state.escalation_level}"
        )
    await asyncio.sleep(window.total_seconds() * CLOSE_AT[fate] - window.total_seconds() / 8)
    for kind, actor, role, by in (
        (CommandKind.SUBMIT_RECTIFICATION, unit, "handling_unit", reg.unit),
        (CommandKind.VERIFY, "inspector:demo", "inspector", INSPECTION_UNIT),  # not the rectifying unit
        (CommandKind.CLOSE, "dispatcher:demo", "dispatcher", ""),
    ):
        evidence = ["demo-photo.jpg"] if kind == CommandKind.SUBMIT_RECTIFICATION else []
        command = ItemCommand(
            f"{reg.item_id}:{kind}", kind, actor, datetime.now(UTC), role=role, unit=by, evidence=evidence
        )
        await _apply(handle, reg, command)
    outcome = await handle.result()
    level = outcome.escalation_level
    return f"{reg.item_id}: {FATES[fate]} → on time {outcome.on_time}, escalation level {level}"


async def run_demo(
    settings: Settings, items: int = 12, window_minutes: float = 1.0, sample: Path = DEFAULT_SAMPLE
) -> None:
    """Run the demo (see module docstring); prints progress and the Temporal UI address.

    Raises:
        ConfigurationError: the sample file is missing, ``items`` not 1 to ``MAX_ITEMS``, or
            ``window_minutes`` not ``MIN_MINUTES`` to ``MAX_MINUTES``.
        StackError: the embedded stack cannot start.
    """
    if not 1 <= items <= MAX_ITEMS:
        raise ConfigurationError(f"items: must be from 1 to {MAX_ITEMS}")
    if not MIN_MINUTES <= window_minutes <= MAX_MINUTES:  # also refuses nan
        raise ConfigurationError(
            f"minutes: must be from {MIN_MINUTES} to {MAX_MINUTES:g} (a real-time window)"
        )
    if not sample.is_file():
        raise ConfigurationError(f"demo sample not found: {sample} (run from the repository root)")
    await asyncio.to_thread(stack_up, settings)
    await ensure_topics(settings)
    cases = load_cases("boston311", sample).cases[:items]
    client = await Client.connect(
        settings.temporal_target, namespace=settings.temporal_namespace, data_converter=DATA_CONVERTER
    )
    run = uuid.uuid4().hex[:6]
    window = timedelta(minutes=window_minutes)
    now = datetime.now(UTC)
    print(f"Demo run {run}: {len(cases)} items, resolution window {window_minutes:g} min.")
    async with (
        wiring.recording(settings, recreate_topics=False) as rec,
        build_worker(client, settings.task_queue, rec.recorder, max_cached=1000),
    ):
        plays = [
            _play(
                client,
                settings.task_queue,
                _registration(f"demo-{run}-{c.item_id}", c, now, window),
                i % len(FATES),
                window,
                now,
            )
            for i, c in enumerate(cases)
        ]
        for line in await asyncio.gather(*plays):
            print("  " + line)
    path = f"/namespaces/{settings.temporal_namespace}/workflows"
    if settings.temporal_embedded:
        print(f"\nTemporal UI: http://127.0.0.1:{EMBEDDED_TEMPORAL_UI_PORT}{path}")
    else:
        print(f"\nTemporal UI: the Web UI of {settings.temporal_target}, at {path}")
    print("Find the items with queries such as:")
    print(f"  WorkflowId STARTS_WITH 'item-demo-{run}'")
    print(
        "  DubanEscalationLevel >= 2 AND DubanStage != 'closed'   (escalated to a district leader or above)"
    )
    print(f"  DubanLight = 'red' AND DubanDepartment = '{cases[0].department}'")
    print(f"  DubanDepartment = '{cases[0].department}' AND DubanOverdue = true")
    stopping = "`duban stack down` stops it" if settings.temporal_embedded else "it is not duban's to stop"
    print(f"The stack keeps running ({stopping}). Open items wait for a worker (`duban worker`).")
