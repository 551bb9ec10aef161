"""Record the golden histories replayed by ``tests/test_golden_histories.py``.

Run on a real dev server, in real time (about 15 s): ``python tests/histories/record_histories.py``.
Each scenario runs one supervision item through a path of the current workflow code and writes its
event history as ``<scenario>.json`` beside this file. Re-record only on purpose: a history recorded
by older code that no longer replays means running items would break (see the patching policy in
the README). Item ids are fixed so that files differ only when behaviour does.
"""

from __future__ import annotations

import asyncio
import gc
import tempfile
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.event_recording import EventRecorder
from duban.binaries import find_binary
from duban.db import make_engine
from duban.worker import build_worker
from events.store import EventStore
from workflows import search_attributes as sa
from workflows.item_model import CommandKind, ItemCommand, Registration
from workflows.item_workflow import ItemWorkflowInput, SupervisionItemWorkflow

HERE = Path(__file__).resolve().parent
WINDOW = timedelta(seconds=4)
QUEUE = "golden"


def _cmd(item: str, kind: str, actor: str, **extra: object) -> ItemCommand:
    return ItemCommand(f"{item}:{kind}", kind, actor, datetime.now(UTC), **extra)  # type: ignore[arg-type]


async def _start(client: Client, item: str) -> WorkflowHandle[SupervisionItemWorkflow, object]:
    now = datetime.now(UTC)
    reg = Registration(
        item_id=item,
        category="Litter",
        reported_at=now,
        department="Urban management",
        unit="Squad 3",
        town="Sibaoshan",
        community="C1",
        grid="G1",
        zone="Asia/Shanghai",
        source="golden",
        response_deadline=now + WINDOW / 2,
        resolution_deadline=now + WINDOW,
        deadline_origin="rule",
    )
    dispatch = _cmd(item, CommandKind.DISPATCH, "dispatcher:golden")
    return await client.start_workflow(
        SupervisionItemWorkflow.run, ItemWorkflowInput(reg, [dispatch]), id=f"item-{item}", task_queue=QUEUE
    )


async def closed_on_time(client: Client) -> WorkflowHandle[SupervisionItemWorkflow, object]:
    """Accept by update, rectify by signal, verify and close by update, before any timer."""
    handle = await _start(client, "golden-on-time")
    await handle.execute_update(
        SupervisionItemWorkflow.apply_command, _cmd("golden-on-time", "accept", "unit:Squad 3")
    )
    await handle.signal(
        SupervisionItemWorkflow.submit_command, _cmd("golden-on-time", "submit_rectification", "unit:Squad 3")
    )
    await handle.execute_update(
        SupervisionItemWorkflow.apply_command, _cmd("golden-on-time", "verify", "inspector:golden")
    )
    await handle.execute_update(
        SupervisionItemWorkflow.apply_command, _cmd("golden-on-time", "close", "office:golden")
    )
    return handle


async def breached_and_escalated(client: Client) -> WorkflowHandle[SupervisionItemWorkflow, object]:
    """Response breach, resolution warning, breach and escalation, then a late close-out."""
    item = "golden-breached"
    handle = await _start(client, item)
    await asyncio.sleep(WINDOW.total_seconds() + 1.5)
    await handle.execute_update(SupervisionItemWorkflow.apply_command, _cmd(item, "accept", "unit:Squad 3"))
    for kind, actor in (
        ("submit_rectification", "unit:Squad 3"),
        ("verify", "inspector:golden"),
        ("close", "office:golden"),
    ):
        await handle.execute_update(SupervisionItemWorkflow.apply_command, _cmd(item, kind, actor))
    return handle


SCENARIOS: dict[str, Callable[[Client], Awaitable[WorkflowHandle[SupervisionItemWorkflow, object]]]] = {
    "closed_on_time": closed_on_time,
    "breached_and_escalated": breached_and_escalated,
}


async def main() -> None:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(find_binary("temporal")), search_attributes=sa.ALL_KEYS
    )
    try:
        folder = tempfile.TemporaryDirectory()
        store = EventStore(make_engine(f"sqlite:///{folder.name}/events.db"))
        store.create()
        async with build_worker(env.client, QUEUE, EventRecorder(store, None, "golden"), max_cached=10):
            handles = await asyncio.gather(*(run(env.client) for run in SCENARIOS.values()))
            for name, handle in zip(SCENARIOS, handles, strict=True):
                await handle.result()
                history = await handle.fetch_history()
                (HERE / f"{name}.json").write_text(history.to_json() + "\n")
                print(f"wrote {name}.json ({len(history.events)} events)")
    finally:
        await env.shutdown()
        gc.collect()


if __name__ == "__main__":
    asyncio.run(main())
