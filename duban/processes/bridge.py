"""``duban bridge``: the command topic bridge as a process of its own (``duban serve --no-bridge``
runs the gateway without it), so each can be scaled, restarted and watched separately."""

from __future__ import annotations

import asyncio
import signal

import structlog

from duban import observability as obs
from duban.config import Settings
from duban.gateway.app import readiness
from duban.gateway.bridge import BridgeOptions, start_bridge, stop_bridge
from duban.gateway.context import open_gateway

log = structlog.get_logger(__name__)


async def run_bridge(settings: Settings, status_port: int = 0, status_host: str = "127.0.0.1") -> None:
    """Run the bridge (``duban.gateway.bridge``) until SIGINT/SIGTERM; with ``status_port`` (not 0),
    serve ``/metrics`` (commands by outcome, the Temporal SDK's), ``/healthz`` and ``/readyz``
    (Temporal, a worker, the broker, the database) on it.

    Raises:
        TopicsUnavailable: the broker cannot be reached or refuses to create the topics.
        RuntimeError: Temporal does not answer.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with open_gateway(settings) as gw:
        serving = None
        if status_port:
            sdk = obs.sdk_metrics_address(gw.client.service_client.config.runtime)

            async def checks() -> dict[str, str]:
                return await readiness(gw)

            app = obs.status_app(checks, sdk_address=sdk)
            serving = asyncio.create_task(obs.serve_status(app, status_host, status_port, stop))
        bridge = await start_bridge(gw, BridgeOptions())
        log.info("bridge.process_started", topic=settings.commands_topic)
        try:
            await stop.wait()
        finally:
            stop.set()
            await stop_bridge(bridge)
            if serving is not None:
                await serving
            log.info("bridge.process_stopped")
