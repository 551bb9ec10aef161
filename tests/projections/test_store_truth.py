"""Issue 8, findings 4 and 5: the read models reach exactly what the event store holds.

- A broker restarted empty (the embedded one keeps nothing) while the projection is behind: the
  worker recreates the topics and goes on publishing, the projection notices its stored positions
  lie beyond the new topic's end and catches up from the store, and ends equal to a rebuild from the
  store, checksum for checksum. Before, 64 % of the stored events never reached the read models and
  ``lag()`` said 0.
- A retried recording publishes the stored rows (with the time they were first recorded), so a
  period closed between the two attempts counts the event the same way live and in a rebuild.
- ``duban close-period`` refuses while stored events are not yet projected.

Each runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from helpers.items import INSPECTOR, command, opening_commands, registration, three_items
from helpers.projections import fresh, rebuilt
from helpers.servers import Tansu, free_ports, topics_ready
from sqlalchemy import Engine, func, select
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from typer.testing import CliRunner

from activities.event_recording import EventRecorder
from activities.item_lookup import ItemLookup
from duban.cli import app
from duban.config import Settings
from duban.kafka import make_producer
from duban.processes.worker import workflow_runner
from duban.stack.probes import ensure_topics
from events.codec import encode_event
from events.sql import make_engine
from events.store import EventStore
from projections import read_models as rm
from projections.consumer import ProjectionConsumer
from projections.frozen_periods import freeze_period
from projections.projector import ItemProjector, RawMessage, table_checksum
from projections.scoring import load_scorebook
from workflows.activity_contracts import RecordEventsInput
from workflows.item_client import apply_command, start_item
from workflows.item_workflow import ItemWorkflowInput, SupervisionItemWorkflow


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 't.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    eng = make_engine(url)
    fresh(eng)
    EventStore(eng).create()
    yield eng
    fresh(eng)
    eng.dispose()


def applied_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(rm.applied_events)).scalar_one())


PER_ITEM = 6  # registered, dispatched, accepted, rectified, verified, closed


async def run_items(env: WorkflowEnvironment, queue: str, count: int) -> None:
    """``count`` items from registration to close-out (7 events each with the opening commands)."""

    async def one() -> None:
        now = await env.get_current_time()
        reg = registration(now)
        handle = await start_item(
            env.client, ItemWorkflowInput(reg, opening_commands(now), search_attributes=False), queue
        )
        for kind in ("submit_rectification", "verify", "close"):
            await apply_command(
                handle, command(kind, now, INSPECTOR if kind != "submit_rectification" else "unit:x")
            )
        await handle.result()

    await asyncio.gather(*(one() for _ in range(count)))


async def test_a_broker_restarted_empty_mid_run_loses_nothing(
    workflow_env: WorkflowEnvironment, engine: Engine, tmp_path: Path
) -> None:
    tansu = Tansu(free_ports(1)[0], tmp_path / "tansu.log")
    tansu.start()
    topic = f"events-{uuid.uuid4().hex[:8]}"
    settings = Settings(kafka_bootstrap=tansu.address, kafka_idempotent=False, events_topic=topic,
                        dead_letter_topic=f"{topic}.dlq")  # fmt: skip
    await topics_ready(settings)
    store = EventStore(engine)
    producer = make_producer(settings)
    await producer.start()
    recorder = EventRecorder(store, producer, topic, lambda: ensure_topics(settings), publish_timeout_s=3.0)
    queue = f"restart-{uuid.uuid4().hex[:8]}"
    try:
        with workflow_env.auto_time_skipping_disabled():
            async with Worker(
                workflow_env.client, task_queue=queue, workflows=[SupervisionItemWorkflow],
                activities=[recorder.record_events, ItemLookup(store).item_registered],
                workflow_runner=workflow_runner(),
            ):  # fmt: skip
                first = ProjectionConsumer(settings, engine, group_id=f"a-{topic}", sweep_interval_s=3600)
                stop = asyncio.Event()
                running = asyncio.create_task(first.run(stop))
                await run_items(workflow_env, queue, 6)
                await first.wait_caught_up(timeout_s=60)
                stop.set()
                await running
                projected = applied_count(engine)
                assert projected == store.count() == 6 * PER_ITEM

                await run_items(workflow_env, queue, 6)  # the projection is stopped: it falls behind
                tansu.kill()
                tansu.start()  # empty: no topics, offsets start again at 0
                await run_items(workflow_env, queue, 2)  # publishing recreates the topic
        assert store.count() == 14 * PER_ITEM and applied_count(engine) == projected
        second = ProjectionConsumer(settings, engine, group_id=f"b-{topic}")
        assert await second.lag() == 8 * PER_ITEM  # the true backlog, whatever the new topic holds
        stop = asyncio.Event()
        running = asyncio.create_task(second.run(stop))
        try:
            for _ in range(600):  # the store's backlog, then the new topic's records (after the check
                # that the old positions lie beyond the new topic's end, which takes a few seconds)
                if await second.lag() == 0 and sum(second.stored_positions().values()) == 2 * PER_ITEM:
                    break
                await asyncio.sleep(0.1)
        finally:
            stop.set()
            await running
        assert await second.lag() == 0 and applied_count(engine) == store.count()
        # the positions of the old topic were dropped: they now count the new topic's records only
        assert sum(second.stored_positions().values()) == 2 * PER_ITEM
        assert table_checksum(engine, rm.READ_MODEL_TABLES) == rebuilt(engine, tmp_path)
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(rm.dead_letters)).scalar_one() == 0
    finally:
        await producer.stop()
        tansu.stop()


async def test_a_retried_recording_publishes_what_the_store_holds(
    broker: str, engine: Engine, tmp_path: Path
) -> None:
    topic = f"retry-{uuid.uuid4().hex[:8]}"
    settings = Settings(kafka_bootstrap=broker, kafka_idempotent=False, events_topic=topic,
                        dead_letter_topic=f"{topic}.dlq")  # fmt: skip
    await topics_ready(settings)
    store = EventStore(engine)
    events = three_items()  # all on 2026-11-02, Asia/Shanghai
    # First attempt: stored, then the publish is lost (no producer: as if the broker failed).
    await EventRecorder(store, None, topic).record_events(RecordEventsInput(events))
    stored = {e.event_id: encode_event(e) for e in store.read()}
    ItemProjector(engine)
    freeze_period(engine, "2026-11-02", load_scorebook(), datetime.now(UTC))  # closed meanwhile
    producer = make_producer(settings)
    await producer.start()
    try:
        await asyncio.sleep(0.01)  # the retry runs later: a new recorded_at would count it late
        result = await EventRecorder(store, producer, topic).record_events(RecordEventsInput(events))
    finally:
        await producer.stop()
    assert (result.stored, result.published) == (0, len(events))
    published = await read_topic(broker, topic, len(events))
    assert {json.loads(v)["event_id"]: v for v in published} == stored  # byte for byte: first times
    ItemProjector(engine).apply_batch([RawMessage(topic, 0, i, None, v) for i, v in enumerate(published)])
    assert applied_count(engine) == len(events)
    assert table_checksum(engine, rm.READ_MODEL_TABLES) == rebuilt(engine, tmp_path)  # nothing late


async def read_topic(bootstrap: str, topic: str, count: int) -> list[bytes]:
    """The first ``count`` records of every partition of ``topic``."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)  # fmt: skip
    await consumer.start()
    out: list[Any] = []
    try:
        while len(out) < count:
            batch = await asyncio.wait_for(consumer.getmany(timeout_ms=500), 30)
            out += [r.value for records in batch.values() for r in records]
    finally:
        await consumer.stop()
    return out


