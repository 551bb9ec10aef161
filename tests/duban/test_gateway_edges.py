"""Issue 10, found by a new user trying to break the gateway: each refused at the edge with the field
named, nothing stored; repeated and concurrent registrations; departments in commands checked."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from helpers.gateway import REPORTED, RunningGateway, command, unique

from duban.gateway.edges import MAX_BODY_BYTES, status_of
from events.store import EventStore


def registration(item: str, **changes: Any) -> dict[str, Any]:
    return {"item_id": item, "service_code": "greenery", "town": "xicheng", "reported_at": REPORTED,
            "actor": "wang"} | changes  # fmt: skip


async def post_raw(gw: RunningGateway, key: str, path: str, body: bytes) -> Any:
    async with gw.http(key) as http:
        return await http.post(path, content=body, headers={"Content-Type": "application/json"})


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        (b'{"item_id": "x1", "actor": "op", "actor": "evil"}', "body", "the key 'actor' is given twice"),
        (json.dumps(registration("x2", description="a\u0000b")).encode(), "body.description", "NUL"),
        (json.dumps(registration("x3", address="a\u0007b")).encode(), "body.address", "control character"),
        (json.dumps(registration("x4", lat=36.8)).encode(), "body", "lat and long go together"),
        (json.dumps(registration("x5", lat=float("nan"), long=1.0)).encode(), "body.lat", "finite"),
        (b'{"item_id": "x6", ', "body", "is not JSON: Expecting"),
    ],
)
async def test_hostile_bodies_are_refused_naming_the_field(
    gateway: RunningGateway, body: bytes, field: str, words: str
) -> None:
    before = await gateway.settled_counts()
    answer = await post_raw(gateway, gateway.key(), "/v1/items", body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == field and words in answer.json()["reason"]
    assert gateway.counts() == before


async def test_limits_routes_and_parameters_answer_in_duban_s_format(gateway: RunningGateway) -> None:
    key = gateway.key()
    too_big = await post_raw(gateway, key, "/v1/items", b'{"item_id": "' + b"a" * MAX_BODY_BYTES + b'"}')
    assert too_big.status_code == 413 and too_big.json()["error"] == "TooLarge"
    assert too_big.content == json.dumps(too_big.json(), separators=(",", ":")).encode()  # as the others
    async with gateway.http(key) as http:
        unknown = await http.get("/v1/rankings", params={"by": "town"})
        assert unknown.status_code == 422 and unknown.json()["field"] == "by"
        nowhere = await http.get("/v1/nowhere")
        assert nowhere.status_code == 404 and nowhere.json()["error"] == "NotFound"
        method = await http.put("/v1/items")
        assert method.status_code == 405 and method.json()["error"] == "MethodNotAllowed"
        long_key = await http.get("/v1/services", headers={"X-API-Key": "dbk_" + "x" * 5000})
        assert long_key.status_code == 401
        odd = await http.get("/healthz", headers={"X-Request-Id": "a\x07b"})
        assert odd.headers["X-Request-Id"] != "a\x07b" and len(odd.headers["X-Request-Id"]) == 32
        kept = await http.get("/healthz", headers={"X-Request-Id": "trace-42"})
        assert kept.headers["X-Request-Id"] == "trace-42"
        ready = (await http.get("/readyz")).json()
        assert ready == {"ready": True, "temporal": "ok", "worker": "ok", "broker": "ok", "database": "ok"}


async def test_an_open311_request_with_a_control_character_is_a_400(gateway: RunningGateway) -> None:
    fields = {"api_key": gateway.key(), "service_code": "greenery", "attribute[town]": "xicheng",
              "lat": "1", "long": "1", "first_name": "a\x01"}  # fmt: skip
    async with gateway.http() as http:
        answer = await http.post("/open311/v2/requests.json", data=fields)
    assert answer.status_code == 400
    [error] = answer.json()
    assert error["code"] == 400 and "control character" in error["description"]


async def test_a_registration_repeated_with_other_values_is_a_conflict_naming_the_field(
    gateway: RunningGateway,
) -> None:
    key, item = gateway.key(), unique("again")
    async with gateway.http(key) as http:
        first = await http.post("/v1/items", json=registration(item, description="a fallen tree"))
        assert first.status_code == 201, first.text
        same = await http.post("/v1/items", json=registration(item, description="a fallen tree"))
        assert same.status_code == 200 and same.json()["created"] is False
        for changed, field in (({"description": "another"}, "description"), ({"actor": "li"}, "actor")):
            other = await http.post(
                "/v1/items", json=registration(item, description="a fallen tree") | changed
            )
            assert other.status_code == 409 and other.json()["field"] == field, other.text


async def test_concurrent_identical_registrations_create_the_item_once(gateway: RunningGateway) -> None:
    key, item = gateway.key(), unique("burst")
    async with gateway.http(key) as http:
        answers = await asyncio.gather(*(http.post("/v1/items", json=registration(item)) for _ in range(8)))
    assert sorted(a.status_code for a in answers) == [200] * 7 + [201]
    assert [a.json()["created"] for a in answers].count(True) == 1
    await gateway.projected(item, "registered")
    assert [e.event_type for e in EventStore(gateway.engine).read(item)][:1] == ["ItemRegistered"]


async def test_departments_named_by_commands_are_the_catalogue_s_and_within_the_scope(
    gateway: RunningGateway,
) -> None:
    office, item = gateway.key(), unique("dept")
    parks_only = gateway.key("parks-app", departments="parks")
    async with gateway.http(office) as http:
        assert (await http.post("/v1/items", json=registration(item))).status_code == 201
    before = await gateway.settled_counts()
    async with gateway.http(parks_only) as http:
        away = command("dispatch", "dispatcher", 1, unit="roads-1", department="transport")
        refused = await http.post(f"/v1/items/{item}/commands", json=away)
        assert refused.status_code == 403 and refused.json()["field"] == "department", refused.text
    async with gateway.http(office) as http:
        made_up = command("dispatch", "dispatcher", 2, unit="x", department="No Such Dept")
        unknown = await http.post(f"/v1/items/{item}/commands", json=made_up)
        assert unknown.status_code == 422 and unknown.json()["field"] == "department"
        verify = command("verify", "inspector", 3, unit="inspection")
        no_verdict = await http.post(f"/v1/items/{item}/commands", json=verify)
        assert no_verdict.status_code == 422 and no_verdict.json()["field"] == "passed"
        illegal = await http.post(f"/v1/items/{item}/commands", json=command("close", "dispatcher", 4))
        assert illegal.status_code == 409 and illegal.json()["field"] == "kind"
    assert gateway.counts() == before


def test_services_that_do_not_answer_are_503_and_the_unforeseen_500_without_a_trace() -> None:
    from temporalio.service import RPCError, RPCStatusCode

    unavailable = RPCError("connection refused", RPCStatusCode.UNAVAILABLE, b"")
    assert status_of(unavailable)[:2] == (503, "Unavailable")
    assert status_of(TimeoutError("no worker answered within 30 s"))[::3] == (
        503,
        "no worker answered within 30 s",
    )
    status, error, _, reason = status_of(ZeroDivisionError("boom"))
    assert (status, error) == (500, "InternalError") and "boom" not in reason
