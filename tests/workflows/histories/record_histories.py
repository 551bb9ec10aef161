"""Record the golden histories replayed by ``tests/test_golden_histories.py``.

Run on a real dev server, in real time (about 20 s): ``python tests/histories/record_histories.py
[scenario ...]`` (all scenarios if none is named).
Each scenario runs one supervision item through a path of the current workflow code and writes its
event history as ``<scenario>.json`` beside this file. Re-record only on purpose: a history recorded
by older code that no longer replays means running items would break (see the patching policy in
the README). Item ids are fixed so that files differ only when behaviour does.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import sys
import tempfile
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from activities.event_recording import EventRecorder
from activities.order_paging import OrderItems, OrderPaging
from duban.processes.worker import build_worker
from duban.stack.binaries import find_binary
from events.sql import make_engine
from events.store import EventStore
from workflows import search_attributes as sa
from workflows.item_model import CommandKind, ItemCommand, ItemPolicy, LimitSpec, Registration, RungSpec
from workflows.item_workflow import ItemWorkflowInput, SupervisionItemWorkflow
from workflows.order_model import OrderInput, order_workflow_id
from workflows.order_workflow import SupervisionOrderWorkflow

HERE = Path(__file__).resolve().parent
WINDOW = timedelta(seconds=4)
QUEUE = "golden"


def _cmd(item: str, kind: str, actor: str, tag: str = "", **extra: object) -> ItemCommand:
    """A command dated now, with id ``<item>:<kind>`` (``:<tag>`` added when a kind repeats)."""
    command_id = f"{item}:{kind}" + (f":{tag}" if tag else "")
    return ItemCommand(command_id, kind, actor, datetime.now(UTC), **extra)  # type: ignore[arg-type]


async def _start(
    client: Client, item: str, local_recording: bool = False, **dispatch_extra: object
) -> WorkflowHandle[SupervisionItemWorkflow, object]:
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
    dispatch = _cmd(item, CommandKind.DISPATCH, "dispatcher:golden", **dispatch_extra)
    return await client.start_workflow(
        SupervisionItemWorkflow.run,
        ItemWorkflowInput(reg, [dispatch], local_recording=local_recording),
        id=f"item-{item}",
        task_queue=QUEUE,
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


def _policy() -> ItemPolicy:
    """The default rulebook's shape with seconds-long limits, so that a real-time run sees every timer."""
    seconds = lambda n: LimitSpec(str(Decimal(n) / 3600), "hours")  # noqa: E731
    return ItemPolicy(
        rulebook_version="golden",
        calendar="china",
        warning_thresholds=["0.50", "0.75", "0.80"],
        yellow_threshold="0.80",
        ladder=[RungSpec("department_head", seconds(0)), RungSpec("district_leader", seconds(1))],
        redispatch_window=seconds(60),
        extension_approvers=["duty_chief", "district_leader"],
        suspension_review=seconds(600),
        report_in=seconds(2),
    )


async def _start_governed(
    client: Client, item: str, **extra: object
) -> WorkflowHandle[SupervisionItemWorkflow, object]:
    now = datetime.now(UTC)
    reg = Registration(
        item_id=item, category="litter", reported_at=now, department="Urban management", unit="U1",
        town="Sibaoshan", zone="Asia/Shanghai", source="golden", resolution_deadline=now + WINDOW,
        deadline_origin="rule", policy=_policy(),
    )  # fmt: skip
    opening = [
        _cmd(item, "dispatch", "centre:golden", role="dispatcher", unit="U1"),
        _cmd(item, "accept", "unit:U1", role="handling_unit", unit="U1"),
    ]
    return await client.start_workflow(
        SupervisionItemWorkflow.run,
        ItemWorkflowInput(reg, opening, **extra),  # type: ignore[arg-type]
        id=f"item-{item}",
        task_queue=QUEUE,
    )


