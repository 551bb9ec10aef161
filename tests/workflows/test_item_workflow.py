"""``SupervisionItemWorkflow`` on the real time-skipping test server, events recorded into SQLite.

Every test takes its business clock from the server (``env.get_current_time()``) and moves it with
``env.sleep``; auto time skipping is off so that awaiting a result never jumps over a deadline.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta

import pytest
from helpers.items import (
    HAPPY_PATH,
    INSPECTOR,
    WINDOW,
    command,
    finish,
    of_type,
    registration,
    start_item,
    state_of,
    stored,
    types_of,
    update,
    wait_for_types,
)
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from events import types as t
from events.store import EventStore
from workflows.item_workflow import ItemOutcome, SupervisionItemWorkflow

ItemWorkerFactory = Callable[..., AbstractAsyncContextManager[str]]  # the conftest fixture
WORKFLOW_TASKS = {
    EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
}


# --- (a) closed on time, before the warning ---------------------------------------------------


async def test_closed_on_time_before_the_warning(
    workflow_env: WorkflowEnvironment, event_store: EventStore, item_worker: ItemWorkerFactory
) -> None:
    env = workflow_env
    with env.auto_time_skipping_disabled():
        async with item_worker() as queue:
            reported = await env.get_current_time()
            reg = registration(reported)
            handle = await start_item(env, queue, reg)
            outcome = await update(handle, command("submit_rectification", await env.get_current_time()))
            assert outcome.applied and outcome.event_types == [t.RECTIFICATION_SUBMITTED]
            await update(handle, command("verify", await env.get_current_time(), INSPECTOR))
            closed = await update(handle, command("close", await env.get_current_time(), INSPECTOR))
            assert closed.event_types == [t.ITEM_CLOSED]
            result = await handle.result()

            assert result == ItemOutcome(reg.item_id, "closed", True, False, 0, 6)
            events = stored(event_store, reg.item_id)
            assert types_of(events) == HAPPY_PATH
            assert [e.sequence for e in events] == [1, 2, 3, 4, 5, 6]
            assert events[0].occurred_at == reported
            assert events[-1].payload["on_time"] is True
            assert events[-1].occurred_at < reported + WINDOW * 0.75

            # The old deadline passes: nothing of the closed item may fire (sdk-python#1351).
            await env.sleep(WINDOW + timedelta(hours=1))
            assert await env.get_current_time() > reg.resolution_deadline  # type: ignore[operator]
            await asyncio.sleep(0.3)
            assert types_of(stored(event_store, reg.item_id)) == HAPPY_PATH
            history = await handle.fetch_history()
            fired = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_TIMER_FIRED]
            assert fired == []


async def test_an_item_without_a_memo_decides_as_one_with_it(
    workflow_env: WorkflowEnvironment, event_store: EventStore, item_worker: ItemWorkerFactory
) -> None:
    """``ItemWorkflowInput.memo`` false (the simulation) leaves the memo empty and changes nothing
    else: the same events, the same outcome, the same commands in the history but the memo's (how
    many workflow tasks carried them depends on when the updates arrived)."""
    env = workflow_env
    runs = []
    with env.auto_time_skipping_disabled():
        async with item_worker() as queue:
            for memo in (True, False):
                reg = registration(await env.get_current_time())
                handle = await start_item(env, queue, reg, memo=memo)
                await update(handle, command("submit_rectification", await env.get_current_time()))
                await update(handle, command("verify", await env.get_current_time(), INSPECTOR))
                await update(handle, command("close", await env.get_current_time(), INSPECTOR))
                outcome = await handle.result()
                history = await handle.fetch_history()
                runs.append(
                    (
                        await (await handle.describe()).memo(),
                        outcome.__dict__ | {"item_id": ""},
                        [(e.event_type, e.sequence) for e in stored(event_store, reg.item_id)],
                        Counter(e.event_type for e in history.events if e.event_type not in WORKFLOW_TASKS),
                    )
                )
    (memo, outcome, events, kinds), (no_memo, outcome_2, events_2, kinds_2) = runs
    assert memo["stage"] == "closed" and no_memo == {}
    assert (outcome, events) == (outcome_2, events_2)
    modified = EventType.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED
    assert kinds[modified] > 0 and kinds - Counter({modified: kinds[modified]}) == kinds_2


# --- (b) warned, still on time -------------------------------------------------------------------


async def test_warned_then_closed_on_time(
    workflow_env: WorkflowEnvironment, event_store: EventStore, item_worker: ItemWorkerFactory
) -> None:
    env = workflow_env
    with env.auto_time_skipping_disabled():
        async with item_worker() as queue:
            reg = registration(await env.get_current_time())
            handle = await start_item(env, queue, reg)
            await update(handle, command("submit_rectification", reg.reported_at))

            await env.sleep(WINDOW * 0.8)
            events = await wait_for_types(event_store, reg.item_id, t.DEADLINE_WARNED)
            [warned] = of_type(events, t.DEADLINE_WARNED)
            assert warned.occurred_at == reg.reported_at + WINDOW * 0.75
            assert warned.payload == {
                "milestone": "resolution",
                "deadline": reg.resolution_deadline.isoformat(),  # type: ignore[union-attr]
                "threshold": "0.75",
            }
            assert warned.actor == "system:timer"

            now = await env.get_current_time()
            assert reg.reported_at + WINDOW * 0.8 <= now < reg.resolution_deadline  # type: ignore[operator]
            await update(handle, command("verify", now, INSPECTOR))
            await update(handle, command("close", now, INSPECTOR))
            result = await handle.result()

            assert result.on_time is True and result.overdue is False and result.escalation_level == 0
            events = stored(event_store, reg.item_id)
            assert types_of(events) == [
                t.ITEM_REGISTERED,
                t.ITEM_DISPATCHED,
                t.ITEM_ACCEPTED,
                t.RECTIFICATION_SUBMITTED,
                t.DEADLINE_WARNED,
                t.RECTIFICATION_VERIFIED,
                t.ITEM_CLOSED,
            ]
            assert [e.sequence for e in events] == list(range(1, 8))
            assert of_type(events, t.DEADLINE_BREACHED) == []


# --- (c) breached and escalated -----------------------------------------------------------------


async def test_breached_escalated_then_closed_late(
    workflow_env: WorkflowEnvironment, event_store: EventStore, item_worker: ItemWorkerFactory
) -> None:
    env = workflow_env
    with env.auto_time_skipping_disabled():
        async with item_worker() as queue:
            reg = registration(await env.get_current_time())
            deadline = reg.resolution_deadline
            assert deadline is not None
            handle = await start_item(env, queue, reg)

            await env.sleep(WINDOW + timedelta(hours=2))
            events = await wait_for_types(event_store, reg.item_id, t.DEADLINE_BREACHED, t.ITEM_ESCALATED)
            assert types_of(events) == [
                t.ITEM_REGISTERED,
                t.ITEM_DISPATCHED,
                t.ITEM_ACCEPTED,
                t.DEADLINE_WARNED,
                t.DEADLINE_BREACHED,
                t.ITEM_ESCALATED,
            ]
            [breached] = of_type(events, t.DEADLINE_BREACHED)
            [escalated] = of_type(events, t.ITEM_ESCALATED)
            assert breached.occurred_at == deadline and escalated.occurred_at == deadline
            assert breached.payload == {"milestone": "resolution", "deadline": deadline.isoformat()}
            assert escalated.payload == {"milestone": "resolution", "level": 1, "rung": "department_head"}
            state = await state_of(handle)
            assert state.escalation_level == 1 and state.overdue is True and state.timers == []

            result = await finish(handle, await env.get_current_time())
            assert result.on_time is False and result.overdue is True and result.escalation_level == 1
            [closed] = of_type(stored(event_store, reg.item_id), t.ITEM_CLOSED)
            assert closed.payload["on_time"] is False
            assert closed.payload["handling_seconds"] >= (WINDOW + timedelta(hours=2)).total_seconds()


# --- (d) the update validator rejects an illegal command ----------------------------------------


async def test_update_validator_rejects_close_before_verify(
    workflow_env: WorkflowEnvironment, event_store: EventStore, item_worker: ItemWorkerFactory
) -> None:
    env = workflow_env
    with env.auto_time_skipping_disabled():
        async with item_worker() as queue:
            reg = registration(await env.get_current_time())
            handle = await start_item(env, queue, reg)
            await wait_for_types(event_store, reg.item_id, t.ITEM_ACCEPTED)
            before = await state_of(handle)
            assert before.stage == "accepted"

            with pytest.raises(WorkflowUpdateFailedError) as info:
                await update(handle, command("close", await env.get_current_time(), INSPECTOR, "c-early"))
            cause = info.value.cause
            assert isinstance(cause, ApplicationError)
            assert cause.type == "IllegalCommand"
            assert cause.message == "cannot close an item that is accepted"

            after = await state_of(handle)
            assert after == before  # the validator rejected it before it reached the item
            assert after.stage == "accepted" and after.sequence == 3
            assert "c-early" not in after.applied_command_ids and after.rejected == []
            assert types_of(stored(event_store, reg.item_id)) == HAPPY_PATH[:3]

            await update(
                handle, command("cancel", await env.get_current_time(), "office:zhang", reason="test over")
            )
            result = await handle.result()
            assert result.stage == "cancelled" and result.on_time is None


async def test_illegal_signal_is_recorded_as_rejected(
    workflow_env: WorkflowEnvironment, event_store: EventStore, item_worker: ItemWorkerFactory
) -> None:
    env = workflow_env
    with env.auto_time_skipping_disabled():
        async with item_worker() as queue:
            reg = registration(await env.get_current_time())
            handle = await start_item(env, queue, reg)
            bad = command("verify", await env.get_current_time(), INSPECTOR, "v-early")
            await handle.signal(SupervisionItemWorkflow.submit_command, bad)
            for _ in range(300):
                state = await state_of(handle)
                if state.rejected:
                    break
                await asyncio.sleep(0.05)
            assert [(r.command_id, r.applied, r.reason) for r in state.rejected] == [
                ("v-early", False, "cannot verify an item that is accepted")
            ]
            assert state.stage == "accepted" and state.sequence == 3
            result = await finish(handle, await env.get_current_time())
            assert result.on_time is True
            assert types_of(stored(event_store, reg.item_id)) == HAPPY_PATH


# --- (e) a command delivered twice is applied once ----------------------------------------------


async def test_duplicate_commands_are_applied_once(
    workflow_env: WorkflowEnvironment, event_store: EventStore, item_worker: ItemWorkerFactory
) -> None:
    env = workflow_env
    with env.auto_time_skipping_disabled():
        async with item_worker() as queue:
            reg = registration(await env.get_current_time())
            handle = await start_item(env, queue, reg)
            submit = command("submit_rectification", await env.get_current_time(), command_id="dup-submit")
            await handle.signal(SupervisionItemWorkflow.submit_command, submit)
            await handle.signal(SupervisionItemWorkflow.submit_command, submit)
            await wait_for_types(event_store, reg.item_id, t.RECTIFICATION_SUBMITTED)
            # the same command as an update too: acknowledged, not applied again
            again = await update(handle, submit)
            assert again.applied is True and again.command_id == "dup-submit"

            verify = command("verify", await env.get_current_time(), INSPECTOR, "dup-verify")
            first = await update(handle, verify)
            second = await update(handle, verify)
            assert first.event_types == [t.RECTIFICATION_VERIFIED]
            assert second.applied is True and second.command_id == "dup-verify"
            await handle.signal(SupervisionItemWorkflow.submit_command, verify)

            state = await state_of(handle)
            assert state.applied_command_ids.count("dup-submit") == 1
            assert state.applied_command_ids.count("dup-verify") == 1
            await update(handle, command("close", await env.get_current_time(), INSPECTOR))
            result = await handle.result()
            assert result.events == 6 and result.on_time is True
            assert types_of(stored(event_store, reg.item_id)) == HAPPY_PATH


# --- (f) historical business time ----------------------------------------------------------------


async def test_historical_time_through_the_clock_offset(
    workflow_env: WorkflowEnvironment, event_store: EventStore, item_worker: ItemWorkerFactory
) -> None:
    env = workflow_env
    reported = datetime(2022, 1, 1, 0, 0, tzinfo=UTC)
    with env.auto_time_skipping_disabled():
        async with item_worker() as queue:
            # business time starts at 00:10, when the case was accepted (commands may not be future-dated)
            offset = (await env.get_current_time() - (reported + timedelta(minutes=10))).total_seconds()
            reg = registration(reported)
            initial = [
                command("dispatch", reported + timedelta(minutes=5), "dispatcher:ann"),
                command("accept", reported + timedelta(minutes=10)),
            ]
            handle = await start_item(env, queue, reg, initial, clock_offset_s=offset)

            await env.sleep(timedelta(hours=19))  # business time passes 2022-01-01T18:00Z, to ~19:10
            events = await wait_for_types(event_store, reg.item_id, t.DEADLINE_WARNED)
            [warned] = of_type(events, t.DEADLINE_WARNED)
            assert warned.occurred_at == datetime(2022, 1, 1, 18, 0, tzinfo=UTC)

            business_now = await env.get_current_time() - timedelta(seconds=offset)
            assert datetime(2022, 1, 1, 19, 0, tzinfo=UTC) <= business_now < reg.resolution_deadline  # type: ignore[operator]
            result = await finish(handle, business_now)

            assert result.on_time is True and result.overdue is False
            events = stored(event_store, reg.item_id)
            assert all(e.occurred_at.year == 2022 for e in events)
            assert [e.occurred_at for e in events[:3]] == [
                reported,
                reported + timedelta(minutes=5),
                reported + timedelta(minutes=10),
            ]
            assert all(e.recorded_at.year > 2022 for e in events)  # stamped by the activity
            [closed] = of_type(events, t.ITEM_CLOSED)
            assert closed.occurred_at == business_now
            assert 19 * 3600 <= closed.payload["handling_seconds"] < 20 * 3600


# --- (g) a late-arriving close dated before the deadline -----------------------------------------


async def test_close_arriving_after_the_deadline_but_dated_before_it_is_on_time(
    workflow_env: WorkflowEnvironment, event_store: EventStore, item_worker: ItemWorkerFactory
) -> None:
    env = workflow_env
    with env.auto_time_skipping_disabled():
        async with item_worker() as queue:
            reg = registration(await env.get_current_time())
            deadline = reg.resolution_deadline
            assert deadline is not None
            handle = await start_item(env, queue, reg)
            await update(handle, command("submit_rectification", reg.reported_at))
            await update(handle, command("verify", await env.get_current_time(), INSPECTOR))

            await env.sleep(WINDOW + timedelta(hours=3))
            await wait_for_types(event_store, reg.item_id, t.DEADLINE_BREACHED)
            assert await env.get_current_time() > deadline

            closed_at = deadline - timedelta(hours=1)
            await handle.signal(
                SupervisionItemWorkflow.submit_command, command("close", closed_at, INSPECTOR)
            )
            result = await handle.result()

            assert result.stage == "closed" and result.on_time is True  # the closing time decides
            events = stored(event_store, reg.item_id)
            [closed] = of_type(events, t.ITEM_CLOSED)
            assert closed.occurred_at == closed_at and closed.payload["on_time"] is True
            assert closed.payload["handling_seconds"] == int((WINDOW - timedelta(hours=1)).total_seconds())
            assert types_of(events)[-1] == t.ITEM_CLOSED


# --- known bug ------------------------------------------------------------------------------------


async def test_update_reusing_a_rejected_command_id_reports_what_happened(
    workflow_env: WorkflowEnvironment, event_store: EventStore, item_worker: ItemWorkerFactory
) -> None:
    env = workflow_env
    with env.auto_time_skipping_disabled():
        async with item_worker() as queue:
            reg = registration(await env.get_current_time())
            handle = await start_item(env, queue, reg)
            verify = command("verify", await env.get_current_time(), INSPECTOR, "v-retry")
            await handle.signal(SupervisionItemWorkflow.submit_command, verify)  # too early: rejected
            for _ in range(300):
                if (await state_of(handle)).rejected:
                    break
                await asyncio.sleep(0.05)
            await update(handle, command("submit_rectification", await env.get_current_time()))
            try:
                await update(handle, verify)  # redelivered once legal: the validator accepts it
                failed = False
            except WorkflowUpdateFailedError:
                failed = True
            await asyncio.sleep(0.3)
            stage = (await state_of(handle)).stage
            await handle.terminate()
            assert (failed, stage) in {(True, "rectified"), (False, "verified")}