def test_close_period_refuses_until_the_projection_has_the_stored_events(engine: Engine) -> None:
    events = three_items()
    EventStore(engine).append(events)
    ItemProjector(engine)  # read models, nothing applied yet
    url = engine.url.render_as_string(hide_password=False)
    args = ["close-period", "--period", "2026-11-02", "--wait", "0", "--database-url", url]
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 2
    assert done.output == (
        f"error: period 2026-11-02 cannot be closed yet: the projection has {len(events)} stored events "
        "to apply (is duban project running?)\n"
    )
    ItemProjector(engine).catch_up()
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0 and f"{len(events)} events" in done.output, done.output


def test_close_period_refuses_an_open_period_at_once_and_a_wait_beyond_a_day(engine: Engine) -> None:
    EventStore(engine).append(three_items())
    ItemProjector(engine)  # behind: a period that has not ended is refused before any waiting
    url = engine.url.render_as_string(hide_password=False)
    today = datetime.now(UTC).date().isoformat()
    started = time.monotonic()
    done = CliRunner().invoke(
        app, ["close-period", "--period", today, "--wait", "600", "--database-url", url]
    )
    assert done.exit_code == 2 and done.output.startswith(f"error: period: {today} has not ended yet")
    assert time.monotonic() - started < 300  # it did not wait out the 600 s
    done = CliRunner().invoke(
        app, ["close-period", "--period", "2026-11-02", "--wait", "1e9", "--database-url", url]
    )
    assert (done.exit_code, done.output) == (2, "error: wait: must be a number of seconds from 0 to 86400\n")