async def governed_lifecycle(client: Client) -> WorkflowHandle[SupervisionItemWorkflow, object]:
    """Grid call and a late report-in, a rating, an extension, a suspension, the breach and two rungs,
    a failed verification (rework), then close-out: the exception paths of a rulebook item."""
    item = "golden-lifecycle"
    handle = await _start_governed(client, item)
    update = SupervisionItemWorkflow.apply_command
    await handle.execute_update(
        update, _cmd(item, "grid_call", "grid:wang", role="grid_worker", departments=["PWD", "ISD"])
    )
    await handle.execute_update(
        update, _cmd(item, "report_in", "unit:PWD", role="handling_unit", department="PWD", unit="PWD")
    )
    await handle.execute_update(
        update, _cmd(item, "rate_responder", "grid:wang", role="grid_worker", department="PWD", rating=4)
    )
    extend = datetime.now(UTC) + 2 * WINDOW
    await handle.execute_update(
        update,
        _cmd(
            item,
            "request_extension",
            "unit:U1",
            role="handling_unit",
            unit="U1",
            new_deadline=extend,
            reason="parts",
        ),
    )
    await handle.execute_update(update, _cmd(item, "approve_extension", "chief:golden", role="duty_chief"))
    await handle.execute_update(
        update, _cmd(item, "suspend", "chief:golden", role="duty_chief", reason="waiting for the owner")
    )
    await asyncio.sleep(1)
    await handle.execute_update(update, _cmd(item, "resume", "chief:golden", role="duty_chief"))
    await asyncio.sleep(2 * WINDOW.total_seconds() + 2.5)  # past the breach and both rungs
    await handle.execute_update(
        update,
        _cmd(item, "report_in", "unit:ISD", role="handling_unit", department="ISD", unit="ISD", tag="ISD"),
    )
    for kind, actor, role, extra in (
        (
            "submit_rectification",
            "unit:U1",
            "handling_unit",
            {"unit": "U1", "evidence": ["p1.jpg"], "tag": "1"},
        ),
        (
            "verify",
            "inspector:golden",
            "inspector",
            {"passed": False, "notes": "still dirty", "unit": "QA", "tag": "1"},
        ),
        (
            "submit_rectification",
            "unit:U1",
            "handling_unit",
            {"unit": "U1", "evidence": ["p2.jpg"], "tag": "2"},
        ),
        ("verify", "inspector:golden", "inspector", {"notes": "clean", "unit": "QA", "tag": "2"}),
        ("close", "centre:golden", "dispatcher", {}),
    ):
        await handle.execute_update(update, _cmd(item, kind, actor, role=role, **extra))
    return handle


async def continued_as_new(client: Client) -> WorkflowHandle[SupervisionItemWorkflow, object]:
    """A rulebook item whose first run continues as new (history kept short); this is that first run."""
    item = "golden-continued"
    handle = await _start_governed(client, item, continue_as_new_after=20)
    update = SupervisionItemWorkflow.apply_command
    await handle.execute_update(
        update, _cmd(item, "grid_call", "grid:wang", role="grid_worker", departments=["PWD"])
    )
    await handle.execute_update(
        update, _cmd(item, "report_in", "unit:PWD", role="handling_unit", department="PWD", unit="PWD")
    )
    current = client.get_workflow_handle(handle.id)
    for kind, actor, role, extra in (
        ("submit_rectification", "unit:U1", "handling_unit", {"unit": "U1", "evidence": ["p1.jpg"]}),
        ("verify", "inspector:golden", "inspector", {"unit": "QA"}),
        ("close", "centre:golden", "dispatcher", {}),
    ):
        await current.execute_update(update, _cmd(item, kind, actor, role=role, **extra))
    await current.result()
    return client.get_workflow_handle(handle.id, run_id=handle.first_execution_run_id)


