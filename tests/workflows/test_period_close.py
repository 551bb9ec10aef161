"""Closing periods on time: the period each cadence closes, the closing workflow and activity on the
time-skipping server, and the refusal to close while the projection is behind."""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from helpers.items import three_items
from helpers.projections import records
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.period_closing import PeriodClosing
from duban.processes.worker import workflow_runner
from events.sql import make_engine
from events.store import EventStore
from projections.frozen_periods import read_snapshots
from projections.projector import ItemProjector
from projections.scoring import load_scorebook
from projections.store_sync import projection_lag
from workflows.period_close import PeriodCloseInput, PeriodCloseWorkflow, period_ended_before

SH = ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize(
    ("cadence", "local_now", "period"),
    [
        ("daily", datetime(2026, 11, 3, 0, 5, tzinfo=SH), "2026-11-02"),
        ("daily", datetime(2027, 1, 1, 0, 5, tzinfo=SH), "2026-12-31"),
        ("weekly", datetime(2026, 11, 9, 0, 5, tzinfo=SH), "2026-W45"),  # Monday: the week 2–8 Nov
        ("weekly", datetime(2026, 1, 5, 0, 5, tzinfo=SH), "2026-W01"),  # ISO week 1 began Mon 29 Dec 2025
        ("half-monthly", datetime(2026, 11, 16, 0, 5, tzinfo=SH), "2026-11-H1"),
        ("half-monthly", datetime(2026, 12, 1, 0, 5, tzinfo=SH), "2026-11-H2"),
        ("half-monthly", datetime(2026, 1, 1, 0, 5, tzinfo=SH), "2025-12-H2"),
        ("monthly", datetime(2026, 12, 1, 0, 5, tzinfo=SH), "2026-11"),
        ("monthly", datetime(2026, 1, 1, 0, 5, tzinfo=SH), "2025-12"),
    ],
)
def test_each_cadence_closes_the_period_that_just_ended(
    cadence: str, local_now: datetime, period: str
) -> None:
    assert period_ended_before(cadence, local_now) == period


def test_an_unknown_cadence_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown cadence 'hourly'"):
        period_ended_before("hourly", datetime(2026, 11, 3, tzinfo=SH))


async def test_the_closing_workflow_waits_for_the_projection_then_freezes(
    workflow_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'c.db'}")
    store = EventStore(engine)
    store.create()
    events = three_items()
    store.append(events)
    assert projection_lag(engine) == len(events)  # nothing projected yet: a close would have to wait
    ItemProjector(engine).apply_batch(records(events))
    assert projection_lag(engine) == 0
    queue = f"close-{uuid.uuid4().hex[:8]}"
    closing = PeriodClosing(engine, load_scorebook())
    async with Worker(
        workflow_env.client,
        task_queue=queue,
        workflows=[PeriodCloseWorkflow],
        activities=[closing.close_period],
        workflow_runner=workflow_runner(),
    ):
        closed = await workflow_env.client.execute_workflow(
            PeriodCloseWorkflow.run,
            PeriodCloseInput("daily", "Asia/Shanghai", period="2026-11-02"),
            id=f"close-test-{queue}",
            task_queue=queue,
        )
    assert (closed.period, closed.events_count, closed.scorebook_version) == (
        "2026-11-02",
        len(events),
        "2026.1",
    )
    [snapshot] = read_snapshots(engine, "2026-11-02", "category")
    assert snapshot.events_hash == closed.events_hash and snapshot.scores[0]["score"] == "66.77"
