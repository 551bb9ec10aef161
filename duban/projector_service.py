"""``duban project``: the long-running projection service (events topic → read models)."""

from __future__ import annotations

import asyncio
import signal

import structlog

from duban.config import Settings
from duban.db import make_engine
from projections.consumer import ProjectionConsumer

log = structlog.get_logger(__name__)

STALL_CHECK_S = 30.0
"""How often the service checks that its consumer still polls (ENGINEERING.md: aiokafka#1154)."""


async def run_projector(settings: Settings) -> None:
    """Consume ``settings.events_topic`` into the read models until SIGINT/SIGTERM.

    Positions are stored with the rows, so a restart resumes exactly where the last transaction
    ended. Lag and the time of the last poll are logged every ``STALL_CHECK_S`` seconds.
    """
    engine = make_engine(settings.database)
    consumer = ProjectionConsumer(settings, engine)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    task = asyncio.create_task(consumer.run(stop))
    log.info("projector.started", topic=settings.events_topic, database=engine.url.render_as_string())
    while not stop.is_set() and not task.done():
        try:
            await asyncio.wait_for(stop.wait(), STALL_CHECK_S)
        except TimeoutError:
            log.info("projector.heartbeat", last_poll_at=str(consumer.last_poll_at), lag=await consumer.lag())
    stop.set()
    await task
    log.info("projector.stopped")
