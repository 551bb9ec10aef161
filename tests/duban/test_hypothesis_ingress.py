"""Issue 8, done when: hypothesis-generated hostile input, at least 500 per ingress, wedges and fails
nothing, stops no projector, is refused with a reason when refused, and leaves read models equal to
a rebuild from the event store.

Ingresses: registrations (workflow inputs) through the Temporal client; commands as signals and as
updates; messages on the events topic; ``duban adjust`` arguments. Every hypothesis example is one
input, sent to real servers that live across the examples (a dev server or the time-skipping test
server, Tansu, SQLite and PostgreSQL) on an event loop of their own; the whole-run checks follow the
examples. CI runs 500 derandomized examples per ingress; ``HYPOTHESIS_PROFILE=fuzz`` (``conftest``)
draws 5,000 new ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
from click.testing import CliRunner as ClickRunner
from helpers.hostile import (
    adjust_arguments,
    command_payload,
    event_message,
    numbered,
    realise,
    registration_payload,
)
from helpers.ingress import (
    dead_letter_count,
    encodable,
    gather,
    harness,
    raw_json,
    started_producer,
    task_failures,
    topic_settings,
    worker,
)
from helpers.items import cmd, litter, opening_commands, registration, three_items
from helpers.projections import fresh, rebuilt
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from activities.event_recording import EventRecorder
from duban.cli import app
from duban.jobs.simulate import quiet_runtime
from duban.stack.binaries import find_binary
from duban.stack.probes import ensure_topics
from events.codec import encode_event
from events.sql import make_engine
from events.store import EventStore
from projections import read_models as rm
from projections.consumer import ProjectionConsumer
from projections.projector import ItemProjector, table_checksum
from workflows.item_client import start_item
from workflows.item_workflow import ItemWorkflowInput

INPUTS = 500
"""Inputs per ingress that every test must have sent (hypothesis may run more while shrinking)."""

pytestmark = pytest.mark.filterwarnings(
    # aiokafka, running on the harness's thread, draws from the global ``random`` while hypothesis
    # draws an example; hypothesis mistakes that for a strategy using ``random``.
    "ignore:Do not use the `random` module inside strategies"
)


def recorded(event: Any) -> bool:
    """Whether a history event is a completed recording: an activity (histories before the local
    recording) or a local activity's marker."""
    if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
        return True
    return (
        event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        and event.marker_recorded_event_attributes.marker_name == "core_local_activity"
    )


async def settle(handle: WorkflowHandle[Any, Any]) -> tuple[str, str]:
    """("failed", reason) once the workflow failed, or ("running", "") once it recorded its events."""
    for _ in range(400):
        history = await handle.fetch_history()
        for event in history.events:
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
                return "failed", event.workflow_execution_failed_event_attributes.failure.message
        if any(recorded(e) for e in history.events):
            return "running", ""
        await asyncio.sleep(0.02)
    raise AssertionError(f"{handle.id} neither failed nor recorded its registration")


def test_hostile_registrations_fail_their_workflow_with_a_reason_or_start_it(tmp_path: Path) -> None:
    store = EventStore(make_engine(f"sqlite:///{tmp_path / 'r.db'}"))
    store.create()
    numbers = itertools.count()
    handles: list[WorkflowHandle[Any, Any]] = []
    outcomes: list[tuple[str, str]] = []
    with harness() as h:
        path = str(find_binary("temporal"))  # a dev server: far faster than time skipping here
        env = h.enter(
            h.run(WorkflowEnvironment.start_local(dev_server_existing_path=path, runtime=quiet_runtime()))
        )
        queue = "hostile-registrations"
        recorder = EventRecorder(store, None, "t")
        h.enter(h.run(worker(env, queue, recorder)))

        async def start(payload: Any, n: int) -> None:
            item_id = payload["registration"].get("item_id") if isinstance(payload, dict) else None
            ok = encodable(item_id) and len(item_id) < 900  # type: ignore[arg-type]
            now = await env.get_current_time()
            try:
                workflow_id = f"item-{item_id if ok else f'R{n}'}"
                handle = await env.client.start_workflow(
                    "SupervisionItemWorkflow", raw_json(realise(payload, now)), id=workflow_id,
                    task_queue=queue, id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                )  # fmt: skip
            except (RPCError, WorkflowAlreadyStartedError) as exc:  # refused by the server itself
                outcomes.append(("refused by the server", str(exc)))
                return
            handles.append(handle)
            outcomes.append(await settle(handle))

        @given(payload=registration_payload())
        def one(payload: Any) -> None:
            h.run(start(numbered(payload, next(numbers)), len(outcomes)))
            status, reason = outcomes[-1]
            assert status == "running" or reason.strip()  # a refusal always says why

        one()
        assert len(outcomes) >= INPUTS
        assert {s for s, _ in outcomes} >= {"running", "failed"}
        assert sum(h.run(gather(*(task_failures(x) for x in handles)))) == 0  # none wedged
        for handle in handles:
            with contextlib.suppress(RPCError):
                h.run(handle.terminate("test over"))


