"""The item workflow on the real dev server (the one ``duban stack up`` runs), in real time: the
search attributes operators use in the Temporal UI (the README's queries) find breached, red and
escalated items."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from temporalio.client import ScheduleActionStartWorkflow
from temporalio.testing import WorkflowEnvironment

from activities.event_recording import EventRecorder
from duban.processes.worker import build_worker
from duban.schedules import install_schedules, schedule_id
from events.store import EventStore
from workflows.item_model import CommandKind, ItemCommand, Registration
from workflows.item_policy import apply_rulebook
from workflows.item_workflow import ItemWorkflowInput, SupervisionItemWorkflow
from workflows.period_close import CADENCES
from workflows.rulebook import DEFAULT_RULEBOOK_PATH, load_rulebook


async def _visible(env: WorkflowEnvironment, query: str, workflow_id: str) -> bool:
    """Poll visibility (eventually consistent) for up to 10 s."""
    for _ in range(50):
        if workflow_id in [w.id async for w in env.client.list_workflows(query)]:
            return True
        await asyncio.sleep(0.2)
    return False


async def test_breached_item_found_by_search_attributes(
    dev_env: WorkflowEnvironment, event_store: EventStore
) -> None:
    now = datetime.now(UTC)
    item = f"dev-{now.timestamp():.0f}"
    reg = Registration(
        item_id=item,
        category="Illegal dumping",
        reported_at=now,
        department="Urban management",
        unit="Squad 3",
        town="Sibaoshan",
        community="C1",
        resolution_deadline=now + timedelta(seconds=3),
        deadline_origin="rule",
    )
    dispatch = ItemCommand(f"{item}:dispatch", CommandKind.DISPATCH, "dispatcher:test", now, unit="Squad 3")
    async with build_worker(dev_env.client, "dev-test", EventRecorder(event_store, None, "t"), max_cached=10):
        handle = await dev_env.client.start_workflow(
            SupervisionItemWorkflow.run,
            ItemWorkflowInput(reg, [dispatch]),
            id=f"item-{item}",
            task_queue="dev-test",
        )
        base = (
            f"WorkflowId = 'item-{item}' AND DubanDepartment = 'Urban management' AND DubanTown = 'Sibaoshan'"
        )
        assert await _visible(
            dev_env, f"{base} AND DubanStage = 'dispatched' AND DubanOverdue = false", handle.id
        )
        assert await _visible(
            dev_env, f"{base} AND DubanEscalationLevel = 1 AND DubanOverdue = true", handle.id
        )
        state = await handle.query(SupervisionItemWorkflow.state)
        assert state is not None and state.escalation_level == 1
        await handle.terminate("test over")
    types = [e.event_type for e in event_store.read(item)]
    assert types == [
        "ItemRegistered",
        "ItemDispatched",
        "DeadlineWarned",
        "DeadlineBreached",
        "ItemEscalated",
    ]


async def test_the_operator_queries_of_the_readme_find_a_red_item_escalated_to_the_city(
    dev_env: WorkflowEnvironment, event_store: EventStore
) -> None:
    """An item registered three weeks ago under the rulebook (litter, 2 working hours) is red and has
    climbed every rung by the time it starts; the README's queries find it, and the memo says so."""
    now = datetime.now(UTC)
    item = f"dev-red-{now.timestamp():.0f}"
    reported = now - timedelta(days=21)
    reg = apply_rulebook(
        Registration(
            item, "litter", reported, department="UM", unit="U1", town="Qiaotou", zone="Asia/Shanghai"
        ),
        load_rulebook(DEFAULT_RULEBOOK_PATH),
        "china",
    )
    opening = [
        ItemCommand(f"{item}:dispatch", "dispatch", "centre:li", reported, role="dispatcher", unit="U1"),
        ItemCommand(f"{item}:accept", "accept", "unit:U1", reported, role="handling_unit", unit="U1"),
    ]
    async with build_worker(dev_env.client, "dev-red", EventRecorder(event_store, None, "t"), max_cached=10):
        handle = await dev_env.client.start_workflow(
            SupervisionItemWorkflow.run,
            ItemWorkflowInput(reg, opening),
            id=f"item-{item}",
            task_queue="dev-red",
        )
        mine = f"WorkflowId = 'item-{item}'"
        red = f"{mine} AND DubanLight = 'red' AND DubanDepartment = 'UM' AND DubanTown = 'Qiaotou'"
        assert await _visible(dev_env, red, handle.id)
        assert await _visible(
            dev_env, f"{mine} AND DubanEscalationLevel >= 2", handle.id
        )  # district leader up
        assert await _visible(
            dev_env, f"{mine} AND DubanStage = 'accepted' AND DubanOverdue = true", handle.id
        )
        memo = await (await handle.describe()).memo()
        assert (memo["light"], memo["escalated_to"], memo["rulebook_version"]) == (
            "red",
            "city_order",
            "2026.2",
        )
        await handle.terminate("test over")
    rungs = [e.payload["rung"] for e in event_store.read(item) if e.event_type == "ItemEscalated"]
    assert rungs == ["department_head", "district_leader", "district_order", "city_order"]


async def test_period_schedules_are_installed_in_the_areas_time_zone(dev_env: WorkflowEnvironment) -> None:
    for _ in range(2):  # installing again updates them
        ids = await install_schedules(dev_env.client, "Asia/Shanghai", "dev-close")
    assert ids == [schedule_id(c) for c in CADENCES]
    for cadence, cron in CADENCES.items():
        described = await dev_env.client.get_schedule_handle(schedule_id(cadence)).describe()
        spec = described.schedule.spec
        assert spec.time_zone_name == "Asia/Shanghai"
        assert spec.cron_expressions == [cron] or spec.calendars  # the server may store cron as calendars
        action = described.schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow) and action.workflow == "PeriodCloseWorkflow"
        assert described.schedule.state.paused is False
