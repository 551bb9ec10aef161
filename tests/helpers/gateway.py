"""A running gateway for the tests: uvicorn on a free port over the real dev server, broker and a
database, with a worker recording events and the projection building the read models."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from sqlalchemy import Engine, func, select
from temporalio.testing import WorkflowEnvironment

from duban import wiring
from duban.config import Settings
from duban.gateway.app import create_app
from duban.gateway.context import open_gateway
from duban.gateway.keys import KeyStore, Scope
from duban.processes.worker import build_worker
from events.sql import make_engine
from events.store import stored_events
from helpers.servers import free_ports, topics_ready
from projections import read_models as rm
from projections.consumer import ProjectionConsumer


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
    env: WorkflowEnvironment, broker: str, database_url: str
) -> AsyncIterator[RunningGateway]:
    """Worker, projection and gateway on ``env``, ``broker`` and ``database_url``, stopped on exit."""
    tag = uuid.uuid4().hex[:8]
    settings = Settings(
        temporal_address=env.client.service_client.config.target_host,
        kafka_bootstrap=broker,
        kafka_idempotent=False,
        database_url=database_url,
        task_queue=f"gw-{tag}",
        events_topic=f"gw-events-{tag}",
        dead_letter_topic=f"gw-events-{tag}.dlq",
        topic_partitions=1,
    )
    await topics_ready(settings)
    engine = make_engine(database_url)
    port = free_ports(1)[0]
    app = create_app(lambda: open_gateway(settings, client=env.client))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    )
    async with (
        wiring.recording(settings, engine) as rec,
        build_worker(env.client, settings.task_queue, rec.recorder),
    ):
        stop = asyncio.Event()
        projection = asyncio.create_task(ProjectionConsumer(settings, engine, group_id=f"gw-{tag}").run(stop))
        serving = asyncio.create_task(server.serve())
        try:
            while not server.started:
                if serving.done():
                    serving.result()
                await asyncio.sleep(0.02)
            yield RunningGateway(f"http://127.0.0.1:{port}", settings, engine, env)
        finally:
            server.should_exit = True
            stop.set()
            await asyncio.gather(serving, projection, return_exceptions=True)
            engine.dispose()


def unique(prefix: str) -> str:
    """An item id no other test uses (the dev server is shared by the session)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"
