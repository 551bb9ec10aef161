"""The Open311 GeoReport v2 façade (http://wiki.open311.org/GeoReport_v2), in JSON and XML.

Paths end in ``.json`` or ``.xml``: ``discovery``, ``services``, ``services/{code}``, ``requests``
(GET with the spec's filters; POST a form with ``api_key``), ``requests/{id}`` and ``tokens/{token}``.
Requests are registered at once, so a POST answers with the ``service_request_id`` and the token
equals it. ``GET requests`` without ids or dates covers the spec's default window (the last 90 days)
and returns at most 1,000 requests, newest first. Errors use the spec's format (a list of ``code``
and ``description``) with its status codes: 400 bad request, 403 bad key, 404 not found.
Datetimes are W3C (ISO-8601) in the item's own zone, with its offset.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from xml.etree import ElementTree as ET
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import select

from duban.gateway import items
from duban.gateway.catalogue import TOWN_ATTRIBUTE, CatalogueVersion, Service
from duban.gateway.context import Gateway
from duban.gateway.http_api import gateway
from duban.gateway.intake import RegisterBody
from duban.gateway.keys import KeyRefused
from events.bounds import TextBound, text_problem
from events.errors import ValidationError
from projections import read_models as rm
from workflows.item_model import TERMINAL_STAGES

PREFIX = "/open311/v2"
router = APIRouter(prefix=PREFIX, tags=["Open311 GeoReport v2"])
Format = Literal["json", "xml"]
DEFAULT_WINDOW = timedelta(days=90)
MAX_RECORDS = 1000
"""The spec's defaults: the last 90 days, at most 1,000 requests."""
_ROOTS = {
    "services": "service",
    "service_requests": "request",
    "errors": "error",
    "attributes": "attribute",
    "values": "value",
    "endpoints": "endpoint",
    "formats": "format",
}


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml(parent: ET.Element, value: Any) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            child = ET.SubElement(parent, key)
            _xml(child, inner)
    elif isinstance(value, list):
        tag = _ROOTS.get(parent.tag, "item")
        for inner in value:
            _xml(ET.SubElement(parent, tag), inner)
    elif value is not None:
        text = str(value).lower() if isinstance(value, bool) else str(value)
        parent.text = _NOT_XML.sub("\ufffd", text)  # a character XML 1.0 cannot carry


def respond(fmt: str, root: str, body: Any, status: int = 200) -> Response:
    """``body`` as JSON, or as XML under ``<root>`` (lists become repeated child elements)."""
    if fmt == "xml":
        element = ET.Element(root)
        _xml(element, body)
        xml = b'<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(element, encoding="utf-8")
        return Response(xml, status_code=status, media_type="text/xml; charset=utf-8")
    return JSONResponse(body, status_code=status)


def error_response(request: Request, status: int, description: str) -> Response:
    """The spec's error document for ``status``: a bad key is 403 and a refused value 400, as the
    spec has them (duban's own API says 401 and 422)."""
    status = {401: 403, 422: 400}.get(status, status)
    fmt = "xml" if request.url.path.endswith(".xml") else "json"
    return respond(fmt, "errors", [{"code": status, "description": description}], status)


def _local(value: datetime | None, zone: str) -> str | None:
    return value.astimezone(ZoneInfo(zone)).isoformat() if value is not None else None


@router.get("/discovery.{fmt}", summary="Where the endpoint is and what it speaks")
def discovery(fmt: Format, request: Request) -> Response:
    url = str(request.base_url).rstrip("/") + PREFIX
    return respond(
        fmt,
        "discovery",
        {
            "changeset": "2026-12-02T00:00:00Z",
            "contact": "the city's campaign office",
            "key_service": "duban keys create (ask the office for a key)",
            "endpoints": [
                {
                    "specification": "http://wiki.open311.org/GeoReport_v2",
                    "url": url,
                    "changeset": "2026-12-02T00:00:00Z",
                    "type": "production",
                    "formats": ["text/xml", "application/json"],
                }
            ],
        },
    )


def _version(gw: Gateway) -> CatalogueVersion:
    return gw.catalogue.in_force(datetime.now(UTC))


def _check_jurisdiction(gw: Gateway, given: str) -> None:
    """The spec's optional ``jurisdiction_id`` must be this endpoint's, when given."""
    if given and given != _version(gw).jurisdiction_id:
        raise ValidationError(
            "jurisdiction_id", f"this endpoint serves {_version(gw).jurisdiction_id!r} only"
        )


@router.get("/services.{fmt}", summary="The services (Open311 service list)")
def service_list(fmt: Format, gw: Gateway = Depends(gateway)) -> Response:  # noqa: B008
    services = [
        {
            "service_code": s.code,
            "service_name": s.name.en,
            "description": s.description,
            "metadata": True,
            "type": "realtime",
            "keywords": ",".join(s.keywords),
            "group": s.group,
        }
        for s in _version(gw).services
    ]
    return respond(fmt, "services", services)


