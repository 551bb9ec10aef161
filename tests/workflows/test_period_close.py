"""Closing periods on time: the period each cadence closes, the closing workflow and activity on the
time-skipping server, and the refusal to close while the projection is behind."""

from __future__ import annotations

import hashlib
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
from workflows.period_close import PeriodClosed, PeriodCloseInput, PeriodCloseWorkflow, period_ended_before

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


async def close(env: WorkflowEnvironment, queue: str, input: PeriodCloseInput) -> PeriodClosed:
    """Run the close on ``queue`` to its result. Time skipping is off: with no timer to skip to, the
    test server would jump the shared clock to its ten-year default while the result is awaited."""
    with env.auto_time_skipping_disabled():
        return await env.client.execute_workflow(
            PeriodCloseWorkflow.run, input, id=f"close-test-{queue}", task_queue=queue
        )


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
        closed = await close(
            workflow_env, queue, PeriodCloseInput("daily", "Asia/Shanghai", period="2026-11-02")
        )
    assert (closed.period, closed.events_count, closed.scorebook_version) == (
        "2026-11-02",
        len(events),
        "2026.1",
    )
    [snapshot] = read_snapshots(engine, "2026-11-02", "category")
    assert snapshot.events_hash == closed.events_hash and snapshot.scores[0]["score"] == "66.77"


async def test_a_weekly_close_makes_and_stores_the_weeks_notice_in_every_format(
    workflow_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    from activities.document_production import DocumentProduction
    from duban.config import Settings
    from duban.documents.store import DocumentStore
    from duban.processes.worker import producer

    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    EventStore(engine).create()
    events = three_items()
    EventStore(engine).append(events)
    ItemProjector(engine).apply_batch(records(events))
    queue = f"close-{uuid.uuid4().hex[:8]}"
    closing = PeriodClosing(engine, load_scorebook())
    documents = DocumentProduction(producer(Settings(documents_lang="en"), engine))
    async with Worker(
        workflow_env.client,
        task_queue=queue,
        workflows=[PeriodCloseWorkflow],
        activities=[closing.close_period, documents.produce_documents],
        workflow_runner=workflow_runner(),
    ):
        closed = await close(
            workflow_env, queue, PeriodCloseInput("weekly", "Asia/Shanghai", period="2026-W45")
        )
    stored = DocumentStore(engine).list("2026-W45")
    assert sorted(d.format for d in stored) == ["docx", "html", "pdf", "xlsx"]
    assert {(d.kind, d.lang, d.provisional, d.events_hash) for d in stored} == {
        ("weekly", "en", False, closed.events_hash)
    }
    assert sorted(closed.documents) == sorted(f"{d.document_id} {d.format} sha256:{d.sha256}" for d in stored)
    for d in stored:  # each stored document is the bytes its hash names
        record, content = DocumentStore(engine).content(d.document_id) or (None, b"")
        assert record is not None and hashlib.sha256(content).hexdigest() == d.sha256
