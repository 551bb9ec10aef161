"""``duban project``: the long-running projection service (events topic → read models)."""

from __future__ import annotations

import asyncio
import signal
from datetime import UTC, datetime

import structlog

from duban import observability as obs
from duban.config import Settings
from events.sql import make_engine
from projections.consumer import ProjectionConsumer
from projections.projector import BatchResult

log = structlog.get_logger(__name__)

STALL_CHECK_S = 30.0
"""How often the service checks that its consumer still polls (ENGINEERING.md: aiokafka#1154)."""
STALLED_AFTER_S = 60.0
"""A consumer that has not polled for this long (seconds) is reported not ready on ``/readyz``."""


class ProjectorStatus:
    """What ``/metrics`` and ``/readyz`` of ``duban project`` report about ``consumer``: the totals
    since the last scrape are added to the counters, the backlogs read at each scrape."""

    def __init__(self, consumer: ProjectionConsumer) -> None:
        self.consumer = consumer
        self._counted = BatchResult()

    async def refresh(self) -> None:
        """Bring the projection metrics of ``duban.observability`` up to date (database and broker
        are asked; a partition lag needs the consumer running)."""
        totals = self.consumer.totals
        obs.PROJECTION_APPLIED.inc(totals.applied - self._counted.applied)
        obs.PROJECTION_DEAD.inc(totals.dead_lettered - self._counted.dead_lettered)
        self._counted = totals
        if self.consumer.last_poll_at is not None:
            obs.LAST_POLL.set(self.consumer.last_poll_at.timestamp())
        obs.PROJECTION_BACKLOG.set(await self.consumer.lag())
        try:
            lags = await self.consumer.kafka_lag()
        except Exception as exc:  # not running now (the broker is away): keep the last figures
            log.info("projector.partition_lag_unknown", error=type(exc).__name__)
            return
        for partition, lag in lags.items():
            obs.PARTITION_LAG.labels(str(partition)).set(lag)

    async def checks(self) -> dict[str, str]:
        """``{"database", "consumer"}``: the database answers; the consumer polled within
        ``STALLED_AFTER_S`` seconds."""
        polled = self.consumer.last_poll_at
        if polled is None:
            consumer = "has not polled yet (is the broker up?)"
        elif (age := (datetime.now(UTC) - polled).total_seconds()) > STALLED_AFTER_S:
            consumer = f"last polled {age:.0f} s ago"
        else:
            consumer = "ok"
        return {"database": await obs.database_answers(self.consumer.engine), "consumer": consumer}


async def run_projector(settings: Settings, status_port: int = 0, status_host: str = "127.0.0.1") -> None:
    """Consume ``settings.events_topic`` into the read models until SIGINT/SIGTERM.

    Positions are stored with the rows, so a restart resumes exactly where the last transaction
    ended; the store is swept for events the topic never delivered. The backlog (stored events not
    yet applied) and the time of the last poll are logged every ``STALL_CHECK_S`` seconds. With
    ``status_port`` (not 0), ``/metrics``, ``/healthz`` and ``/readyz`` are served on it
    (``duban.observability``).
    """
    engine = make_engine(settings.database)
    consumer = ProjectionConsumer(settings, engine)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    task = asyncio.create_task(consumer.run(stop))
    serving = None
    if status_port:
        status = ProjectorStatus(consumer)
        app = obs.status_app(status.checks, status.refresh)
        serving = asyncio.create_task(obs.serve_status(app, status_host, status_port, stop))
    log.info("projector.started", topic=settings.events_topic, database=engine.url.render_as_string())
    stopping = asyncio.create_task(stop.wait())
    while not stop.is_set() and not task.done():
        await asyncio.wait({task, stopping}, timeout=STALL_CHECK_S, return_when=asyncio.FIRST_COMPLETED)
        if not task.done() and not stop.is_set():
            try:
                backlog: int | str = await consumer.lag()
            except Exception as exc:  # the database does not answer now: say so, keep projecting
                backlog = f"unknown ({type(exc).__name__})"
            log.info(
                "projector.heartbeat",
                last_poll_at=str(consumer.last_poll_at),
                backlog=backlog,
                totals=str(consumer.totals),
                restarts=consumer.restarts,
            )
    stop.set()
    await stopping
    if serving is not None:
        await serving
    await task  # re-raises what stopped the consumer (e.g. an unreachable broker)
    log.info("projector.stopped")
