"""Lifecycle paths of ``SupervisionItemWorkflow`` under the default rulebook, on the time-skipping server.

Business time is set with the clock offset so that hand-worked instants on China's calendar can be
asserted (see ``test_item_lifecycle_rules`` for the arithmetic); the server's clock is driven with
``env.sleep`` and auto time skipping is off.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta

import pytest
from helpers.items import cmd, cst, litter, of_type, state_of, stored, types_of, update, wait_for_types
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from events import types as t
from events.store import EventStore
from workflows.item_model import ItemCommand, Registration
from workflows.item_workflow import ItemOutcome, ItemWorkflowInput, SupervisionItemWorkflow

ItemWorkerFactory = Callable[..., AbstractAsyncContextManager[str]]
Handle = WorkflowHandle[SupervisionItemWorkflow, ItemOutcome]


def governed(reported: datetime) -> Registration:
    return dataclasses.replace(litter(reported), item_id=f"G-{uuid.uuid4().hex[:10]}")


class BusinessClock:
    """Business time = server time − offset; ``at`` sleeps the server until business time ``when``."""

    def __init__(self, env: WorkflowEnvironment, offset_s: float) -> None:
        self.env, self.offset = env, timedelta(seconds=offset_s)

    @classmethod
    async def starting(cls, env: WorkflowEnvironment, business_start: datetime) -> BusinessClock:
        return cls(env, (await env.get_current_time() - business_start).total_seconds())

    async def now(self) -> datetime:
        return await self.env.get_current_time() - self.offset

    async def at(self, when: datetime) -> None:
        gap = when - await self.now()
        if gap > timedelta(0):
            await self.env.sleep(gap)


async def start(
    env: WorkflowEnvironment,
    queue: str,
    reg: Registration,
    clock: BusinessClock,
    initial: list[ItemCommand] | None = None,
    **extra: object,
) -> Handle:
    opening = [cmd("dispatch", reg.reported_at, unit="U1", department="UM"), cmd("accept", reg.reported_at)]
    return await env.client.start_workflow(
        SupervisionItemWorkflow.run,
        ItemWorkflowInput(
            registration=reg,
            initial_commands=opening if initial is None else initial,
            clock_offset_s=clock.offset.total_seconds(),
            search_attributes=False,
            **extra,  # type: ignore[arg-type]
        ),
        id=f"item-{reg.item_id}",
        task_queue=queue,
    )


def timeline(store: EventStore, item_id: str, *kinds: str) -> list[tuple[str, datetime, object]]:
    keys = {t.DEADLINE_WARNED: "threshold", t.TRAFFIC_LIGHT_CHANGED: "light", t.ITEM_ESCALATED: "rung"}
    return [
        (e.event_type, e.occurred_at, e.payload.get(keys.get(e.event_type, "milestone")))
        for e in stored(store, item_id)
        if e.event_type in kinds
    ]


TIMER_EVENTS = (t.DEADLINE_WARNED, t.TRAFFIC_LIGHT_CHANGED, t.DEADLINE_BREACHED, t.ITEM_ESCALATED)


async def test_a_command_sent_with_signal_with_start_is_applied_after_registration(
    workflow_env: WorkflowEnvironment, event_store: EventStore, item_worker: ItemWorkerFactory
) -> None:
    env = workflow_env
    reg = governed(cst(11, 2, 9, 0))
    with env.auto_time_skipping_disabled():
        clock = await BusinessClock.starting(env, reg.reported_at)
        dispatch = cmd("dispatch", reg.reported_at, unit="U1", department="UM")
        queue = "duban-sws-" + uuid.uuid4().hex[:6]
        # the workflow is started with the signal, before any worker polls: the signal reaches the
        # run before its first step
        handle = await env.client.start_workflow(
            SupervisionItemWorkflow.run,
            ItemWorkflowInput(
                registration=reg, clock_offset_s=clock.offset.total_seconds(), search_attributes=False
            ),
            id=f"item-{reg.item_id}",
            task_queue=queue,
            start_signal="submit_command",
            start_signal_args=[dispatch],
        )
        async with item_worker(task_queue=queue):
            events = await wait_for_types(event_store, reg.item_id, t.ITEM_DISPATCHED)
            assert types_of(events)[:2] == [t.ITEM_REGISTERED, t.ITEM_DISPATCHED]
            state = await state_of(handle)
            assert state.stage == "dispatched" and state.applied_command_ids == [dispatch.command_id]
            await handle.terminate("test over")


async def test_an_item_closed_early_never_fires_its_timers(
    workflow_env: WorkflowEnvironment, event_store: EventStore, item_worker: ItemWorkerFactory
) -> None:
    env = workflow_env
    reg = governed(cst(11, 2, 9, 0))
    with env.auto_time_skipping_disabled():
        clock = await BusinessClock.starting(env, reg.reported_at)
        async with item_worker() as queue:
            handle = await start(env, queue, reg, clock)
            await wait_for_types(event_store, reg.item_id, t.ITEM_ACCEPTED)
            assert len((await state_of(handle)).timers) == 4  # 50/75/80% and the breach
            now = await clock.now()
            await update(handle, cmd("submit_rectification", now))
            await update(handle, cmd("verify", now))
            await update(handle, cmd("close", now))
            result = await handle.result()
            await env.sleep(timedelta(days=30))
            assert result.on_time is True and result.escalation_level == 0
            assert timeline(event_store, reg.item_id, *TIMER_EVENTS) == []
            history = await handle.fetch_history()
            assert not [e for e in history.events if e.event_type == EventType.EVENT_TYPE_TIMER_FIRED]


async def test_an_extension_moves_every_timer(
    workflow_env: WorkflowEnvironment, event_store: EventStore, item_worker: ItemWorkerFactory
) -> None:
    env = workflow_env
    reg = governed(cst(11, 2, 9, 0))  # Monday; deadline 11:00 (2 working hours)
    with env.auto_time_skipping_disabled():
        clock = await BusinessClock.starting(env, reg.reported_at)
        async with item_worker() as queue:
            handle = await start(env, queue, reg, clock)
            await wait_for_types(event_store, reg.item_id, t.ITEM_ACCEPTED)
            now = await clock.now()
            await update(handle, cmd("request_extension", now, new_deadline=cst(11, 3, 17, 30)))
            outcome = await update(handle, cmd("approve_extension", now))
            assert outcome.event_types == [t.EXTENSION_APPROVED]
            await clock.at(cst(11, 3, 18, 0))
            await wait_for_types(event_store, reg.item_id, t.ITEM_ESCALATED)
            assert timeline(event_store, reg.item_id, *TIMER_EVENTS) == [
                (t.DEADLINE_WARNED, cst(11, 2, 17, 30), "0.50"),  # not 10:00, 10:30, 10:36, 11:00
                (t.DEADLINE_WARNED, cst(11, 3, 14, 0), "0.75"),
                (t.DEADLINE_WARNED, cst(11, 3, 14, 42), "0.80"),
                (t.TRAFFIC_LIGHT_CHANGED, cst(11, 3, 14, 42), "yellow"),
                (t.DEADLINE_BREACHED, cst(11, 3, 17, 30), "resolution"),
                (t.TRAFFIC_LIGHT_CHANGED, cst(11, 3, 17, 30), "red"),
                (t.ITEM_ESCALATED, cst(11, 3, 17, 30), "department_head"),
            ]
            await handle.terminate("test over")


async def test_a_suspension_over_national_day_rearms_the_timers_on_resumption(
    workflow_env: WorkflowEnvironment, event_store: EventStore, item_worker: ItemWorkerFactory
) -> None:
    env = workflow_env
    reg = governed(cst(9, 30, 15, 30))  # Wednesday; deadline 17:30 (2 working hours)
    with env.auto_time_skipping_disabled():
        clock = await BusinessClock.starting(env, reg.reported_at)
        async with item_worker() as queue:
            handle = await start(env, queue, reg, clock)
            await clock.at(cst(9, 30, 16, 36))  # the 50% warning (16:30) has fired
            await update(handle, cmd("suspend", cst(9, 30, 16, 40)))  # 70 working minutes used, 50 left
            await clock.at(cst(10, 2, 9, 58))  # nothing fires while suspended
            await update(handle, cmd("resume", cst(10, 2, 10, 0)))  # a holiday: counting restarts Thu 8 Oct
            state = await state_of(handle)
            assert state.clock("resolution").deadline == cst(10, 8, 9, 50)  # type: ignore[union-attr]
            await clock.at(cst(10, 8, 10, 0))
            await wait_for_types(event_store, reg.item_id, t.ITEM_ESCALATED)
            assert timeline(event_store, reg.item_id, *TIMER_EVENTS) == [
                (t.DEADLINE_WARNED, cst(9, 30, 16, 30), "0.50"),
                (t.DEADLINE_WARNED, cst(10, 8, 9, 20), "0.75"),  # 5400 − 4200 working seconds after 09:00
                (t.DEADLINE_WARNED, cst(10, 8, 9, 26), "0.80"),
                (t.TRAFFIC_LIGHT_CHANGED, cst(10, 8, 9, 26), "yellow"),
                (t.DEADLINE_BREACHED, cst(10, 8, 9, 50), "resolution"),
                (t.TRAFFIC_LIGHT_CHANGED, cst(10, 8, 9, 50), "red"),
                (t.ITEM_ESCALATED, cst(10, 8, 9, 50), "department_head"),
            ]
            [suspended] = of_type(stored(event_store, reg.item_id), t.ITEM_SUSPENDED)
            assert suspended.payload["remaining_seconds"] == 50 * 60
            await handle.terminate("test over")


async def test_a_deadline_and_applied_commands_survive_continue_as_new(
    workflow_env: WorkflowEnvironment, event_store: EventStore, item_worker: ItemWorkerFactory
) -> None:
    env = workflow_env
    reg = governed(cst(11, 2, 9, 0))
    with env.auto_time_skipping_disabled():
        clock = await BusinessClock.starting(env, reg.reported_at)
        async with item_worker() as queue:
            handle = await start(env, queue, reg, clock, continue_as_new_after=15)
            first_run = handle.first_execution_run_id
            await wait_for_types(event_store, reg.item_id, t.ITEM_ACCEPTED)
            call = cmd("grid_call", await clock.now(), actor="grid:wang", departments=["PWD"])
            await update(handle, call)
            current = env.client.get_workflow_handle(handle.id)
            for _ in range(100):  # the run continues as new once its history passes 15 events
                if (await current.describe()).run_id != first_run:
                    break
                await asyncio.sleep(0.1)
            assert (await current.describe()).run_id != first_run
            state = await current.query(SupervisionItemWorkflow.state)
            assert state is not None and call.command_id in state.applied_command_ids
            assert state.clock("resolution").deadline == cst(11, 2, 11, 0)  # type: ignore[union-attr]
            again = await current.execute_update(SupervisionItemWorkflow.apply_command, call)
            assert again.applied  # the repeat is acknowledged, not applied a second time
            await clock.at(cst(11, 2, 11, 5))
            await wait_for_types(event_store, reg.item_id, t.ITEM_ESCALATED)
            events = stored(event_store, reg.item_id)
            assert len(of_type(events, t.GRID_CALL_PLACED)) == 1
            [breach] = of_type(events, t.DEADLINE_BREACHED)
            assert breach.occurred_at == cst(11, 2, 11, 0)
            assert [e.sequence for e in events] == list(range(1, len(events) + 1))
            await current.terminate("test over")


async def test_an_illegal_role_is_refused_by_the_update_validator(
    workflow_env: WorkflowEnvironment, event_store: EventStore, item_worker: ItemWorkerFactory
) -> None:
    env = workflow_env
    reg = governed(cst(11, 2, 9, 0))
    with env.auto_time_skipping_disabled():
        clock = await BusinessClock.starting(env, reg.reported_at)
        async with item_worker() as queue:
            handle = await start(env, queue, reg, clock)
            await wait_for_types(event_store, reg.item_id, t.ITEM_ACCEPTED)
            with pytest.raises(WorkflowUpdateFailedError) as info:
                await update(handle, cmd("suspend", await clock.now(), role="handling_unit"))
            assert "role 'handling_unit' may not suspend" in str(info.value.cause)
            history = await handle.fetch_history()
            assert not [
                e
                for e in history.events
                if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
            ]
            await handle.terminate("test over")


async def test_every_exception_path_through_updates_and_signals(
    workflow_env: WorkflowEnvironment, event_store: EventStore, item_worker: ItemWorkerFactory
) -> None:
    """Return and re-dispatch, a grid call with a late report-in, a rating, rework, close-out; a
    rejected extension, a suspension and a merge; a cancel."""
    env = workflow_env
    a, b, c = (governed(cst(11, 2, 9, 0)) for _ in range(3))
    with env.auto_time_skipping_disabled():
        clock = await BusinessClock.starting(env, a.reported_at)
        async with item_worker() as queue:
            dispatch_only = [cmd("dispatch", a.reported_at, unit="U1", department="UM")]
            ha = await start(env, queue, a, clock, initial=dispatch_only)
            hb, hc = await start(env, queue, b, clock), await start(env, queue, c, clock)
            await wait_for_types(event_store, a.item_id, t.ITEM_DISPATCHED)
            at = cst(11, 2, 9, 5)
            for command in (
                cmd("return", at, reason="not our street"),
                cmd("dispatch", at, unit="U2", department="Greening"),
                cmd("accept", at, unit="U2"),
                cmd("grid_call", at, actor="grid:wang", departments=["PWD", "ISD"]),
                cmd("report_in", at, department="PWD", unit="PWD"),
            ):
                await update(ha, command)
            await clock.at(cst(11, 2, 9, 40))  # ISD's arrival deadline (09:35) passes
            await wait_for_types(event_store, a.item_id, t.REPORT_IN_OVERDUE)
            at = cst(11, 2, 9, 40)
            for command in (
                cmd("report_in", at, department="ISD", unit="ISD"),
                cmd("rate_responder", at, actor="grid:wang", department="ISD", rating=2),
                cmd("submit_rectification", at, unit="U2"),
                cmd("verify", at, passed=False, notes="still there"),
                cmd("submit_rectification", at, unit="U2", evidence=["after.jpg"]),
                cmd("verify", at),
                cmd("close", at),
            ):
                await ha.signal(SupervisionItemWorkflow.submit_command, command)
            result = await ha.result()
            assert (result.stage, result.on_time) == ("closed", True)
            late = [
                e.payload["late"]
                for e in stored(event_store, a.item_id)
                if e.event_type == t.DEPARTMENT_REPORTED_IN
            ]
            assert late == [False, True]
            assert [e for e in types_of(stored(event_store, a.item_id)) if e not in TIMER_EVENTS] == [
                t.ITEM_REGISTERED, t.ITEM_DISPATCHED, t.ITEM_RETURNED, t.ITEM_DISPATCHED, t.ITEM_ACCEPTED,
                t.GRID_CALL_PLACED, t.DEPARTMENT_REPORTED_IN, t.REPORT_IN_OVERDUE, t.DEPARTMENT_REPORTED_IN,
                t.RESPONDER_RATED, t.RECTIFICATION_SUBMITTED, t.RECTIFICATION_VERIFIED, t.REWORK_ORDERED,
                t.RECTIFICATION_SUBMITTED, t.RECTIFICATION_VERIFIED, t.ITEM_CLOSED,
            ]  # fmt: skip

            for command in (
                cmd("request_extension", at, new_deadline=cst(11, 3, 17, 30)),
                cmd("reject_extension", at, reason="two hours are enough"),
                cmd("suspend", at),
                cmd("resume", at),
                cmd("merge", at, into_item_id=a.item_id, reason="same pile"),
            ):
                await update(hb, command)
            assert (await hb.result()).stage == "merged"
            await update(hc, cmd("cancel", at, reason="not a city matter"))
            assert (await hc.result()).stage == "cancelled"
            kinds = [e for e in types_of(stored(event_store, b.item_id)) if e not in TIMER_EVENTS]
            assert kinds[3:] == [
                t.EXTENSION_REQUESTED, t.EXTENSION_REJECTED, t.ITEM_SUSPENDED, t.ITEM_RESUMED, t.ITEM_MERGED
            ]  # fmt: skip
            [merged] = of_type(stored(event_store, b.item_id), t.ITEM_MERGED)
            assert merged.payload["into_item_id"] == a.item_id


async def test_malformed_or_far_future_signals_are_refused_without_stopping_the_item(
    workflow_env: WorkflowEnvironment, event_store: EventStore, item_worker: ItemWorkerFactory
) -> None:
    """A signal dated without a UTC offset, one dated days ahead and one with an empty actor are each
    refused with the reason in ``state.rejected``; the command queued behind them still applies."""
    env = workflow_env
    reg = governed(cst(11, 2, 9, 0))
    with env.auto_time_skipping_disabled():
        clock = await BusinessClock.starting(env, reg.reported_at)
        async with item_worker() as queue:
            handle = await start(env, queue, reg, clock)
            await wait_for_types(event_store, reg.item_id, t.ITEM_ACCEPTED)
            now = await clock.now()
            naive = cmd("submit_rectification", now.replace(tzinfo=None))
            ahead = cmd("cancel", now + timedelta(days=10), reason="typo in the date")
            nobody = cmd("submit_rectification", now, actor="")
            good = cmd("submit_rectification", now)
            for command in (naive, ahead, nobody, good):
                await handle.signal(SupervisionItemWorkflow.submit_command, command)
            await wait_for_types(event_store, reg.item_id, t.RECTIFICATION_SUBMITTED)
            state = await state_of(handle)
            reasons = {r.command_id: r.reason for r in state.rejected}
            assert reasons[naive.command_id] == "occurred_at must be an aware datetime (with a UTC offset)"
            assert "in the future" in reasons[ahead.command_id]
            assert reasons[nobody.command_id] == "actor must not be empty"
            assert state.applied_command_ids[-1] == good.command_id and state.stage == "rectified"
            with pytest.raises(WorkflowUpdateFailedError) as info:  # an update is refused up front
                await update(handle, cmd("verify", now, actor=" "))
            assert "actor must not be empty" in str(info.value.cause)
            assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
            await handle.terminate("test over")