def _definition(version: CatalogueVersion, service: Service) -> dict[str, Any]:
    town = {
        "variable": True,
        "code": TOWN_ATTRIBUTE,
        "datatype": "singlevaluelist",
        "required": True,
        "datatype_description": "",
        "order": 1,
        "description": "Town (街道/镇) of the problem",
        "values": [{"key": a.key, "name": a.name.en} for a in version.areas],
    }
    attributes = [town] + [
        {
            "variable": True,
            "code": a.code,
            "datatype": a.datatype,
            "required": a.required,
            "datatype_description": a.datatype_description,
            "order": i + 2,
            "description": a.description,
            "values": [{"key": v.key, "name": v.name} for v in a.values],
        }
        for i, a in enumerate(service.attributes)
    ]
    return {"service_code": service.code, "attributes": attributes}


@router.get("/services/{service_code}.{fmt}", summary="A service definition (its attributes)")
def service_definition(service_code: str, fmt: Format, gw: Gateway = Depends(gateway)) -> Response:  # noqa: B008
    version = _version(gw)
    service = version.service(service_code)
    if service is None:
        return respond(fmt, "errors", [{"code": 404, "description": f"no service {service_code!r}"}], 404)
    return respond(fmt, "service_definition", _definition(version, service))


def _form_attributes(form: Any) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for key, value in form.multi_items():
        if key.startswith("attribute[") and isinstance(value, str):
            code = key[len("attribute[") :].split("]", 1)[0]
            found.setdefault(code, []).append(value)
    return found


def _text(form: Any, name: str, most: int) -> str:
    """A form field's text: at most ``most`` characters, no NUL, control character (but in
    ``description``: tabs and line breaks) or lone surrogate (``events.bounds``).

    Raises:
        ValidationError: the field named.
    """
    value = form.get(name, "")
    if not isinstance(value, str):
        raise ValidationError(name, "must be text")
    bound = TextBound(most, multiline=name == "description")
    problem = text_problem(value, bound)
    if problem is not None:
        raise ValidationError(name, problem)
    return value


def _coordinate(form: Any, name: str, bound: float) -> float | None:
    raw = _text(form, name, 32)
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ValidationError(name, f"must be a number, not {raw!r}") from None
    if not -bound <= value <= bound:
        raise ValidationError(name, f"must be within ±{bound:g}")
    return value


@router.post("/requests.{fmt}", summary="Report a problem (a form with api_key)")
async def post_request(fmt: Format, request: Request, gw: Gateway = Depends(gateway)) -> Response:  # noqa: B008
    form = await request.form(max_files=0, max_fields=100)
    key = gw.keys.authenticate(_text(form, "api_key", 200) or None)
    _check_jurisdiction(gw, _text(form, "jurisdiction_id", 128))
    request.state.integrator = key.integrator
    lat, long = _coordinate(form, "lat", 90), _coordinate(form, "long", 180)
    address = _text(form, "address_string", 256)
    if lat is None and long is None and not address:
        raise ValidationError("location", "a request needs lat and long, or address_string")
    if (lat is None) != (long is None):
        raise ValidationError("lat", "lat and long go together")
    attributes = _form_attributes(form)
    town = attributes.pop(TOWN_ATTRIBUTE, [""])
    person = (
        _text(form, "email", 95)
        or " ".join(p for p in (_text(form, "first_name", 40), _text(form, "last_name", 40)) if p)
        or "citizen"
    )
    item_id = f"o311-{uuid.uuid4().hex[:16]}"
    request.state.item_id = item_id
    try:
        body = RegisterBody.model_validate(
            {
                "item_id": item_id,
                "service_code": _text(form, "service_code", 32),
                "town": town[0] if town else "",
                "reported_at": datetime.now(UTC).isoformat(),
                "actor": person.replace("/", " "),
                "description": _text(form, "description", 4000),
                "address": address,
                "lat": lat,
                "long": long,
                "attributes": attributes,
            }
        )
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValidationError({"actor": "email"}.get(where, where) or "request", str(first["msg"])) from None
    extras = {
        "description": body.description,
        "address": address,
        "lat": lat,
        "long": long,
        "media_url": _text(form, "media_url", 1024),
        "attributes": body.attributes,
    }
    await items.register(gw, key, body, extras)
    notice = _notice(await items.item_state(gw, item_id))
    return respond(
        fmt, "service_requests", [{"service_request_id": item_id, "token": item_id, "service_notice": notice}]
    )


def _notice(state: Any) -> str:
    clock = state.clock("resolution")
    if clock is None:
        return ""
    return f"to be resolved by {_local(clock.deadline, state.registration.zone)}"


def _status_notes(row: Any) -> str:
    notes = [str(row.stage)]
    if row.stage == "closed":
        notes.append("on time" if row.on_time else "late")
    elif row.overdue:
        notes.append("overdue")
    if row.escalation_level:
        notes.append(f"escalated to level {row.escalation_level}")
    return ", ".join(notes)