async def governed_exceptions(client: Client) -> WorkflowHandle[SupervisionItemWorkflow, object]:
    """Return and re-dispatch, a rejected extension, then a merge; some commands as signals."""
    item = "golden-exceptions"
    now = datetime.now(UTC)
    reg = Registration(
        item_id=item, category="litter", reported_at=now, department="Urban management", unit="U1",
        resolution_deadline=now + 3 * WINDOW, deadline_origin="rule", policy=_policy(), source="golden",
    )  # fmt: skip
    handle = await client.start_workflow(
        SupervisionItemWorkflow.run,
        ItemWorkflowInput(reg, [_cmd(item, "dispatch", "centre:golden", role="dispatcher", unit="U1")]),
        id=f"item-{item}",
        task_queue=QUEUE,
    )
    update, signal = SupervisionItemWorkflow.apply_command, SupervisionItemWorkflow.submit_command
    await handle.execute_update(
        update, _cmd(item, "return", "unit:U1", role="handling_unit", unit="U1", reason="not ours")
    )
    await handle.signal(
        signal, _cmd(item, "dispatch", "centre:golden", role="dispatcher", unit="U2", tag="2")
    )
    await handle.signal(signal, _cmd(item, "accept", "unit:U2", role="handling_unit", unit="U2"))
    extend = datetime.now(UTC) + 4 * WINDOW
    await handle.execute_update(
        update,
        _cmd(
            item,
            "request_extension",
            "unit:U2",
            role="handling_unit",
            unit="U2",
            new_deadline=extend,
            reason="rain",
        ),
    )
    await handle.execute_update(
        update, _cmd(item, "reject_extension", "chief:golden", role="duty_chief", reason="no")
    )
    await handle.signal(
        signal,
        _cmd(
            item,
            "merge",
            "centre:golden",
            role="dispatcher",
            into_item_id="golden-lifecycle",
            reason="same pile",
        ),
    )
    return handle


async def order_member(client: Client) -> WorkflowHandle[SupervisionItemWorkflow, object]:
    """An item of a supervision order, started by the order's page activity: it tells the order about
    every change (signals to another workflow are commands in its history). The order workflow's own
    history is recorded too, as ``order_workflow.json``."""
    item, order = "golden-order-item", "golden-order"
    now = datetime.now(UTC)
    reg = Registration(
        item_id=item, category="litter", reported_at=now, department="Urban management", unit="U1",
        resolution_deadline=now + WINDOW, deadline_origin="rule", source="golden",
    )  # fmt: skip
    assert ORDER_ITEMS is not None
    ORDER_ITEMS.add(order, [reg])
    await client.start_workflow(
        SupervisionOrderWorkflow.run,
        OrderInput(order, "district", "golden order", "office:golden", now),
        id=order_workflow_id(order),
        task_queue=QUEUE,
    )
    handle = client.get_workflow_handle(f"item-{item}")
    while True:  # started by the order's first page
        try:
            await handle.describe()
            break
        except RPCError:
            await asyncio.sleep(0.1)
    await handle.execute_update(
        SupervisionItemWorkflow.apply_command, _cmd(item, "dispatch", "dispatcher:golden")
    )
    await asyncio.sleep(WINDOW.total_seconds() + 1.5)  # the breach and the rung reach the order
    await handle.execute_update(
        SupervisionItemWorkflow.apply_command, _cmd(item, "cancel", "office:golden", reason="done")
    )
    return handle  # type: ignore[return-value]


async def revision_two(client: Client) -> WorkflowHandle[SupervisionItemWorkflow, object]:
    """Rules revision 2 (the ``rules-revision-2`` marker), on a rulebook item: an undecodable signal
    listed, a submit without evidence refused, a merge into an item nobody registered refused after
    the ``item_registered`` activity, then a merge into a registered item applied."""
    item, survivor = "golden-revision-2", "golden-revision-2-survivor"
    now = datetime.now(UTC)
    first = Registration(
        item_id=survivor, category="litter", reported_at=now, department="UM", unit="U1",
        resolution_deadline=now + 3 * WINDOW, source="golden",
    )  # fmt: skip
    other = await client.start_workflow(
        "SupervisionItemWorkflow", ItemWorkflowInput(first, []), id=f"item-{survivor}", task_queue=QUEUE
    )  # registered (recorded) before its first command applies:
    await other.execute_update("apply_command", _cmd(survivor, "cancel", "centre:golden", reason="test"))
    handle = await _start_governed(client, item)
    undecodable = {"command_id": f"{item}:bad", "kind": "accept", "evidence": "p.jpg"}
    await handle.signal("submit_command", undecodable)
    for tag, evidence in (("bare", []), ("", ["photo:1"])):
        submit = _cmd(item, "submit_rectification", "unit:U1", tag, role="handling_unit", unit="U1")
        await handle.signal("submit_command", dataclasses.replace(submit, evidence=evidence))
    for tag, target in (("nowhere", "golden-nobody"), ("", survivor)):
        merge = _cmd(item, "merge", "centre:golden", tag, role="dispatcher", into_item_id=target, reason="x")
        await handle.signal("submit_command", merge)
    return handle


