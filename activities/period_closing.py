"""The ``close_period`` activity and the Temporal Schedules that run ``PeriodCloseWorkflow``."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine
from temporalio import activity
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.exceptions import ApplicationError

from projections import read_models as rm
from projections.frozen_periods import ProjectionBehind, freeze_when_projected
from projections.scoring import Scorebook
from projections.store_sync import backlog
from workflows.period_close import CADENCES, PeriodClosed, PeriodCloseInput, PeriodCloseWorkflow


def projection_lag(engine: Engine) -> int:
    """Stored events the projection has not yet handled (0 when it has caught up with the store)."""
    rm.create_tables(engine)
    return backlog(engine)


class PeriodClosing:
    """Holds the database and the scorebook; ``close_period`` is the activity."""

    def __init__(self, engine: Engine, scorebook: Scorebook) -> None:
        self.engine, self.scorebook = engine, scorebook

    @activity.defn(name="close_period")
    async def close_period(self, period: str) -> PeriodClosed:
        """Freeze ``period`` once the projection has applied every stored event (else fail and be
        retried). Closing a closed period returns its snapshot unchanged."""
        try:
            [first, *_] = freeze_when_projected(self.engine, period, self.scorebook, datetime.now(UTC))
        except ProjectionBehind as exc:  # retried by Temporal until the projection has caught up
            raise ApplicationError(str(exc), type="ProjectionBehind") from exc
        return PeriodClosed(first.period, first.events_count, first.events_hash, first.scorebook_version)


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
