"""Benchmark: a supervision order of 10,000 items against starting the same items one by one.

Baseline: the client starts N item workflows itself (64 at a time) and cancels each with a signal.
Order: the same N items are stored on an order and ``SupervisionOrderWorkflow`` starts them a page at
a time, rolls up their progress from their signals and continues as new as its history grows; the
items are cancelled the same way. Both run on the same time-skipping test server in the same run and
record their events to SQLite (no Kafka). Prints both rates, their ratio, the order's runs (how often
it continued as new) and its final roll-up; only the ratio within one run means anything.

Usage: python bench/bench_order.py [--items 10000] [--page-size 200]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.event_recording import EventRecorder
from activities.order_paging import OrderItems, OrderPaging
from duban.jobs.simulate import quiet_runtime
from duban.processes.worker import workflow_runner
from duban.stack.binaries import find_binary
from events.sql import make_engine
from events.store import EventStore
from workflows.item_model import ItemCommand, Registration
from workflows.item_workflow import ItemWorkflowInput, SupervisionItemWorkflow
from workflows.order_model import OrderInput, OrderSummary, order_workflow_id
from workflows.order_workflow import SupervisionOrderWorkflow

CONCURRENCY = 64


def registrations(prefix: str, n: int, now: datetime) -> list[Registration]:
    return [
        Registration(
            f"{prefix}-{i:05d}",
            "litter",
            now,
            department=f"D{i % 7}",
            resolution_deadline=now + timedelta(days=1),
        )
        for i in range(n)
    ]


async def cancel_all(client: Client, regs: list[Registration], now: datetime) -> None:
    semaphore = asyncio.Semaphore(CONCURRENCY)

    async def one(reg: Registration) -> None:
        async with semaphore:
            cancel = ItemCommand(f"{reg.item_id}:cancel", "cancel", "office:bench", now, reason="bench")
            await client.get_workflow_handle(f"item-{reg.item_id}").signal(
                SupervisionItemWorkflow.submit_command, cancel
            )

    await asyncio.gather(*(one(r) for r in regs))


async def baseline(client: Client, queue: str, regs: list[Registration], now: datetime) -> float:
    semaphore = asyncio.Semaphore(CONCURRENCY)
    started = time.monotonic()

    async def start(reg: Registration) -> None:
        async with semaphore:
            await client.start_workflow(
                SupervisionItemWorkflow.run, ItemWorkflowInput(reg, search_attributes=False),
                id=f"item-{reg.item_id}", task_queue=queue,
            )  # fmt: skip

    await asyncio.gather(*(start(r) for r in regs))
    await cancel_all(client, regs, now)
    for reg in regs:
        await finished(client, f"item-{reg.item_id}")
    return len(regs) / (time.monotonic() - started)


async def finished(client: Client, workflow_id: str) -> None:
    """Wait for a workflow to close. The test server's history long-poll can come back empty under
    load (the SDK then raises "No completion event found"): ask again."""
    while True:
        try:
            await client.get_workflow_handle(workflow_id).result()
            return
        except RuntimeError as exc:
            if "No completion event" not in str(exc):
                raise


async def order(
    client: Client, queue: str, regs: list[Registration], now: datetime, page: int
) -> tuple[float, OrderSummary]:
    started = time.monotonic()
    handle = await client.start_workflow(
        SupervisionOrderWorkflow.run,
        OrderInput(
            "bench", "city", "bench order", "office:bench", now, page_size=page, search_attributes=False
        ),
        id=order_workflow_id("bench"),
        task_queue=queue,
    )
    current = client.get_workflow_handle(handle.id)  # follows the order across continue-as-new
    while not await started_all(current):
        await asyncio.sleep(1)
    await cancel_all(client, regs, now)
    await finished(client, handle.id)
    summary = await client.get_workflow_handle_for(SupervisionOrderWorkflow.run, handle.id).result()
    return len(regs) / (time.monotonic() - started), summary


async def started_all(order: WorkflowHandle[Any, Any]) -> bool:
    """Whether the order has started every item; a query that times out under load counts as no."""
    try:
        return bool((await order.query(SupervisionOrderWorkflow.summary)).started_all)
    except RPCError:
        return False


async def main(items: int, page: int) -> None:
    folder = tempfile.TemporaryDirectory()
    engine = make_engine(f"sqlite:///{Path(folder.name) / 'bench.db'}")
    store = EventStore(engine)
    store.create()
    now = datetime.now(UTC)
    async with await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(find_binary("temporal-test-server")), runtime=quiet_runtime()
    ) as env:
        with env.auto_time_skipping_disabled():
            queue = "bench-order"
            paging = OrderPaging(env.client, OrderItems(engine), queue)
            async with Worker(
                env.client,
                task_queue=queue,
                workflows=[SupervisionItemWorkflow, SupervisionOrderWorkflow],
                activities=[EventRecorder(store, None, "bench").record_events, paging.start_order_page],
                workflow_runner=workflow_runner(),
                max_cached_workflows=items + 100,
                max_concurrent_activities=64,
            ):
                base_rate = await baseline(env.client, queue, registrations("base", items, now), now)
                on_order = registrations("order", items, now)
                OrderItems(engine).add("bench", on_order)
                order_rate, summary = await order(env.client, queue, on_order, now, page)
    print(f"items: {items}, page size {page}")
    print(f"baseline (client starts each item): {base_rate:8.1f} items/s")
    print(f"supervision order:                  {order_rate:8.1f} items/s")
    print(f"ratio order/baseline: {order_rate / base_rate:.3f}")
    print(
        f"order continued as new {summary.runs - 1} times; roll-up: {summary.items} items, {summary.by_stage}"
    )
    gc.collect()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--page-size", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(main(args.items, args.page_size))
