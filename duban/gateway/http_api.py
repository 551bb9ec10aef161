"""duban's own HTTP API, under ``/v1`` (OpenAPI at ``/docs`` and ``/openapi.json``).

Every endpoint takes an integrator key (``X-API-Key: dbk_…`` or ``Authorization: Bearer dbk_…``);
writes are checked against its scope. Refusals are JSON ``{"error", "field", "reason"}`` with 401
(no or bad key), 403 (outside the scope), 404 (no such item), 409 (illegal now, id taken, ended) and
422 (malformed: the field named).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from temporalio.service import RPCError

from duban import services
from duban.gateway import items
from duban.gateway.context import Gateway
from duban.gateway.intake import ITEM_ID_PATTERN, CommandBody, RegisterBody
from duban.gateway.keys import IntegratorKey
from duban.gateway.strict import StrictJSONRoute, no_unknown_query
from duban.gateway.views import MAX_PAGE, ItemFilter, item_json, list_items
from projections import indicators as ind

router = APIRouter(prefix="/v1", route_class=StrictJSONRoute, dependencies=[Depends(no_unknown_query)])
ItemId = Annotated[str, Query(pattern=ITEM_ID_PATTERN)]
Level = Literal["department", "district", "town", "community", "grid", "category", "order"]
Period = Annotated[
    str | None,
    Query(max_length=32, pattern=r"^[0-9A-Za-z-]*$", description="YYYY-MM, YYYY-Www, YYYY-MM-H1/H2"),
]
Filter = Annotated[str, Query(max_length=256, pattern=r"^[^\x00-\x1f\x7f]*$")]
"""A name to filter by: no NUL or control characters (PostgreSQL refuses a NUL outright)."""


def gateway(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


def presented_key(
    x_api_key: Annotated[str | None, Header()] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> str | None:
    """The key of a request: ``X-API-Key``, else ``Authorization: Bearer …``."""
    if x_api_key:
        return x_api_key
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return None


def integrator(request: Request, presented: Annotated[str | None, Depends(presented_key)]) -> IntegratorKey:
    """The request's valid key (401 otherwise); its integrator is logged with the request."""
    key = gateway(request).keys.authenticate(presented)
    request.state.integrator = key.integrator
    return key


Gw = Annotated[Gateway, Depends(gateway)]
Key = Annotated[IntegratorKey, Depends(integrator)]


@router.get("/services", summary="The service catalogue in force")
def list_services(gw: Gw, key: Key) -> dict[str, Any]:
    from datetime import UTC, datetime

    version = gw.catalogue.in_force(datetime.now(UTC))
    return {"version": version.version, **version.model_dump(mode="json", exclude={"version"})}


@router.post(
    "/items",
    status_code=201,
    summary="Register an item (idempotent by item id): 201 created, 200 registered before, 202 no worker yet",
)
async def register_item(
    body: RegisterBody, gw: Gw, key: Key, request: Request, response: Response
) -> dict[str, Any]:
    request.state.item_id = body.item_id
    extras = {
        "description": body.description,
        "address": body.address,
        "lat": body.lat,
        "long": body.long,
        "media_url": "",
        "attributes": body.attributes,
    }
    done = await items.register(gw, key, body, extras)
    if not done.created:
        response.status_code = 200
    try:
        state = await items.item_state(gw, done.item_id)
    except (RPCError, items.ItemNotFound):  # registered, but no worker has run the item yet
        response.status_code = 202
        reg = done.registration
        return {
            "item_id": reg.item_id,
            "created": done.created,
            "stage": "registered",
            "department": reg.department,
            "town": reg.town,
            "note": "registered; no worker has taken the item yet: GET it again shortly",
        }
    return item_json(state, gw.store) | {"created": done.created}


@router.post("/items/{item_id}/commands", summary="Apply a lifecycle command and get its outcome")
async def apply_command(
    item_id: str, body: CommandBody, gw: Gw, key: Key, request: Request
) -> dict[str, Any]:
    request.state.item_id = item_id
    request.state.command_id = getattr(body, "command_id", None)
    outcome = await items.apply(gw, key, item_id, body)
    return {
        "command_id": outcome.command_id,
        "applied": outcome.applied,
        "reason": outcome.reason,
        "event_types": outcome.event_types,
    }


@router.get("/items/{item_id}", summary="An item: state, deadlines, light, timeline")
async def read_item(item_id: str, gw: Gw, key: Key, request: Request) -> dict[str, Any]:
    request.state.item_id = item_id
    return item_json(await items.item_state(gw, item_id), gw.store)


@router.get("/items", summary="Items from the read models, filtered and paged")
def read_items(
    gw: Gw,
    key: Key,
    department: Filter = "",
    town: Filter = "",
    community: Filter = "",
    category: Filter = "",
    stage: Literal[
        "",
        "registered",
        "dispatched",
        "accepted",
        "rectified",
        "verified",
        "closed",
        "cancelled",
        "merged",
        "suspended",
    ] = "",
    order_id: Annotated[str, Query(alias="order", max_length=128, pattern=r"^[^\x00-\x1f\x7f]*$")] = "",
    overdue: bool | None = None,
    light: Literal["", "green", "yellow", "red"] = "",
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
) -> dict[str, Any]:
    flt = ItemFilter(department, town, community, category, stage, order_id, overdue, light)
    return list_items(gw.engine, flt, page, page_size)


def _rows(rows: list[Any]) -> list[dict[str, Any]]:
    import dataclasses
    from datetime import date, datetime
    from decimal import Decimal

    def plain(value: Any) -> Any:
        if isinstance(value, Decimal):
            return str(value)
        if isinstance(value, (datetime, date)):
            return value.isoformat()
        return value

    out = []
    for row in rows:
        data = (
            dataclasses.asdict(row)
            if dataclasses.is_dataclass(row) and not isinstance(row, type)
            else dict(row)
        )
        out.append({k: plain(v) for k, v in data.items()})
    return out


@router.get("/rankings", summary="Units ranked by on-time closure rate (as duban rank)")
def rankings(gw: Gw, key: Key, level: Level = "department", period: Period = None) -> dict[str, Any]:
    return {"level": level, "period": period, "rows": _rows(services.rankings(gw.engine, level, period))}


@router.get("/indicators", summary="Every indicator of every unit (as duban indicators)")
def indicators(gw: Gw, key: Key, level: Level = "department", period: Period = None) -> dict[str, Any]:
    rows = services.indicator_rows(gw.engine, level, period, ind.IndicatorOptions())
    return {"level": level, "period": period, "rows": _rows(rows)}


@router.get("/scores", summary="The scores of a period, frozen or live (as duban scores)")
def scores(
    gw: Gw, key: Key, period: Annotated[str, Query(min_length=1, max_length=32)], level: Level = "department"
) -> dict[str, Any]:
    report = services.scores_report(gw.engine, level, period, None, ind.IndicatorOptions())
    return {
        "level": level,
        "period": report.period,
        "previous": report.previous,
        "frozen": report.snapshot is not None,
        "rows": _rows(report.rows),
    }
