"""What every request meets at the gateway's edge, before and after a route:

- JSON bodies parsed strictly and unknown query parameters refused (``duban.gateway.strict``);
- request ids: ``X-Request-Id`` when it is 1–64 characters of ``[A-Za-z0-9._:-]``, else a new one;
  returned on the response and put in the access log;
- errors mapped to status codes once (``status_of``): 401 no or bad key, 403 outside the scope, 404
  unknown item, subscription or route, 405 method, 409 illegal now or id taken, 413 body over
  ``MAX_BODY_BYTES``, 422 malformed (the field named), 503 Temporal or the database not answering
  (with ``Retry-After``), 500 anything unforeseen — logged with its request id, never a traceback
  to the client. Every response, 500 included, gets one access-log line.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.service import RPCError, RPCStatusCode

from activities.webhooks import SubscriptionNotFound
from duban import services
from duban.gateway import open311
from duban.gateway.items import ItemConflict, ItemNotFound
from duban.gateway.keys import KeyRefused, OutOfScope
from duban.observability import HTTP_LATENCY
from events.errors import DubanError, ValidationError

log = structlog.get_logger("duban.gateway")
MAX_BODY_BYTES = 1_048_576
"""The largest request body (1 MiB: a registration or command within its bounds is a few KiB)."""
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
UNAVAILABLE = {RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.RESOURCE_EXHAUSTED}


class BodyLimit:
    """ASGI middleware: a request declaring a body over ``max_bytes`` (``Content-Length``) is
    refused at once with 413 in duban's format, before anything reads it; a body sent without a
    length is cut off once it passes the size (its reading fails: the request is refused)."""

    def __init__(self, app: Any, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            declared = dict(scope.get("headers") or []).get(b"content-length", b"")
            if declared.isdigit() and int(declared) > self.max_bytes:
                reason = f"the body is {int(declared)} bytes; at most {self.max_bytes} are accepted"
                body = json.dumps(  # as JSONResponse writes it
                    {"error": "TooLarge", "field": "body", "reason": reason}, separators=(",", ":")
                ).encode()
                headers = [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ]
                await send({"type": "http.response.start", "status": 413, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        seen = 0

        async def limited() -> Any:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b"")) if message.get("type") == "http.request" else 0
            if seen > self.max_bytes:
                raise ValueError(f"the body is over {self.max_bytes} bytes")
            return message

        await self.app(scope, limited if scope["type"] == "http" else receive, send)


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def status_of(exc: BaseException) -> tuple[int, str, str, str]:
    """(status, error, field, reason) of a failure (see the module docstring)."""
    if isinstance(exc, KeyRefused):
        return 401, "Unauthenticated", "api_key", str(exc)
    if isinstance(exc, OutOfScope):
        return 403, "OutOfScope", exc.field, str(exc)
    if isinstance(exc, ItemNotFound):
        return 404, "ItemNotFound", "item_id", str(exc)
    if isinstance(exc, SubscriptionNotFound):
        return 404, "SubscriptionNotFound", "subscription_id", str(exc)
    if isinstance(exc, ItemConflict):
        return 409, "ItemConflict", exc.field, str(exc)
    if isinstance(exc, services.CommandRefused):
        if exc.kind == "MalformedCommand":
            field, _, reason = exc.reason.partition(" ")
            return 422, exc.kind, field, reason or exc.reason
        return 409, exc.kind, "kind", exc.reason
    if isinstance(exc, ValidationError):
        return 422, "ValidationError", exc.field, exc.reason
    if isinstance(exc, RPCError) and exc.status in UNAVAILABLE:
        return 503, "Unavailable", "", f"Temporal does not answer ({exc.status.name}); try again"
    if isinstance(exc, OperationalError):
        return 503, "Unavailable", "", "the database does not answer; try again"
    if isinstance(exc, DataError):  # a value the database cannot hold (bounds should stop it first)
        return 422, "ValidationError", "", "a value the database cannot hold (a NUL or control character?)"
    if isinstance(exc, TimeoutError):
        return 503, "Unavailable", "", str(exc) or "a service did not answer in time; try again"
    if isinstance(exc, DubanError):
        return 400, type(exc).__name__, "", str(exc)
    return 500, "InternalError", "", "an unexpected error; the gateway's log has it under this request's id"


def _answer(request: Request, exc: BaseException) -> Response:
    status, error, field, reason = status_of(exc)
    headers = {"Retry-After": "5"} if status == 503 else None
    if request.url.path.startswith(open311.PREFIX):
        answer = open311.error_response(request, status, reason if not field else f"{field}: {reason}")
        if headers:
            answer.headers.update(headers)
        return answer
    return JSONResponse(
        {"error": error, "field": field, "reason": reason}, status_code=status, headers=headers
    )


def install(app: FastAPI) -> None:
    """Install the error handlers, the access-log middleware and the body limit on ``app``."""
    app.add_middleware(BodyLimit)

    @app.exception_handler(DubanError)
    async def expected(request: Request, exc: DubanError) -> Response:
        return _answer(request, exc)

    @app.exception_handler(RPCError)
    async def temporal(request: Request, exc: RPCError) -> Response:
        return _answer(request, exc)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        first: dict[str, Any] = dict(exc.errors()[0]) if exc.errors() else {"loc": (), "msg": "is invalid"}
        loc = tuple(first.get("loc", ()))
        if first.get("type") == "json_invalid":
            field, reason = "body", f"is not JSON: {(first.get('ctx') or {}).get('error', first['msg'])}"
        else:
            field, reason = ".".join(str(p) for p in loc), str(first["msg"])
        if request.url.path.startswith(open311.PREFIX):
            return open311.error_response(request, 400, f"{field}: {reason}")
        return JSONResponse({"error": "ValidationError", "field": field, "reason": reason}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        error = {404: "NotFound", 405: "MethodNotAllowed", 413: "TooLarge"}.get(exc.status_code, "HTTPError")
        reason = {413: f"the body is over {MAX_BODY_BYTES} bytes"}.get(exc.status_code, str(exc.detail))
        if request.url.path.startswith(open311.PREFIX):
            return open311.error_response(request, exc.status_code, reason)
        return JSONResponse({"error": error, "field": "", "reason": reason}, status_code=exc.status_code)

    @app.middleware("http")
    async def access_log(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        given = request.headers.get("x-request-id", "")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        request.state.request_id = request_id
        started = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception as exc:  # an unforeseen failure: logged here, answered without a traceback
            log.exception("http.unexpected_error", request_id=request_id, path=request.url.path[:200])
            response = _answer(request, exc)
        response.headers["X-Request-Id"] = request_id
        route = getattr(request.scope.get("route"), "path", "(unmatched)")
        method = request.method if request.method in _METHODS else "OTHER"  # bounded label values
        HTTP_LATENCY.labels(method, route, str(response.status_code)).observe(time.perf_counter() - started)
        log.info(
            "http.request",
            method=request.method,
            path=request.url.path[:200].encode("unicode_escape").decode("ascii"),
            status=response.status_code,
            ms=round((time.perf_counter() - started) * 1000, 1),
            request_id=request_id,
            integrator=getattr(request.state, "integrator", None),
            item_id=getattr(request.state, "item_id", None),
            command_id=getattr(request.state, "command_id", None),
        )
        return response