async def open_items(env: WorkflowEnvironment, queue: str) -> list[WorkflowHandle[Any, Any]]:
    """Two items for signals and two for updates: one without a rulebook and one under it, each."""
    now = await env.get_current_time()
    handles = []
    for n in range(4):
        if n % 2 == 0:
            reg, opening = registration(now, item_id=f"B-{uuid.uuid4().hex[:8]}"), opening_commands(now)
        else:
            reg = litter(now)
            reg.item_id = f"G-{uuid.uuid4().hex[:8]}"
            opening = [cmd("dispatch", now, unit="U1", department="UM"), cmd("accept", now)]
        handles.append(
            await start_item(env.client, ItemWorkflowInput(reg, opening, search_attributes=False), queue)
        )
    return handles


async def send(env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any], payload: Any, update: bool) -> str:
    """Send a command; for an update, the way it ended: ``applied`` or the refusal's type."""
    now = await env.get_current_time()
    if not update:
        await handle.signal("submit_command", raw_json(realise(payload, now)))
        return "signalled"
    try:
        await handle.execute_update("apply_command", raw_json(realise(payload, now)))
        return "applied"
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        assert isinstance(cause, ApplicationError) and cause.message.strip()
        return str(cause.type)


async def accounted_for(handle: WorkflowHandle[Any, Any], sent: list[Any]) -> None:
    """Wait until every signal ``sent`` to ``handle`` is accounted for, and check the accounts.

    Each signal is refused (counted in ``rejected_total``) or carries an applied command id (the first
    of an id applies; a later one changes nothing): so ``refused + signals with an applied id`` is at
    least the number sent, and ``refused + distinct applied ids`` at most that number.
    """
    for _ in range(300):
        state = await handle.query("state")
        pending = await handle.query("pending_commands")
        applied = set(state["applied_command_ids"])
        ids = [p.get("command_id") for p in sent if isinstance(p, dict)]
        with_applied_id = [i for i in ids if isinstance(i, str) and i in applied]
        if not pending and state["rejected_total"] + len(with_applied_id) >= len(sent):
            break
        await asyncio.sleep(0.05)
    assert pending == []  # none waiting
    assert state["rejected_total"] + len(with_applied_id) >= len(sent)  # none lost
    twice = [r for r in state["rejected"] if r["command_id"] in applied]
    assert state["rejected_total"] + len(set(with_applied_id)) <= len(sent), twice  # none counted twice
    assert all(r["reason"].strip() for r in state["rejected"])


def test_hostile_commands_are_applied_or_refused_with_a_reason(
    broker: str, pg_url: str, tmp_path: Path
) -> None:
    engine = make_engine(pg_url)
    fresh(engine)
    store = EventStore(engine)
    store.create()
    settings_ = topic_settings(broker, "commands")
    numbers = itertools.count()
    signals: dict[int, list[Any]] = {0: [], 1: []}
    updates: list[str] = []
    with harness() as h:
        path = str(find_binary("temporal-test-server"))
        env = h.enter(h.run(WorkflowEnvironment.start_time_skipping(test_server_existing_path=path,
                                                                    runtime=quiet_runtime())))  # fmt: skip
        h.stack.enter_context(env.auto_time_skipping_disabled())  # the examples drive no clock
        h.run(ensure_topics(settings_))
        producer = h.enter(started_producer(settings_))
        consumer = ProjectionConsumer(settings_, engine, group_id=f"g-{settings_.events_topic}")
        stop, projecting = h.background(consumer.run)
        queue = "hostile-commands"
        recorder = EventRecorder(store, producer, settings_.events_topic)
        h.enter(h.run(worker(env, queue, recorder)))
        items = h.run(open_items(env, queue))

        updating = st.booleans().flatmap(lambda up: st.tuples(st.just(up), command_payload(ahead_ok=not up)))

        @given(case=updating, which=st.integers(0, 1))
        def one(case: tuple[bool, Any], which: int) -> None:
            as_update, payload = case[0], numbered(case[1], next(numbers))
            target = items[2 + which] if as_update else items[which]
            outcome = h.run(send(env, target, payload, as_update))
            (updates if as_update else signals[which]).append(outcome if as_update else payload)
            assert outcome in ("signalled", "applied", "IllegalCommand", "MalformedCommand")

        one()
        assert len(updates) + len(signals[0]) + len(signals[1]) >= INPUTS
        h.run(env.sleep(timedelta(minutes=10)))  # the signals dated ahead wait for no timer now
        for which in (0, 1):
            h.run(accounted_for(items[which], signals[which]))
        assert {"applied", "IllegalCommand", "MalformedCommand"} <= set(updates)
        assert sum(h.run(gather(*(task_failures(x) for x in items)))) == 0  # none wedged
        for handle in items:
            assert h.run(handle.describe()).status.name == "RUNNING"
            h.run(handle.terminate("test over"))
        h.run(consumer.wait_caught_up(timeout_s=120))
        assert not projecting.done()  # the projector never stopped
        h.loop.call_soon_threadsafe(stop.set)
        projecting.result(30)
    assert table_checksum(engine, rm.READ_MODEL_TABLES) == rebuilt(engine, tmp_path)
    assert dead_letter_count(engine) == 0  # every stored event applies
    fresh(engine)
    engine.dispose()


