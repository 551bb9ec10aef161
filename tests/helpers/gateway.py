"""A running gateway for the tests: uvicorn on a free port over the real dev server, broker and a
database, with a worker recording events and the projection building the read models."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import uvicorn
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from sqlalchemy import Engine, func, select
from temporalio.testing import WorkflowEnvironment

from activities.webhooks import WebhookDelivery, WebhookStore
from duban import wiring
from duban.config import Settings
from duban.gateway.app import DispatchOptions, create_app
from duban.gateway.bridge import BridgeOptions
from duban.gateway.context import open_gateway
from duban.gateway.keys import KeyStore, Scope
from duban.processes.worker import build_worker
from events.sql import make_engine
from events.store import EventStore, stored_events
from helpers.servers import free_ports, topics_ready
from projections import read_models as rm
from projections.consumer import ProjectionConsumer

SHANGHAI = ZoneInfo("Asia/Shanghai")
CALENDAR_FILE = Path(__file__).resolve().parents[2] / "events" / "calendars" / "china.yaml"


def china_working_days() -> Callable[[date], bool]:
    """Whether a day is a working day on China's calendar as its file lists it (weekdays but the
    holidays, and the make-up working days), read here without duban's calendar code."""
    versions = yaml.safe_load(CALENDAR_FILE.read_text(encoding="utf-8"))["versions"]
    today = datetime.now(UTC).date()
    version = max((v for v in versions if v["effective_from"] <= today), key=lambda v: v["effective_from"])
    holidays, makeup = set(version["holidays"]), set(version.get("makeup_workdays") or [])
    return lambda day: day in makeup or (day.weekday() < 5 and day not in holidays)


def _reported() -> datetime:
    """10:00 in Asia/Shanghai on the last working day before today there: recent enough that the
    commands the tests send now meet every deadline, and no timer (a reminder, the light turning
    yellow at 80%) has fired when the item is registered."""
    working = china_working_days()
    day = datetime.now(SHANGHAI).date() - timedelta(days=1)
    while not working(day):
        day -= timedelta(days=1)
    return datetime.combine(day, time(10), SHANGHAI)


REPORTED_AT = _reported()
REPORTED = REPORTED_AT.isoformat()
"""The gateway tests' report time (``_reported``), an ISO-8601 string with its +08:00 offset."""


def greenery_deadline() -> datetime:
    """Greenery's resolution deadline for an item reported at ``REPORTED`` (the default rulebook: 5
    working days, DOMAIN.md anchor): the close of business (17:30) of the 5th working day after the
    report's day, counted by hand on the calendar file (``china_working_days``); Asia/Shanghai."""
    working, day, counted = china_working_days(), REPORTED_AT.date(), 0
    while counted < 5:
        day += timedelta(days=1)
        counted += working(day)
    return datetime.combine(day, time(17, 30), SHANGHAI)


PERSON = {"dispatcher": "zhao", "handling_unit": "li", "inspector": "chen"}


def command(kind: str, role: str, n: int, **fields: Any) -> dict[str, Any]:
    """A command body of ``kind`` dated now, asserted by the person of ``role``."""
    now = datetime.now(UTC).isoformat()
    return {
        "command_id": f"c{n}-{kind}",
        "kind": kind,
        "actor": PERSON[role],
        "role": role,
        "occurred_at": now,
    } | fields


LIFECYCLE = [
    ("dispatch", "dispatcher", {"unit": "parks-team-3", "department": "parks"}),
    ("accept", "handling_unit", {"unit": "parks-team-3"}),
    ("submit_rectification", "handling_unit", {"unit": "parks-team-3", "evidence": ["photo://1"]}),
    ("verify", "inspector", {"unit": "inspection", "passed": True}),
    ("close", "dispatcher", {}),
]

EXPECTED_EVENTS = [
    "ItemRegistered",
    "ItemDispatched",
    "ItemAccepted",
    "RectificationSubmitted",
    "RectificationVerified",
    "ItemClosed",
]


