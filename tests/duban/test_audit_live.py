"""Issue 12 on the real dev server: a rulebook item that went through an extension, a suspension, a
rework and an escalation has a timeline equal, step for step, to its workflow history; live replay
passes on this build and fails, naming the item, on a build that removed a timer."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest_asyncio
from helpers.broken_build import WithoutTheTimer
from helpers.items import CST, RULEBOOK
from helpers.items import cmd as command
from temporalio.testing import WorkflowEnvironment

from activities.event_recording import EventRecorder
from duban.audit.replay import WORKFLOWS, replay
from duban.audit.timeline import check_history, render, timeline
from duban.processes.worker import build_worker
from events.store import EventStore
from workflows.item_model import Registration
from workflows.item_policy import apply_rulebook
from workflows.item_workflow import ItemWorkflowInput, SupervisionItemWorkflow

MONDAY = datetime(2026, 11, 30, 9, 0, tzinfo=CST)  # a working Monday; litter: 2 working hours


def at(minutes: int) -> datetime:
    return MONDAY + timedelta(minutes=minutes)


def registration(item: str, reported: datetime) -> Registration:
    reg = Registration(item_id=item, category="litter", reported_at=reported, department="UM",
                       town="Qiaotou", zone="Asia/Shanghai")  # fmt: skip
    return apply_rulebook(reg, RULEBOOK, "china")


def story(item: str) -> list[Any]:
    """Dispatched and accepted; an extension to 15:00 requested and approved; suspended an hour;
    rectified and failed on verification (rework); the deadline — 15:00, moved to 16:00 by the hour
    suspended — passes (breach, escalation to the department head); rectified again, verified,
    closed late on Tuesday at 11:00."""
    unit = {"unit": "U1"}
    return [
        command("dispatch", at(5), unit="U1", department="UM"),
        command("accept", at(10), **unit),
        command("request_extension", at(20), new_deadline=at(360), **unit),
        command("approve_extension", at(30)),
        command("suspend", at(40), reason="road works block the site"),
        command("resume", at(100)),
        command("submit_rectification", at(110), **unit),
        command("verify", at(120), passed=False, notes="still dirty"),
        command("submit_rectification", at(24 * 60 + 60), **unit),
        command("verify", at(24 * 60 + 90)),
        command("close", at(24 * 60 + 120)),
    ]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def items(
    dev_env: WorkflowEnvironment, tmp_path_factory: Any
) -> AsyncIterator[tuple[EventStore, str, str, str]]:
    from events.sql import make_engine

    store = EventStore(make_engine(f"sqlite:///{tmp_path_factory.mktemp('audit') / 'a.db'}"))
    store.create()
    queue, tag = f"audit-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex[:6]
    closed, waiting = f"told-{tag}", f"open-{tag}"
    async with build_worker(dev_env.client, queue, EventRecorder(store, None, "t"), max_cached=10):
        done = await dev_env.client.start_workflow(
            SupervisionItemWorkflow.run, ItemWorkflowInput(registration(closed, MONDAY), story(closed)),
            id=f"item-{closed}", task_queue=queue,
        )  # fmt: skip
        await done.result()
        soon = datetime.now(CST) - timedelta(minutes=1)  # its warnings and breach are timers ahead
        await dev_env.client.start_workflow(
            SupervisionItemWorkflow.run, ItemWorkflowInput(registration(waiting, soon), []),
            id=f"item-{waiting}", task_queue=queue,
        )  # fmt: skip
        for _ in range(100):  # its first task done: registered and waiting on a timer
            if len(list(store.read(waiting))) >= 1:
                break
            await asyncio.sleep(0.1)
        yield store, queue, closed, waiting


async def test_the_timeline_equals_the_workflow_history_step_for_step(
    dev_env: WorkflowEnvironment, items: tuple[EventStore, str, str, str]
) -> None:
    store, _, item, _ = items
    rows = timeline(store.engine, item)
    kinds = [r["event_type"] for r in rows]
    for expected in (
        "ExtensionApproved",
        "ItemSuspended",
        "ItemResumed",
        "ReworkOrdered",
        "DeadlineBreached",
        "ItemEscalated",
        "ItemClosed",
    ):
        assert expected in kinds, kinds
    escalations = [
        json.loads(json.dumps(e.payload))["level"]
        for e in store.read(item)
        if e.event_type == "ItemEscalated"
    ]
    assert escalations == [1]  # the department head at the breach (Mon 16:00); the district leader
    # would follow a working day later, Tue 16:00, after the close at 11:00
    assert (
        rows[0]["occurred_at_local"] == "2026-11-30T09:00:00+08:00"
        and rows[0]["occurred_at_utc"] == "2026-11-30T01:00:00+00:00"
    )
    assert (
        next(r for r in rows if r["event_type"] == "ItemSuspended")["reason"] == "road works block the site"
    )
    check = await check_history(dev_env.client, store.engine, item)
    assert check.ok and check.runs == 1 and check.matched == len(rows), check
    html = render(rows, check, "html", item)
    assert "Temporal history: matches" in html and html.count("<tr>") == len(rows) + 1


async def test_a_store_missing_an_event_disagrees_with_the_history(
    dev_env: WorkflowEnvironment, items: tuple[EventStore, str, str, str]
) -> None:
    from sqlalchemy import delete

    from events.store import stored_events

    store, _, _, waiting = items
    [first] = list(store.read(waiting))[:1]
    with store.engine.begin() as conn:
        conn.execute(delete(stored_events).where(stored_events.c.event_id == first.event_id))
    check = await check_history(dev_env.client, store.engine, waiting)
    assert not check.ok and check.only_in_history == [f"ItemRegistered #1 ({first.event_id})"]
    store.append([first])  # put back for the other tests


async def test_live_replay_passes_on_this_build_and_names_the_items_a_changed_build_breaks(
    dev_env: WorkflowEnvironment, items: tuple[EventStore, str, str, str]
) -> None:
    _, _, closed, waiting = items
    query = f"WorkflowId IN ('item-{closed}', 'item-{waiting}')"
    report = await replay(dev_env.client, query)
    assert (report.replayed, report.failures) == (2, [])
    broken = (WithoutTheTimer, *WORKFLOWS[1:])
    report = await replay(dev_env.client, query, workflows=broken)
    assert report.replayed == 2 and [f[0] for f in report.failures] == [f"item-{waiting}"]
    assert "nondetermin" in report.failures[0][2].lower() or "TMPRL1100" in report.failures[0][2]


# --- found by a tester trying to break ``duban audit`` ----------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def quoted(
    dev_env: WorkflowEnvironment, tmp_path_factory: Any
) -> AsyncIterator[tuple[EventStore, str, str]]:
    """Two closed items whose ids hold a quote: ``o'brien-…`` (spelled in the visibility query with
    the quote doubled) and ``o\\'neil-…`` (a backslash before it: followed run by run instead)."""
    from events.sql import make_engine

    path = tmp_path_factory.mktemp("audit-quoted") / "q.db"
    store = EventStore(make_engine(f"sqlite:///{path}"))
    store.create()
    queue, tag = f"audit-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex[:6]
    ids = (f"o'brien-{tag}", f"o\\'neil-{tag}")
    async with build_worker(dev_env.client, queue, EventRecorder(store, None, "t"), max_cached=10):
        for item in ids:
            handle = await dev_env.client.start_workflow(
                SupervisionItemWorkflow.run, ItemWorkflowInput(registration(item, MONDAY), story(item)),
                id=f"item-{item}", task_queue=queue,
            )  # fmt: skip
            await handle.result()
        yield store, f"sqlite:///{path}", ids[0]  # the worker answers the items' state queries
    store.engine.dispose()