EVENTS = three_items()
STORED = [encode_event(e) for e in EVENTS]


def test_hostile_messages_never_stop_the_projector(broker: str, pg_url: str, tmp_path: Path) -> None:
    engines = [make_engine(f"sqlite:///{tmp_path / 'm.db'}"), make_engine(pg_url)]
    sent = 0
    with harness() as h:
        consumers = []
        for engine in engines:  # one topic and one projector per database, the same messages
            fresh(engine)
            EventStore(engine).create()
            EventStore(engine).append(EVENTS)
            topic = topic_settings(broker, "messages")
            h.run(ensure_topics(topic))
            consumer = ProjectionConsumer(
                topic, engine, group_id=f"g-{topic.events_topic}", sweep_interval_s=3600
            )
            consumers.append((consumer, *h.background(consumer.run), topic))
        producer = h.enter(started_producer(consumers[0][3]))

        async def publish(value: bytes) -> None:
            for _, _, _, topic in consumers:
                await producer.send_and_wait(topic.events_topic, value, key=b"k")

        @given(message=event_message(STORED))
        def one(message: bytes) -> None:
            nonlocal sent
            h.run(publish(message))
            sent += 1
            assert not any(running.done() for _, _, running, _ in consumers)  # no projector stopped

        one()
        assert sent >= INPUTS
        for value in STORED:  # and then the stored events themselves
            h.run(publish(value))
        for consumer, stop, running, _ in consumers:
            h.run(consumer.wait_caught_up(timeout_s=120))
            assert not running.done()
            h.loop.call_soon_threadsafe(stop.set)
            running.result(30)
    outcomes = []
    for engine, (consumer, *_) in zip(engines, consumers, strict=True):
        assert consumer.totals.applied == len(EVENTS)
        with engine.connect() as conn:
            items = set(conn.execute(select(rm.item_view.c.item_id)).scalars())
            reasons = sorted(conn.execute(select(rm.dead_letters.c.reason)).scalars())
        assert items == {"P", "Q", "R"} and all(r.strip() for r in reasons)
        assert table_checksum(engine, rm.READ_MODEL_TABLES) == rebuilt(engine, tmp_path)
        outcomes.append(reasons)
        fresh(engine)
        engine.dispose()
    assert outcomes[0] == outcomes[1]  # the same dead letters, with the same reasons, on both databases


def test_hostile_adjustments_are_recorded_or_refused_with_the_field(broker: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    topic = topic_settings(broker, "adjust")
    asyncio.run(ensure_topics(topic))
    env = {
        "DUBAN_KAFKA_BOOTSTRAP": broker, "DUBAN_KAFKA_IDEMPOTENT": "false",
        "DUBAN_EVENTS_TOPIC": topic.events_topic, "DUBAN_DEAD_LETTER_TOPIC": topic.dead_letter_topic,
        "DUBAN_DATABASE_URL": url, "DUBAN_DATA_DIR": str(tmp_path),
    }  # fmt: skip
    numbers = itertools.count()
    runs: list[str] = []
    runner = ClickRunner()
    command = typer.main.get_command(app)  # built once: typer would rebuild it on every invoke

    @given(args=adjust_arguments())
    def one(args: list[str]) -> None:
        done = runner.invoke(command, numbered(args, next(numbers)), env=env)
        assert done.exit_code in (0, 2), (args, done.output, done.exception)  # never a traceback
        if done.exit_code == 2:
            assert done.output.startswith("error: ") or "Usage:" in done.output, (args, done.output)
        runs.append(
            "refused" if done.exit_code else "again" if "already recorded" in done.output else "recorded"
        )

    one()
    assert len(runs) >= INPUTS and {"refused", "recorded"} <= set(runs)
    engine = make_engine(url)
    store = EventStore(engine)
    assert store.count() == runs.count("recorded")
    ItemProjector(engine).catch_up()
    with engine.connect() as conn:
        applied = conn.execute(select(func.count()).select_from(rm.score_adjustments)).scalar_one()
    assert applied == store.count() and dead_letter_count(engine) == 0
    assert table_checksum(engine, rm.READ_MODEL_TABLES) == rebuilt(engine, tmp_path)


def test_the_profile_runs_at_least_the_inputs_the_issue_asks_for() -> None:
    assert settings().max_examples >= INPUTS