def _request_json(row: Any, extra: dict[str, Any] | None, version: CatalogueVersion) -> dict[str, Any]:
    extra = extra or {}
    code = extra.get("service_code") or next(
        (s.code for s in version.services if s.category == row.category), row.category
    )
    service = version.service(code)
    zone = row.zone
    return {
        "service_request_id": row.item_id,
        "status": "closed" if row.stage in TERMINAL_STAGES else "open",
        "status_notes": _status_notes(row),
        "service_name": service.name.en if service else row.category,
        "service_code": code,
        "description": extra.get("description", ""),
        "agency_responsible": row.department,
        "service_notice": (
            f"to be resolved by {_local(row.resolution_deadline, zone)}" if row.resolution_deadline else ""
        ),
        "requested_datetime": _local(row.registered_at, zone),
        "updated_datetime": _local(row.last_event_at, zone),
        "expected_datetime": _local(row.resolution_deadline, zone),
        "address": extra.get("address", ""),
        "address_id": "",
        "zipcode": "",
        "lat": extra.get("lat"),
        "long": extra.get("long"),
        "media_url": extra.get("media_url", ""),
    }


def _instant(raw: str | None, name: str) -> datetime | None:
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(name, f"must be a W3C datetime, not {raw[:40]!r}") from None
    if value.tzinfo is None:
        raise ValidationError(name, "needs a UTC offset (2010-01-01T00:00:00Z)")
    return value


def _rows(
    gw: Gateway, ids: list[str], code: str, start: datetime | None, end: datetime | None, status: str
) -> list[Any]:
    table, version = rm.item_view, _version(gw)
    query = select(table)
    if ids:
        query = query.where(table.c.item_id.in_(ids))
    else:
        if not start and not end:
            start = datetime.now(UTC) - DEFAULT_WINDOW
        if start:
            query = query.where(table.c.registered_at >= start)
        if end:
            query = query.where(table.c.registered_at <= end)
        if start and end and end < start:
            raise ValidationError("end_date", "is before start_date")
        codes = [c.strip() for c in code.split(",") if c.strip()]
        if codes:  # the spec allows a list: service_code=litter,greenery
            found = [version.service(c) for c in codes]
            query = query.where(
                table.c.category.in_([f.category if f else c for f, c in zip(found, codes, strict=True)])
            )
        if status:
            chosen = [s for s in status.split(",") if s]
            if any(s not in ("open", "closed") for s in chosen):
                raise ValidationError("status", "must be open, closed or both")
            terminal = [str(s) for s in TERMINAL_STAGES]
            if chosen == ["open"]:
                query = query.where(table.c.stage.not_in(terminal))
            elif chosen == ["closed"]:
                query = query.where(table.c.stage.in_(terminal))
    query = query.order_by(table.c.registered_at.desc(), table.c.item_id).limit(MAX_RECORDS)
    with gw.engine.connect() as conn:
        return list(conn.execute(query))


@router.get("/requests.{fmt}", summary="Service requests, filtered (Open311 GET requests)")
def get_requests(
    fmt: Format,
    request: Request,
    service_request_id: str = "",
    service_code: str = "",
    start_date: str | None = None,
    end_date: str | None = None,
    status: str = "",
    jurisdiction_id: str = "",
    gw: Gateway = Depends(gateway),  # noqa: B008
) -> Response:
    _check_jurisdiction(gw, jurisdiction_id)
    ids = [i.strip() for i in service_request_id.split(",") if i.strip()][:MAX_RECORDS]
    rows = _rows(
        gw, ids, service_code, _instant(start_date, "start_date"), _instant(end_date, "end_date"), status
    )
    extras, version = gw.requests_of([r.item_id for r in rows]), _version(gw)
    return respond(fmt, "service_requests", [_request_json(r, extras.get(r.item_id), version) for r in rows])


@router.get("/requests/{service_request_id}.{fmt}", summary="One service request")
def get_request(service_request_id: str, fmt: Format, gw: Gateway = Depends(gateway)) -> Response:  # noqa: B008
    rows = _rows(gw, [service_request_id], "", None, None, "")
    if not rows:
        return respond(
            fmt, "errors", [{"code": 404, "description": f"no request {service_request_id!r}"}], 404
        )
    extras = gw.requests_of([service_request_id])
    return respond(
        fmt, "service_requests", [_request_json(rows[0], extras.get(service_request_id), _version(gw))]
    )


@router.get("/tokens/{token}.{fmt}", summary="The request id of a token")
def get_token(token: str, fmt: Format, gw: Gateway = Depends(gateway)) -> Response:  # noqa: B008
    if not gw.requests_of([token]):
        return respond(fmt, "errors", [{"code": 404, "description": f"no token {token!r}"}], 404)
    return respond(fmt, "service_requests", [{"service_request_id": token, "token": token}])


__all__ = ["PREFIX", "KeyRefused", "error_response", "router"]
