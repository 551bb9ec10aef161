"""The gateway's ASGI application: duban's API (``/v1``), the Open311 façade (``/open311/v2``),
health (``/healthz``: the process answers; ``/readyz``: Temporal, the broker and the database answer)
and one structlog access-log line per request (method, path, status, duration in ms, request id,
integrator and item id; never a key).

Errors map to status codes here, once: ``KeyRefused`` 401, ``OutOfScope`` 403, ``ItemNotFound`` 404,
``ItemConflict`` and an illegal command 409, ``ValidationError`` and a malformed command 422; a
request body or query that fails validation is 422 with the field (``body.occurred_at``) and reason.
Open311 paths answer in the spec's error format instead (``duban.gateway.open311``).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import structlog
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import text

from activities.webhooks import SubscriptionNotFound, WebhookStore
from duban import services
from duban.gateway import dashboard, http_api, open311, webhooks
from duban.gateway.bridge import BridgeOptions, start_bridge
from duban.gateway.context import Gateway
from duban.gateway.dispatcher import SETTLE_S, WebhookDispatcher
from duban.gateway.items import ItemConflict, ItemNotFound
from duban.gateway.keys import KeyRefused, OutOfScope
from duban.stack.probes import host_port, port_answers
from events.errors import DubanError, ValidationError
from workflows.webhook_model import RetrySchedule

log = structlog.get_logger("duban.gateway")
GatewayFactory = Callable[[], Any]  # an async context manager yielding a Gateway


def _status(exc: DubanError) -> tuple[int, str, str, str]:
    """(status, error, field, reason) of an expected failure."""
    if isinstance(exc, KeyRefused):
        return 401, "Unauthenticated", "api_key", str(exc)
    if isinstance(exc, OutOfScope):
        return 403, "OutOfScope", "", str(exc)
    if isinstance(exc, ItemNotFound):
        return 404, "ItemNotFound", "item_id", str(exc)
    if isinstance(exc, SubscriptionNotFound):
        return 404, "SubscriptionNotFound", "subscription_id", str(exc)
    if isinstance(exc, ItemConflict):
        return 409, "ItemConflict", "item_id", str(exc)
    if isinstance(exc, services.CommandRefused):
        code = 422 if exc.kind == "MalformedCommand" else 409
        field, _, reason = exc.reason.partition(": ") if code == 422 else ("", "", exc.reason)
        return code, exc.kind, field, reason or exc.reason
    if isinstance(exc, ValidationError):
        return 422, "ValidationError", exc.field, exc.reason
    return 400, type(exc).__name__, "", str(exc)


def _field(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc)


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
                    await running.stop()
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

    @app.exception_handler(DubanError)
    async def expected(request: Request, exc: DubanError) -> Response:
        status, error, field, reason = _status(exc)
        if request.url.path.startswith(open311.PREFIX):
            return open311.error_response(request, status, reason if not field else f"{field}: {reason}")
        return JSONResponse({"error": error, "field": field, "reason": reason}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "is invalid"}
        field, reason = _field(tuple(first["loc"])), str(first["msg"])
        if request.url.path.startswith(open311.PREFIX):
            return open311.error_response(request, 400, f"{field}: {reason}")
        return JSONResponse({"error": "ValidationError", "field": field, "reason": reason}, status_code=422)

    @app.middleware("http")
    async def access_log(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        request_id = request.headers.get("x-request-id", "")[:64] or uuid.uuid4().hex
        started = time.perf_counter()
        response = await call_next(request)
        response.headers["X-Request-Id"] = request_id
        log.info(
            "http.request",
            method=request.method,
            path=request.url.path,
            status=response.status_code,
            ms=round((time.perf_counter() - started) * 1000, 1),
            request_id=request_id,
            integrator=getattr(request.state, "integrator", None),
            item_id=getattr(request.state, "item_id", None),
        )
        return response

    @app.get("/healthz", summary="The process answers")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="Temporal, the broker and the database answer")
    async def readyz(request: Request) -> Response:
        gw: Gateway = request.app.state.gateway
        checks = await readiness(gw)
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse({"ready": ready, **checks}, status_code=200 if ready else 503)

    return app


async def readiness(gw: Gateway) -> dict[str, str]:
    """``{"temporal", "broker", "database"}`` → ``"ok"`` or the reason it does not answer."""
    out: dict[str, str] = {}
    try:
        await asyncio.wait_for(gw.client.service_client.check_health(), 3)
        out["temporal"] = "ok"
    except Exception as exc:  # any failure means not ready; the reason is reported
        out["temporal"] = f"does not answer: {type(exc).__name__}"
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
