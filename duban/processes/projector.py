"""``duban project``: the long-running projection service (events topic → read models)."""

from __future__ import annotations

import asyncio
import signal

import structlog

from duban.config import Settings
from events.sql import make_engine
from projections.consumer import ProjectionConsumer

log = structlog.get_logger(__name__)

STALL_CHECK_S = 30.0
"""How often the service checks that its consumer still polls (ENGINEERING.md: aiokafka#1154)."""


async def run_projector(settings: Settings) -> None:
    """Consume ``settings.events_topic`` into the read models until SIGINT/SIGTERM.

    Positions are stored with the rows, so a restart resumes exactly where the last transaction
    ended; the store is swept for events the topic never delivered. The backlog (stored events not
    yet applied) and the time of the last poll are logged every ``STALL_CHECK_S`` seconds.
    """
    engine = make_engine(settings.database)
    consumer = ProjectionConsumer(settings, engine)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    task = asyncio.create_task(consumer.run(stop))
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
    await task  # re-raises what stopped the consumer (e.g. an unreachable broker)
    log.info("projector.stopped")
