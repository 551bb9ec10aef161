"""The Temporal Schedules that run ``PeriodCloseWorkflow`` after each daily, weekly, half-monthly and
monthly cut-off (``duban schedules``); the worker's ``close_period`` activity does the closing."""

from __future__ import annotations

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from workflows.period_close import CADENCES, PeriodCloseInput, PeriodCloseWorkflow


def schedule_id(cadence: str) -> str:
    """Id of the schedule of ``cadence``: ``duban-close-<cadence>``."""
    return f"duban-close-{cadence}"


def period_schedule(cadence: str, zone: str, task_queue: str) -> Schedule:
    """The schedule that closes each period of ``cadence`` five minutes after it ends in ``zone``."""
    return Schedule(
        action=ScheduleActionStartWorkflow(
            PeriodCloseWorkflow.run,
            PeriodCloseInput(cadence, zone),
            id=f"close-{cadence}",
            task_queue=task_queue,
        ),
        spec=ScheduleSpec(cron_expressions=[CADENCES[cadence]], time_zone_name=zone),
    )


async def install_schedules(client: Client, zone: str, task_queue: str) -> list[str]:
    """Create (or update) the four closing schedules; return their ids."""
    ids = []
    for cadence in CADENCES:
        schedule = period_schedule(cadence, zone, task_queue)
        try:
            await client.create_schedule(schedule_id(cadence), schedule)
        except ScheduleAlreadyRunningError:

            def replace(_: ScheduleUpdateInput, new: Schedule = schedule) -> ScheduleUpdate:
                return ScheduleUpdate(schedule=new)

            await client.get_schedule_handle(schedule_id(cadence)).update(replace)
        ids.append(schedule_id(cadence))
    return ids
