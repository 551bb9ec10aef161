"""The ``close_period`` activity: freeze a period once the projection has caught up with the store,
then record the interviews a closed month calls (``projections.interviews``)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from projections.frozen_periods import ProjectionBehind, freeze_when_projected
from projections.interviews import record_interviews
from projections.scoring import Scorebook
from workflows.period_close import PeriodClosed


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
        record_interviews(self.engine, first.period, first.frozen_at, first.scorebook_version)
        return PeriodClosed(first.period, first.events_count, first.events_hash, first.scorebook_version)