async def local_recording(client: Client) -> WorkflowHandle[SupervisionItemWorkflow, object]:
    """Events recorded by a local activity (``local_recording``, the ``record-events-local`` marker, as
    the simulation runs items) and memo and search
    attributes upserted as what changed: a breach by timer, accept by update, rectify with evidence by
    signal, verify and close by update."""
    item = "golden-local"
    handle = await _start(client, item, local_recording=True, unit="Squad 3")
    await asyncio.sleep(WINDOW.total_seconds() + 1.5)
    await handle.execute_update(SupervisionItemWorkflow.apply_command, _cmd(item, "accept", "unit:Squad 3"))
    submit = _cmd(item, "submit_rectification", "unit:Squad 3", unit="Squad 3", evidence=["photo:1"])
    await handle.signal(SupervisionItemWorkflow.submit_command, submit)
    for kind, actor in (("verify", "inspector:golden"), ("close", "office:golden")):
        await handle.execute_update(
            SupervisionItemWorkflow.apply_command, _cmd(item, kind, actor, unit="Squad 3")
        )
    return handle


ORDER_ITEMS: OrderItems | None = None


SCENARIOS: dict[str, Callable[[Client], Awaitable[WorkflowHandle[SupervisionItemWorkflow, object]]]] = {
    "closed_on_time": closed_on_time,
    "breached_and_escalated": breached_and_escalated,
    "governed_lifecycle": governed_lifecycle,
    "continued_as_new": continued_as_new,
    "governed_exceptions": governed_exceptions,
    "order_member": order_member,
    "revision_two": revision_two,
    "local_recording": local_recording,
}


async def main(names: list[str]) -> None:
    """Record the named scenarios (all if none is named); existing files of other scenarios stay."""
    wanted = {name: SCENARIOS[name] for name in names or SCENARIOS}
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(find_binary("temporal")), search_attributes=sa.ALL_KEYS
    )
    try:
        folder = tempfile.TemporaryDirectory()
        store = EventStore(make_engine(f"sqlite:///{folder.name}/events.db"))
        store.create()
        global ORDER_ITEMS
        ORDER_ITEMS = OrderItems(store.engine)
        paging = OrderPaging(env.client, ORDER_ITEMS, QUEUE)
        recorder = EventRecorder(store, None, "golden")
        async with build_worker(env.client, QUEUE, recorder, max_cached=10, paging=paging):
            handles = await asyncio.gather(*(run(env.client) for run in wanted.values()))
            for name, handle in zip(wanted, handles, strict=True):
                if name != "continued_as_new":
                    await handle.result()
                if name == "order_member":  # the order ends once its only item has ended
                    order = env.client.get_workflow_handle(order_workflow_id("golden-order"))
                    await order.result()
                    history = await order.fetch_history()
                    (HERE / "order_workflow.json").write_text(history.to_json() + "\n")
                    print(f"wrote order_workflow.json ({len(history.events)} events)")
                history = await handle.fetch_history()
                (HERE / f"{name}.json").write_text(history.to_json() + "\n")
                print(f"wrote {name}.json ({len(history.events)} events)")
    finally:
        await env.shutdown()
        gc.collect()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