@dataclass
class RunningGateway:
    """A gateway at ``url`` (``http://127.0.0.1:<port>``) on ``settings``; ``engine`` is its database."""

    url: str
    settings: Settings
    engine: Engine
    env: WorkflowEnvironment

    def key(
        self,
        integrator: str = "hotline",
        kinds: str = "*",
        roles: str = "*",
        departments: str = "*",
        towns: str = "*",
    ) -> str:
        """A new key's full text, with the scope given (comma-separated, ``*`` for any)."""
        _, text = KeyStore(self.engine).create(integrator, Scope.of(kinds, roles, departments, towns))
        return text

    def http(self, key: str | None = None) -> httpx.AsyncClient:
        headers = {"X-API-Key": key} if key else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30)

    async def publish(self, envelopes: list[tuple[bytes, bytes]]) -> None:
        """Publish ``(key, value)`` messages to the commands topic, in order."""
        producer = AIOKafkaProducer(bootstrap_servers=self.settings.kafka_target)
        await producer.start()
        try:
            for key, value in envelopes:
                await producer.send_and_wait(self.settings.commands_topic, value, key=key)
        finally:
            await producer.stop()

    async def read_until(
        self, topic: str, wanted: Callable[[dict[str, Any]], bool], count: int = 1, timeout_s: float = 60
    ) -> list[tuple[bytes, dict[str, Any]]]:
        """The messages of ``topic`` from its start, as (key, JSON value), once ``count`` of them are
        ``wanted``."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.kafka_target, enable_auto_commit=False)
        await consumer.start()  # no consumer group: assigned by hand, read from the start (no join wait)
        found: list[tuple[bytes, dict[str, Any]]] = []
        try:
            await consumer.topics()  # fetches the metadata that partitions_for_topic reads
            partitions = [
                TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
            ]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            for _ in range(int(timeout_s / 0.5)):
                batch = await consumer.getmany(timeout_ms=500)
                found += [(m.key or b"", json.loads(m.value or b"")) for msgs in batch.values() for m in msgs]
                if sum(1 for _, value in found if wanted(value)) >= count:
                    return found
        finally:
            await consumer.stop()
        raise AssertionError(f"{topic} holds {len(found)} messages, not {count} wanted: {found}")

    def webhook_rows(self, subscription_id: str, status: str) -> list[dict[str, Any]]:
        """The delivery records of a subscription with ``status``."""
        return WebhookStore(self.engine).deliveries(subscription_id, status)

    def counts(self) -> tuple[int, int]:
        """(stored events, item_view rows): what a refused request must leave unchanged."""
        with self.engine.connect() as conn:
            events = conn.execute(select(func.count()).select_from(stored_events)).scalar_one()
            views = conn.execute(select(func.count()).select_from(rm.item_view)).scalar_one()
        return int(events), int(views)

    async def settled_counts(self) -> tuple[int, int]:
        """``counts()`` once they hold still for half a second (earlier tests' events projected)."""
        last = self.counts()
        for _ in range(100):
            await asyncio.sleep(0.5)
            now = self.counts()
            if now == last:
                return now
            last = now
        raise AssertionError("the event store and read models never held still")

    async def projected(self, item_id: str, stage: str, timeout_s: float = 30) -> Any:
        """The ``item_view`` row of ``item_id`` once it shows ``stage`` (polled)."""
        for _ in range(int(timeout_s / 0.1)):
            with self.engine.connect() as conn:
                row = conn.execute(select(rm.item_view).where(rm.item_view.c.item_id == item_id)).first()
            if row is not None and row.stage == stage:
                return row
            await asyncio.sleep(0.1)
        raise AssertionError(f"item {item_id} did not reach {stage} in the read models: {row}")


@asynccontextmanager
async def running_gateway(
    env: WorkflowEnvironment,
    broker: str,
    database_url: str,
    with_bridge: bool = False,
    with_webhooks: bool = False,
    **overrides: Any,
) -> AsyncIterator[RunningGateway]:
    """Worker, projection and gateway (and the command topic bridge ``with_bridge``, the webhook
    dispatcher and deliveries ``with_webhooks``) on ``env``, ``broker`` and ``database_url``, stopped
    on exit; ``overrides`` are further ``Settings`` fields."""
    tag = uuid.uuid4().hex[:8]
    settings = replace(
        Settings(
            temporal_address=env.client.service_client.config.target_host,
            kafka_bootstrap=broker,
            kafka_idempotent=False,
            database_url=database_url,
            task_queue=f"gw-{tag}",
            events_topic=f"gw-events-{tag}",
            dead_letter_topic=f"gw-events-{tag}.dlq",
            topic_partitions=1,
            commands_topic=f"gw-commands-{tag}",
            command_results_topic=f"gw-results-{tag}",
            commands_dead_letter_topic=f"gw-commands-{tag}.dlq",
        ),
        **overrides,
    )
    await topics_ready(settings)
    engine = make_engine(database_url)
    port = free_ports(1)[0]
    bridge = BridgeOptions(f"bridge-{tag}", session_timeout_s=2.0) if with_bridge else None
    dispatch = DispatchOptions(poll_s=0.2, settle_s=5.0) if with_webhooks else None
    app = create_app(lambda: open_gateway(settings, client=env.client), bridge, dispatch)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    )
    webhook_store = WebhookStore(engine)
    webhook_store.create()
    deliveries = WebhookDelivery(webhook_store, EventStore(engine)) if with_webhooks else None
    async with (
        wiring.recording(settings, engine) as rec,
        build_worker(env.client, settings.task_queue, rec.recorder, webhooks=deliveries),
    ):
        stop = asyncio.Event()
        projection = asyncio.create_task(ProjectionConsumer(settings, engine, group_id=f"gw-{tag}").run(stop))
        serving = asyncio.create_task(server.serve())
        try:
            for _ in range(3000):  # a minute at most: a gateway that cannot start fails the test
                if server.started:
                    break
                if serving.done():
                    serving.result()
                await asyncio.sleep(0.02)
            else:
                raise AssertionError("the gateway did not start within a minute")
            yield RunningGateway(f"http://127.0.0.1:{port}", settings, engine, env)
        finally:
            server.should_exit = True
            stop.set()
            await asyncio.gather(serving, projection, return_exceptions=True)
            engine.dispose()


def unique(prefix: str) -> str:
    """An item id no other test uses (the dev server is shared by the session)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"
