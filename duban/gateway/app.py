"""The gateway's ASGI application: duban's API (``/v1``), the Open311 façade (``/open311/v2``),
webhooks, the dashboard, metrics (``/metrics``: ``duban.observability``), health (``/healthz``: the
process answers; ``/readyz``: Temporal, a worker on the task queue, the broker and the database
answer), and the command topic bridge and webhook
dispatcher running beside them. What every request meets — strict JSON, the body limit, request ids,
the access log, errors mapped to status codes — is ``duban.gateway.edges``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from activities.webhooks import WebhookStore
from duban.gateway import dashboard, edges, http_api, open311, webhooks
from duban.gateway.bridge import BridgeOptions, start_bridge, stop_bridge
from duban.gateway.context import Gateway
from duban.gateway.dispatcher import SETTLE_S, WebhookDispatcher
from duban.observability import metrics_text, sdk_metrics_address
from duban.stack.probes import host_port, port_answers
from workflows.webhook_model import RetrySchedule

log = structlog.get_logger("duban.gateway")
GatewayFactory = Callable[[], Any]  # an async context manager yielding a Gateway


@dataclass(frozen=True)
class DispatchOptions:
    """The webhook dispatcher (``duban.gateway.dispatcher``): how often it looks at the store, in
    seconds, and its settle window."""

    poll_s: float = 1.0
    settle_s: float = SETTLE_S


def create_app(
    open_gateway: GatewayFactory,
    bridge: BridgeOptions | None = None,
    dispatch: DispatchOptions | None = None,
) -> FastAPI:
    """The application; ``open_gateway()`` is entered for the app's lifetime (``duban serve`` passes
    ``duban.gateway.context.open_gateway`` on its settings; the tests their own). With ``bridge``
    the command topic bridge (``duban.gateway.bridge``) runs in the same process and loop, and with
    ``dispatch`` the webhook dispatcher."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_gateway() as gw:
            app.state.gateway = gw
            app.state.webhooks = WebhookStore(gw.engine)
            app.state.webhooks.create()
            stop = asyncio.Event()
            dispatching = None
            if dispatch is not None:
                s = gw.settings
                retry = RetrySchedule(
                    s.webhook_retry_initial_s, s.webhook_retry_max_interval_s, s.webhook_give_up_after_s
                )
                dispatcher = WebhookDispatcher(gw.engine, gw.client, s.task_queue, retry, dispatch.settle_s)
                dispatching = asyncio.create_task(dispatcher.run(stop, dispatch.poll_s))
            running = await start_bridge(gw, bridge) if bridge is not None else None
            try:
                yield
            finally:
                stop.set()
                if running is not None:
                    await stop_bridge(running)
                if dispatching is not None:
                    await dispatching

    app = FastAPI(
        title="duban gateway",
        version="1",
        summary="Supervision items for integrating systems: duban's API and Open311 GeoReport v2.",
        lifespan=lifespan,
    )
    app.include_router(http_api.router)
    app.include_router(open311.router)
    app.include_router(webhooks.router)
    app.include_router(dashboard.router)

    edges.install(app)

    @app.get("/healthz", summary="The process answers")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", summary="Prometheus metrics (duban's and the Temporal SDK's)")
    async def metrics(request: Request) -> Response:
        gw: Gateway = request.app.state.gateway
        sdk = sdk_metrics_address(gw.client.service_client.config.runtime)
        return Response(await metrics_text(sdk), media_type=CONTENT_TYPE_LATEST)

    @app.get("/readyz", summary="Temporal, the broker and the database answer")
    async def readyz(request: Request) -> Response:
        gw: Gateway = request.app.state.gateway
        checks = await readiness(gw)
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse({"ready": ready, **checks}, status_code=200 if ready else 503)

    return app


async def _worker_polls(gw: Gateway) -> str:
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    request = DescribeTaskQueueRequest(
        namespace=gw.client.namespace,
        task_queue=TaskQueue(name=gw.settings.task_queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    )
    try:
        described = await gw.client.workflow_service.describe_task_queue(
            request, timeout=timedelta(seconds=3)
        )
    except Exception as exc:  # not ready; the reason is reported
        return f"unknown ({type(exc).__name__})"
    if described.pollers:
        return "ok"
    return f"no worker polls the task queue {gw.settings.task_queue!r} (is duban worker running?)"


async def readiness(gw: Gateway) -> dict[str, str]:
    """``{"temporal", "worker", "broker", "database"}`` → ``"ok"`` or the reason it is not.

    ``worker``: a worker has polled the item task queue in the last minutes (Temporal's
    DescribeTaskQueue): without one, items are registered but no command is applied."""
    out: dict[str, str] = {}
    try:
        await asyncio.wait_for(gw.client.service_client.check_health(), 3)
        out["temporal"] = "ok"
    except Exception as exc:  # any failure means not ready; the reason is reported
        out["temporal"] = f"does not answer: {type(exc).__name__}"
    out["worker"] = (
        await _worker_polls(gw) if out["temporal"] == "ok" else "unknown (Temporal does not answer)"
    )
    host, port = host_port(gw.settings.kafka_target)
    answers = await asyncio.to_thread(port_answers, host, port, 1.0)
    out["broker"] = "ok" if answers else f"nothing answers on {host}:{port}"
    try:
        with gw.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        out["database"] = "ok"
    except Exception as exc:  # as above
        out["database"] = f"does not answer: {type(exc).__name__}"
    return out
