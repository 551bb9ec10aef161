"""``SupervisionOrderWorkflow`` on the time-skipping server: paging, roll-up, continue-as-new."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime

import pytest
from helpers.items import command, stored
from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause
from temporalio.client import WorkflowFailureError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from activities.order_paging import OrderItems
from events import types as t
from events.errors import ValidationError
from events.store import EventStore
from workflows.item_model import Registration
from workflows.item_workflow import SupervisionItemWorkflow
from workflows.order_model import ItemProgress, OrderInput, OrderSummary, order_workflow_id, summarise
from workflows.order_workflow import SupervisionOrderWorkflow

ItemWorkerFactory = Callable[..., AbstractAsyncContextManager[str]]


def registrations(order: str, n: int, reported: datetime) -> list[Registration]:
    return [
        Registration(f"{order}-{i:03d}", "Litter", reported, department="UM", unit="U1", town=f"T{i % 3}")
        for i in range(n)
    ]


async def summary(env: WorkflowEnvironment, workflow_id: str) -> OrderSummary | None:
    """The order's roll-up, or ``None`` when the query times out (a busy worker answers late)."""
    try:
        return await env.client.get_workflow_handle(workflow_id).query(SupervisionOrderWorkflow.summary)
    except RPCError:
        return None


async def poll(check: Callable[[], object], what: str, timeout_s: float = 60.0) -> None:
    limit = time.monotonic() + timeout_s
    while not await check():  # type: ignore[misc]
        if time.monotonic() > limit:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def test_an_order_starts_its_items_in_pages_rolls_them_up_and_continues_as_new(
    workflow_env: WorkflowEnvironment, event_store: EventStore, item_worker: ItemWorkerFactory
) -> None:
    env = workflow_env
    order = f"O{time.monotonic_ns() % 10**9}"
    now = await env.get_current_time()
    regs = registrations(order, 25, now)
    assert OrderItems(event_store.engine).add(order, regs) == 25
    async with item_worker() as queue:
        handle = await env.client.start_workflow(
            SupervisionOrderWorkflow.run,
            OrderInput(
                order, "district", "Clear the litter of Qiaotou", "office:chen", now, page_size=10,
                continue_as_new_after=60, search_attributes=False,
            ),
            id=order_workflow_id(order),
            task_queue=queue,
        )  # fmt: skip

        async def all_started() -> bool:
            s = await summary(env, handle.id)
            return s is not None and s.started_all and s.items == 25 and s.by_stage == {"registered": 25}

        await poll(all_started, "25 items started and registered")
        for hostile in (["only-an-id"], ["a", "bad"], ["b", "accepted||maybe|0"], [1, 2]):  # any client may
            await handle.signal("item_progress", hostile)
        await poll(all_started, "the order answering, its roll-up untouched by malformed progress")
        for reg in regs[:10]:  # cancel ten: the roll-up follows
            item = env.client.get_workflow_handle(f"item-{reg.item_id}")
            await item.execute_update(
                SupervisionItemWorkflow.apply_command,
                command("cancel", now, "office:chen", reason="duplicate"),
            )

        async def ten_cancelled() -> bool:
            s = await summary(env, handle.id)
            return s is not None and s.by_stage == {"cancelled": 10, "registered": 15} and s.open == 15

        await poll(ten_cancelled, "10 of 25 cancelled in the roll-up")
        for reg in regs[10:]:
            item = env.client.get_workflow_handle(f"item-{reg.item_id}")
            await item.signal(
                SupervisionItemWorkflow.submit_command, command("cancel", now, "office:chen", reason="done")
            )
        result = await env.client.get_workflow_handle_for(SupervisionOrderWorkflow.run, handle.id).result()
    assert (result.items, result.open, result.by_stage) == (25, 0, {"cancelled": 25})
    assert result.runs > 1  # 25 items' signals pass 60 history events: the order continued as new
    first_run = env.client.get_workflow_handle(handle.id, run_id=handle.first_execution_run_id)
    events = (await first_run.fetch_history()).events
    benign = WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND  # a signal raced the close
    failed = [
        e for e in events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
        and e.workflow_task_failed_event_attributes.cause != benign
    ]  # fmt: skip
    assert failed == []  # a malformed signal used to fail every workflow task of the order
    # every item carries the order's id in its registration event
    for reg in regs:
        [registered] = [e for e in stored(event_store, reg.item_id) if e.event_type == t.ITEM_REGISTERED]
        assert registered.payload["order_id"] == order


def test_an_item_cannot_be_added_to_an_order_twice(event_store: EventStore) -> None:
    items = OrderItems(event_store.engine)
    regs = registrations("O-dup", 3, datetime(2026, 11, 2, tzinfo=UTC))
    items.add("O-dup", regs[:2])
    with pytest.raises(ValidationError) as info:
        items.add("O-dup", regs[1:])
    assert info.value.field == "item_id" and "O-dup-001" in info.value.reason
    assert [reg.item_id for _, reg in items.page("O-dup", -1, 10)] == [
        "O-dup-000",
        "O-dup-001",
    ]  # nothing half-written


def test_ten_thousand_items_fit_in_one_continue_as_new_payload() -> None:
    """Temporal's default payload limit is 2 MB; the order carries one short code per item."""
    inp = OrderInput("O-big", "city", "x", "office", datetime(2026, 11, 2, tzinfo=UTC))
    for i in range(10_000):
        progress = ItemProgress(f"2026110212345{i:05d}", "accepted", "yellow", i % 7 == 0, i % 5)
        inp.items[progress.item_id] = progress.code
    from temporalio.converter import default

    [payload] = default().payload_converter.to_payloads([inp])
    assert len(payload.data) < 1_000_000
    summary = summarise(inp)
    assert summary.items == 10_000 and summary.by_stage == {"accepted": 10_000}
    assert summary.overdue == len(range(0, 10_000, 7)) and summary.escalated == 8_000


async def test_an_order_with_an_unknown_level_fails_with_a_reason(
    workflow_env: WorkflowEnvironment, item_worker: ItemWorkerFactory
) -> None:
    env = workflow_env
    async with item_worker() as queue:
        handle = await env.client.start_workflow(
            SupervisionOrderWorkflow.run,
            OrderInput(
                "O-bad", "county", "x", "office", datetime(2026, 11, 2, tzinfo=UTC), search_attributes=False
            ),
            id=order_workflow_id(f"O-bad-{time.monotonic_ns()}"),
            task_queue=queue,
        )
        with pytest.raises(WorkflowFailureError) as info:
            await handle.result()
    assert "level must be one of district, city" in str(info.value.cause)


def test_a_progress_code_reads_back_as_the_progress_it_codes() -> None:
    progress = ItemProgress("i1", "accepted", "yellow", True, 2)
    assert progress.code == "accepted|yellow|1|2"
    assert ItemProgress.parse("i1", progress.code) == progress
    assert ItemProgress.parse("i2", "registered|||0") == ItemProgress("i2", "registered", "", False, 0)
    with pytest.raises(ValueError, match="overdue must be 0, 1 or empty"):
        ItemProgress.parse("i3", "accepted||yes|0")
