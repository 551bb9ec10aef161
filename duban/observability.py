"""What operators see of the long-running processes: Prometheus metrics and health over HTTP.

Each process (``duban serve``, ``duban worker``, ``duban project``) answers ``/metrics`` (Prometheus
text format), ``/healthz`` (the process answers) and ``/readyz`` (what it depends on answers: 200 or
503 with the reason per check). The gateway serves them on its own port; the worker and the
projector on ``--status-port``. The Temporal SDK's own metrics (workflow and activity task latencies,
slots, polls, sticky cache) are served by the SDK's Prometheus exporter on an internal loopback port
and appended to the process's ``/metrics``, so one scrape gets both.

duban's metrics (names follow Prometheus conventions: base units, ``_total`` counters):

- ``duban_commands_total{kind, outcome, reason}``: lifecycle commands applied through the service
  layer; ``outcome`` is ``applied`` or ``refused``, ``reason`` the refusal kind
  (``MalformedCommand``, ``IllegalCommand``) or ``""``.
- ``duban_http_request_duration_seconds{method, route, status}``: the gateway's request latency by
  route template (``/v1/items/{item_id}``), never by raw path (bounded label values).
- ``duban_projection_events_applied_total``, ``duban_projection_events_dead_lettered_total``,
  ``duban_projection_backlog_events`` (stored events not yet applied: the backlog against the store),
  ``duban_projection_partition_lag_records{partition}`` (records not yet read, per partition) and
  ``duban_projection_last_poll_timestamp_seconds``: the projector's, refreshed at every scrape.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import structlog
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

log = structlog.get_logger(__name__)

COMMANDS = Counter(
    "duban_commands", "Lifecycle commands by kind and outcome (applied or refused, with the refusal kind).",
    ["kind", "outcome", "reason"],
)  # fmt: skip
HTTP_LATENCY = Histogram(
    "duban_http_request_duration_seconds",
    "Gateway request latency in seconds, by method, route template and status code.",
    ["method", "route", "status"],
)
PROJECTION_APPLIED = Counter("duban_projection_events_applied", "Events applied to the read models.")
PROJECTION_DEAD = Counter(
    "duban_projection_events_dead_lettered", "Messages of the events topic sent to the dead letters."
)
PROJECTION_BACKLOG = Gauge(
    "duban_projection_backlog_events", "Stored events the read models have not applied yet."
)
PARTITION_LAG = Gauge(
    "duban_projection_partition_lag_records", "Records of the events topic not yet read, per partition.",
    ["partition"],
)  # fmt: skip
LAST_POLL = Gauge("duban_projection_last_poll_timestamp_seconds", "The projector's last poll (Unix time).")
Checks = Callable[[], Awaitable[dict[str, str]]]
"""An async function giving ``{check: "ok" or the reason it is not}`` (readiness)."""
Refresh = Callable[[], Awaitable[None]]
"""An async function bringing scrape-time gauges up to date before ``/metrics`` answers."""

_SDK_METRICS: dict[int, str] = {}  # id(runtime) -> the SDK exporter's address


def _loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def temporal_runtime() -> Runtime:
    """A Temporal runtime whose SDK metrics are exported in Prometheus format on a free loopback port
    (appended to ``/metrics`` by ``status_app``); pass it to ``Client.connect(runtime=...)``."""
    address = f"127.0.0.1:{_loopback_port()}"
    runtime = Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(address, counters_total_suffix=True, durations_as_seconds=True)
        )
    )
    _SDK_METRICS[id(runtime)] = address
    return runtime


def sdk_metrics_address(runtime: Runtime | None) -> str | None:
    """The loopback address of ``runtime``'s SDK exporter (``None`` if it has none)."""
    return None if runtime is None else _SDK_METRICS.get(id(runtime))


async def metrics_text(sdk_address: str | None = None) -> bytes:
    """duban's metrics in Prometheus text format, followed by the Temporal SDK's from ``sdk_address``
    (left out, with a comment, if that exporter does not answer within 2 s)."""
    body = generate_latest(REGISTRY)
    if sdk_address is None:
        return body
    try:
        async with httpx.AsyncClient(timeout=2.0) as http:
            reply = await http.get(f"http://{sdk_address}/metrics")
        return body + reply.content
    except httpx.HTTPError as exc:
        return body + f"# the Temporal SDK's metrics did not answer: {type(exc).__name__}\n".encode()


def count_command(kind: str, applied: bool, reason: str = "") -> None:
    """Count one command's outcome in ``duban_commands_total`` (``reason``: the refusal kind)."""
    COMMANDS.labels(kind, "applied" if applied else "refused", reason).inc()


def status_app(checks: Checks, refresh: Refresh | None = None, sdk_address: str | None = None) -> Starlette:
    """``/metrics``, ``/healthz`` and ``/readyz`` for a worker or projector process.

    ``/readyz`` answers 200 with ``{"ready": true, check: "ok", …}`` when every check is ``"ok"``,
    otherwise 503 with the reasons; a check that raises counts as not ready with its error's name.
    """

    async def metrics(request: Request) -> Response:
        if refresh is not None:
            try:
                await asyncio.wait_for(refresh(), 5.0)
            except Exception as exc:  # a stale gauge is better than no metrics; say why in the log
                log.warning("metrics.refresh_failed", error=repr(exc)[:300])
        return Response(await metrics_text(sdk_address), media_type=CONTENT_TYPE_LATEST)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        try:
            found = await asyncio.wait_for(checks(), 10.0)
        except Exception as exc:  # not ready; the reason is reported
            found = {"checks": f"failed: {type(exc).__name__}"}
        ready = all(v == "ok" for v in found.values())
        return JSONResponse({"ready": ready, **found}, status_code=200 if ready else 503)

    routes = [Route("/metrics", metrics), Route("/healthz", healthz), Route("/readyz", readyz)]
    return Starlette(routes=routes)


async def serve_status(app: Starlette, host: str, port: int, stop: asyncio.Event) -> None:
    """Serve ``app`` on ``host:port`` until ``stop`` is set (uvicorn in the caller's event loop)."""
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:  # the process owns SIGINT/SIGTERM, not uvicorn
            yield

    server = Server(uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False))
    task = asyncio.create_task(server.serve())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True
    stopping.cancel()
    await task


async def database_answers(engine: Any) -> str:
    """``"ok"`` if ``engine`` answers ``SELECT 1`` (in a thread), otherwise the error's name."""
    from sqlalchemy import text

    def probe() -> None:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    try:
        await asyncio.to_thread(probe)
        return "ok"
    except Exception as exc:  # any failure means not ready; the reason is reported
        return f"does not answer: {type(exc).__name__}"
