"""Closing reporting periods on time: the pure choice of the period that just ended, and
``PeriodCloseWorkflow``, started by Temporal Schedules in the area's time zone (DOMAIN.md "Cadence":
daily, weekly, half-monthly and monthly cut-offs).

Each scheduled run closes the period of its cadence that ended before the run (or ``period`` when
given, for a backfill) with the ``close_period`` activity, which waits for the projection to catch
up before it freezes anything; after a weekly, half-monthly or monthly close the
``produce_documents`` activity makes and stores that period's notice in every format (behind the
patch ``period-documents``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from workflows.activity_contracts import (
        PeriodClosed,
        ProduceDocumentsInput,
        close_period,
        produce_documents,
    )

__all__ = ["CADENCES", "PeriodCloseInput", "PeriodCloseWorkflow", "PeriodClosed", "period_ended_before"]

CADENCES = {
    "daily": "5 0 * * *",  # 00:05 every day
    "weekly": "5 0 * * 1",  # 00:05 on Mondays
    "half-monthly": "5 0 1,16 * *",  # 00:05 on the 1st and the 16th
    "monthly": "5 0 1 * *",  # 00:05 on the 1st
}
"""Cron expression of each cadence, read in the area's time zone; five minutes after the cut-off."""

CLOSE_TIMEOUT = timedelta(minutes=10)
DOCUMENTS_TIMEOUT = timedelta(minutes=10)
DOCUMENTS_PATCH = "period-documents"
"""``workflow.patched`` id of the documents made after a weekly, half-monthly or monthly close."""
DOCUMENT_CADENCES = ("weekly", "half-monthly", "monthly")


def period_ended_before(cadence: str, local_now: datetime) -> str:
    """The period of ``cadence`` that ended most recently at or before ``local_now`` (a local time in
    the area's zone), spelled as ``projections.periods`` reads it.

    Raises:
        ValueError: unknown cadence.
    """
    today = local_now.date()
    if cadence == "daily":
        return (today - timedelta(days=1)).isoformat()
    if cadence == "weekly":
        year, week, _ = (today - timedelta(days=today.isoweekday())).isocalendar()
        return f"{year}-W{week:02d}"
    if cadence == "half-monthly":
        if today.day >= 16:
            return f"{today:%Y-%m}-H1"
        return f"{today.replace(day=1) - timedelta(days=1):%Y-%m}-H2"
    if cadence == "monthly":
        return f"{today.replace(day=1) - timedelta(days=1):%Y-%m}"
    raise ValueError(f"unknown cadence {cadence!r}; expected one of {', '.join(CADENCES)}")


@dataclass
class PeriodCloseInput:
    """What a scheduled run closes: the last period of ``cadence`` ended in ``zone`` (IANA), or
    ``period`` when given."""

    cadence: str
    zone: str
    period: str = ""


@workflow.defn
class PeriodCloseWorkflow:
    """Close one reporting period (id ``close-<cadence>-…`` from its schedule)."""

    @workflow.run
    async def run(self, input: PeriodCloseInput) -> PeriodClosed:
        local_now = workflow.now().astimezone(ZoneInfo(input.zone))
        period = input.period or period_ended_before(input.cadence, local_now)
        closed = await workflow.execute_activity(
            close_period,
            period,
            start_to_close_timeout=CLOSE_TIMEOUT,
            retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=1)),
        )
        if input.cadence in DOCUMENT_CADENCES and workflow.patched(DOCUMENTS_PATCH):
            closed.documents = await workflow.execute_activity(
                produce_documents,
                ProduceDocumentsInput(input.cadence, closed.period),
                start_to_close_timeout=DOCUMENTS_TIMEOUT,
                retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=1)),
            )
        return closed
