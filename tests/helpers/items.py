"""Helpers shared by the item workflow tests: registrations, commands, starting and watching items."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from events import types as t
from events.envelope import EventEnvelope
from events.store import EventStore
from workflows import item_rules as rules
from workflows.errors import IllegalCommand
from workflows.item_model import CommandOutcome, ItemCommand, ItemState, Registration
from workflows.item_policy import apply_rulebook
from workflows.item_step import handle_command
from workflows.item_workflow import ItemOutcome, ItemWorkflowInput, SupervisionItemWorkflow
from workflows.rulebook import DEFAULT_RULEBOOK_PATH, load_rulebook

WINDOW = timedelta(hours=24)
HAPPY_PATH = [
    t.ITEM_REGISTERED,
    t.ITEM_DISPATCHED,
    t.ITEM_ACCEPTED,
    t.RECTIFICATION_SUBMITTED,
    t.RECTIFICATION_VERIFIED,
    t.ITEM_CLOSED,
]
UNIT_ACTOR, INSPECTOR = "unit:PWD-street", "inspector:li"


def registration(
    reported_at: datetime, item_id: str | None = None, window: timedelta = WINDOW
) -> Registration:
    return Registration(
        item_id=item_id or f"T-{uuid.uuid4().hex[:10]}",
        category="Litter",
        reported_at=reported_at,
        department="Urban management",
        unit="PWD-street",
        town="Sibaoshan",
        resolution_deadline=reported_at + window,
        deadline_origin="rule",
    )


def command(
    kind: str, at: datetime, actor: str = UNIT_ACTOR, command_id: str | None = None, **fields: Any
) -> ItemCommand:
    """A command; a dispatch names the unit and a submit carries evidence unless told otherwise."""
    if kind == "dispatch":
        fields.setdefault("unit", "PWD-street")
    if kind == "submit_rectification":
        fields.setdefault("evidence", ["photo-1.jpg"])
    return ItemCommand(
        command_id=command_id or f"{kind}-{uuid.uuid4().hex[:8]}",
        kind=kind,
        actor=actor,
        occurred_at=at,
        **fields,
    )


def opening_commands(at: datetime) -> list[ItemCommand]:
    """Dispatch and accept at registration, as an imported case that was opened that way."""
    return [command("dispatch", at, "dispatcher:ann"), command("accept", at)]


async def start_item(
    env: WorkflowEnvironment,
    task_queue: str,
    reg: Registration,
    initial: list[ItemCommand] | None = None,
    clock_offset_s: float = 0.0,
    memo: bool = True,
) -> WorkflowHandle[SupervisionItemWorkflow, ItemOutcome]:
    return await env.client.start_workflow(
        SupervisionItemWorkflow.run,
        ItemWorkflowInput(
            registration=reg,
            initial_commands=opening_commands(reg.reported_at) if initial is None else initial,
            clock_offset_s=clock_offset_s,
            search_attributes=False,
            memo=memo,
        ),
        id=f"item-{reg.item_id}",
        task_queue=task_queue,
    )


async def update(
    handle: WorkflowHandle[SupervisionItemWorkflow, ItemOutcome], cmd: ItemCommand
) -> CommandOutcome:
    return await handle.execute_update(SupervisionItemWorkflow.apply_command, cmd)


async def state_of(handle: WorkflowHandle[SupervisionItemWorkflow, ItemOutcome]) -> ItemState:
    state = await handle.query(SupervisionItemWorkflow.state)
    assert state is not None
    return state


def stored(store: EventStore, item_id: str) -> list[EventEnvelope]:
    return list(store.read(item_id))


async def wait_until(check: Callable[[], bool], what: str, timeout_s: float = 15.0) -> None:
    """Poll (in real time) until ``check()`` holds: events are recorded by an activity after a step."""
    limit = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > limit:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def wait_for_types(store: EventStore, item_id: str, *types: str) -> list[EventEnvelope]:
    await wait_until(
        lambda: set(types) <= {e.event_type for e in stored(store, item_id)}, f"{types} of {item_id}"
    )
    return stored(store, item_id)


def types_of(events: list[EventEnvelope]) -> list[str]:
    return [e.event_type for e in events]


def of_type(events: list[EventEnvelope], event_type: str) -> list[EventEnvelope]:
    return [e for e in events if e.event_type == event_type]


async def finish(handle: WorkflowHandle[SupervisionItemWorkflow, ItemOutcome], at: datetime) -> ItemOutcome:
    """Submit, verify and close the item (updates) with all three acts dated ``at``."""
    await update(handle, command("submit_rectification", at))
    await update(handle, command("verify", at, INSPECTOR))
    await update(handle, command("close", at, INSPECTOR))
    return await handle.result()


# --- items under the default rulebook on China's calendar -------------------------------------------

RULEBOOK = load_rulebook(DEFAULT_RULEBOOK_PATH)
CST = ZoneInfo("Asia/Shanghai")
UNIT, OTHER_UNIT = "U1", "U2"
ROLE_OF = {
    "dispatch": "dispatcher",
    "accept": "handling_unit",
    "submit_rectification": "handling_unit",
    "verify": "inspector",
    "close": "dispatcher",
    "cancel": "dispatcher",
    "return": "handling_unit",
    "request_extension": "handling_unit",
    "approve_extension": "duty_chief",
    "reject_extension": "duty_chief",
    "suspend": "duty_chief",
    "resume": "duty_chief",
    "merge": "dispatcher",
    "grid_call": "grid_worker",
    "report_in": "handling_unit",
    "rate_responder": "grid_worker",
}
ACTOR_OF = {"dispatcher": "centre:li", "handling_unit": "unit:U1", "inspector": "inspector:zhao"}
_ids = iter(range(1_000_000))


def cst(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=CST)


def litter(reported: datetime, category: str = "litter") -> Registration:
    reg = Registration(item_id="L-1", category=category, reported_at=reported, department="UM", unit=UNIT)
    return apply_rulebook(reg, RULEBOOK, "china")


def cmd(kind: str, at: datetime, **fields: Any) -> ItemCommand:
    role = fields.pop("role", ROLE_OF[kind])
    actor = fields.pop("actor", ACTOR_OF.get(role, f"{role}:x"))
    if kind in ("accept", "submit_rectification", "return", "request_extension") and "unit" not in fields:
        fields["unit"] = UNIT
    if kind == "submit_rectification":
        fields.setdefault("evidence", ["photo-1.jpg"])
    if kind == "verify":
        fields.setdefault("unit", "QA")  # the inspection team, never the rectifying unit
    if kind in ("cancel", "return", "request_extension", "reject_extension", "suspend", "merge"):
        fields.setdefault("reason", "because")
    return ItemCommand(
        command_id=f"c{next(_ids)}", kind=kind, actor=actor, occurred_at=at, role=role, **fields
    )


# --- three items for the indicator and score tests --------------------------------------------------


def item(item_id: str, *commands: ItemCommand) -> list[EventEnvelope]:
    reg = litter(cst(11, 2, 9, 0))
    reg.item_id, reg.department, reg.district = item_id, "UM", "Qiaotou"
    state, events = rules.register(reg)
    return events + run(state, *commands)


def three_items() -> list[EventEnvelope]:
    """P, Q and R of ``test_indicators`` (its docstring tells their story)."""
    u2 = {"unit": "U2"}
    p = item(
        "P",
        cmd("dispatch", cst(11, 2, 9, 0), unit="U1", department="UM"),
        cmd("return", cst(11, 2, 9, 10)),
        cmd("dispatch", cst(11, 2, 9, 20), unit="U2", department="Greening"),
        cmd("accept", cst(11, 2, 9, 25), **u2),
        cmd("grid_call", cst(11, 2, 9, 30), actor="grid:wang", departments=["PWD", "ISD"]),
        cmd("report_in", cst(11, 2, 9, 40), department="PWD", unit="PWD"),
        cmd("request_extension", cst(11, 2, 9, 45), new_deadline=cst(11, 3, 17, 30), **u2),
        cmd("approve_extension", cst(11, 2, 9, 50)),
        cmd("report_in", cst(11, 2, 10, 5), department="ISD", unit="ISD"),
        cmd("submit_rectification", cst(11, 2, 10, 10), **u2),
        cmd("verify", cst(11, 2, 10, 20), passed=False, notes="still dirty"),
        cmd("submit_rectification", cst(11, 2, 10, 30), **u2),
        cmd("verify", cst(11, 2, 10, 40)),
        cmd("close", cst(11, 2, 10, 50)),
    )
    q = item(
        "Q",
        cmd("dispatch", cst(11, 2, 9, 0), unit="U1", department="UM"),
        cmd("accept", cst(11, 2, 9, 5)),
        cmd("cancel", cst(11, 2, 9, 30), reason="duplicate report"),
    )
    r = item(
        "R",
        cmd("dispatch", cst(11, 2, 9, 0), unit="U1", department="UM"),
        cmd("accept", cst(11, 2, 9, 5)),
        cmd("submit_rectification", cst(11, 2, 13, 40)),
        cmd("verify", cst(11, 2, 13, 50)),
        cmd("close", cst(11, 2, 14, 0)),
    )
    return p + q + r


# --- driving the pure core ----------------------------------------------------------------------------


def run(state: ItemState, *commands: ItemCommand) -> list[EventEnvelope]:
    """Apply commands in order at their own times, by the workflow's step (``item_step``: the timers
    due before each fire first; merge targets count as registered); a refused command fails."""
    events: list[EventEnvelope] = []
    for c in commands:
        targets = {c.into_item_id.strip(): True} if c.kind == "merge" else None
        step = handle_command(state, c, c.occurred_at, 0.0, targets)
        assert step.outcome is not None and step.outcome.applied, f"{c.kind} refused: {step.outcome}"
        events += step.events
    return events


def opened(reported: datetime, category: str = "litter") -> ItemState:
    state, _ = rules.register(litter(reported, category))
    run(state, cmd("dispatch", reported, unit=UNIT, department="UM"), cmd("accept", reported))
    return state


def timeline(events: list[EventEnvelope]) -> list[tuple[str, datetime, Any]]:
    detail = {
        t.DEADLINE_WARNED: "threshold",
        t.TRAFFIC_LIGHT_CHANGED: "light",
        t.ITEM_ESCALATED: "rung",
        t.DEADLINE_BREACHED: "milestone",
    }
    return [(e.event_type, e.occurred_at, e.payload.get(detail.get(e.event_type, ""))) for e in events]


def refused(state: ItemState, command: ItemCommand) -> str:
    with pytest.raises(IllegalCommand) as info:
        rules.apply_command(state, command)
    return info.value.reason