def cli(dev_env: WorkflowEnvironment, *args: str) -> Any:
    from typer.testing import CliRunner

    from duban.cli import app

    env = {"DUBAN_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host}
    return CliRunner().invoke(app, ["audit", *args], env=env)


async def test_an_item_id_with_a_quote_is_checked_against_its_history(
    dev_env: WorkflowEnvironment, quoted: tuple[EventStore, str, str]
) -> None:
    store, _, _ = quoted
    for item in {e.item_id for e in store.read()}:
        rows = timeline(store.engine, item)
        check = await check_history(dev_env.client, store.engine, item)
        assert check.ok and check.runs == 1 and check.matched == len(rows) == check.stored == check.in_history


async def test_the_csv_and_html_say_why_and_how_many(
    dev_env: WorkflowEnvironment, quoted: tuple[EventStore, str, str]
) -> None:
    import csv
    import io

    from sqlalchemy import update

    from events.store import stored_events

    store, url, item = quoted
    rows = timeline(store.engine, item)
    done = await asyncio.to_thread(cli, dev_env, "item", item, "--format", "csv", "--database-url", url)
    assert done.exit_code == 0, done.output
    table = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [r["event_id"] for r in table] == [r["event_id"] for r in rows]
    assert {r["history"] for r in table} == {"matches"}
    suspended = next(e for e in store.read(item) if e.event_type == "ItemSuspended")
    changed = json.dumps(suspended.payload | {"reason": "no reason"}, sort_keys=True, ensure_ascii=False)
    c = stored_events.c
    with store.engine.begin() as conn:
        conn.execute(update(stored_events).where(c.event_id == suspended.event_id).values(payload=changed))
    try:
        done = await asyncio.to_thread(cli, dev_env, "item", item, "--format", "csv", "--database-url", url)
        assert done.exit_code == 1, done.output
        verdicts = {r["event_id"]: r["history"] for r in csv.DictReader(io.StringIO(done.stdout))}
        assert verdicts.pop(suspended.event_id) == "differs from the workflow history in payload"
        assert set(verdicts.values()) == {"matches"}
        done = await asyncio.to_thread(cli, dev_env, "item", item, "--format", "html", "--database-url", url)
        assert done.exit_code == 1, done.output
        n = len(rows)
        assert (
            f"Temporal history: DOES NOT MATCH ({n} events stored, {n} in the workflow history: "
            f"{n - 1} alike, 1 differing, 0 only in the store, 0 only in the history; 1 run(s))"
        ) in done.stdout
    finally:
        with store.engine.begin() as conn:
            conn.execute(
                update(stored_events)
                .where(c.event_id == suspended.event_id)
                .values(payload=json.dumps(suspended.payload, sort_keys=True, ensure_ascii=False))
            )


async def test_a_malformed_replay_query_is_refused_without_a_traceback(dev_env: WorkflowEnvironment) -> None:
    done = await asyncio.to_thread(cli, dev_env, "replay", "--query", "WorkflowId = 'unclosed")
    assert done.exit_code == 2 and done.stdout == "", done.output
    assert done.stderr.startswith('error: query: Temporal refused "WorkflowId = \'unclosed": invalid query')
    assert "Traceback" not in done.output


async def test_an_item_whose_workflow_this_server_never_ran_is_no_mismatch(
    dev_env: WorkflowEnvironment, tmp_path: Any
) -> None:
    """A simulation's items ran on the simulation's own server: auditing one against the running
    server finds no history, which is said, not reported as every event missing from it."""
    from events.sql import make_engine
    from workflows import item_rules

    url = f"sqlite:///{tmp_path / 'simulated.db'}"
    store = EventStore(make_engine(url))
    store.create()
    reg = Registration(f"never-ran-{uuid.uuid4().hex[:8]}", "litter", datetime(2022, 5, 3, 9, tzinfo=CST))
    events = item_rules.register(reg)[1]
    store.append(events)
    done = await asyncio.to_thread(
        cli, dev_env, "item", reg.item_id, "--format", "csv", "--database-url", url
    )
    assert done.exit_code == 0, done.output
    assert "no workflow history" in done.output
    header, *rows = [line for line in done.stdout.splitlines() if line]
    assert "history" not in header.split(",") and len(rows) == len(events)
