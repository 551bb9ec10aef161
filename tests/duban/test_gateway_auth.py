"""Issue 10: keys and scopes on every write, validation at the edge with the field named, commands
refused with their reason, and a command delivered twice applied once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from helpers.gateway import REPORTED, RunningGateway, unique

from activities.webhooks import WebhookStore
from duban.gateway.keys import KeyStore
from events.store import EventStore


def registration(item: str, service: str = "litter", town: str = "dongcheng") -> dict[str, Any]:
    attributes = {"size": ["bag"]} if service == "litter" else {}
    return {
        "item_id": item,
        "service_code": service,
        "town": town,
        "reported_at": REPORTED,
        "actor": "wang",
        "attributes": attributes,
    }


def cmd(kind: str, role: str, actor: str, n: str = "1", **fields: Any) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    return {
        "command_id": f"{kind}-{n}",
        "kind": kind,
        "actor": actor,
        "role": role,
        "occurred_at": now,
    } | fields


async def test_writes_refuse_no_key_a_bad_key_and_a_revoked_key(gateway: RunningGateway) -> None:
    full = gateway.key("office")
    item = unique("auth")
    async with gateway.http(full) as http:
        assert (await http.post("/v1/items", json=registration(item))).status_code == 201
    await gateway.projected(item, "registered")
    before = await gateway.settled_counts()
    revoked = gateway.key("old-app")
    KeyStore(gateway.engine).revoke(revoked.split("_")[1])
    writes = [
        ("/v1/items", registration(unique("auth"))),
        (f"/v1/items/{item}/commands", cmd("dispatch", "dispatcher", "zhao", unit="u1")),
        ("/v1/webhooks", {"url": "http://127.0.0.1:9/hook"}),
    ]
    subscriptions = len(WebhookStore(gateway.engine).listed(removed=True))
    for key, words in (
        (None, "required"),
        ("dbk_nonsense", "malformed"),
        (revoked, "revoked"),
        ("dbk_000000000000_" + "A" * 43, "not known"),
    ):
        async with gateway.http(key) as http:
            for path, body in writes:
                answer = await http.post(path, json=body)
                assert answer.status_code == 401, (key, path, answer.text)
                assert answer.json()["error"] == "Unauthenticated" and words in answer.json()["reason"]
            assert (await http.get(f"/v1/items/{item}")).status_code == 401
            assert (await http.delete("/v1/webhooks/0123456789ab")).status_code == 401
    async with gateway.http() as http:  # Authorization: Bearer works as well as X-API-Key
        bearer = await http.get(f"/v1/items/{item}", headers={"Authorization": f"Bearer {full}"})
    assert bearer.status_code == 200 and bearer.json()["stage"] == "registered"
    await asyncio.sleep(0.5)
    assert gateway.counts() == before
    assert len(WebhookStore(gateway.engine).listed(removed=True)) == subscriptions


async def test_a_key_acts_only_within_its_scope(gateway: RunningGateway) -> None:
    """A field app of the urban-management department in Dongcheng cannot act for parks, elsewhere,
    as an inspector, or verify."""
    app = gateway.key(
        "um-field-app",
        kinds="register,dispatch,accept,submit_rectification",
        roles="dispatcher,handling_unit",
        departments="urban_management",
        towns="dongcheng",
    )
    mine, outside = unique("scope"), [unique("scope"), unique("scope")]
    refused = [
        ("/v1/items", registration(outside[0], "greenery", "dongcheng"), "department 'parks'"),
        ("/v1/items", registration(outside[1], "litter", "xicheng"), "town 'xicheng'"),
    ]
    async with gateway.http(app) as http:
        for path, body, words in refused:
            answer = await http.post(path, json=body)
            assert answer.status_code == 403 and words in answer.json()["reason"], answer.text
        assert (await http.post("/v1/items", json=registration(mine))).status_code == 201
        steps = [
            cmd("dispatch", "dispatcher", "zhao", unit="um-team"),
            cmd("accept", "handling_unit", "li", unit="um-team"),
            cmd("submit_rectification", "handling_unit", "li", unit="um-team", evidence=["p1"]),
        ]
        for body in steps:
            answer = await http.post(f"/v1/items/{mine}/commands", json=body)
            assert answer.status_code == 200, answer.text
        for body, words in (
            (cmd("verify", "inspector", "chen", unit="insp", passed=True), "kind 'verify'"),
            (cmd("verify", "handling_unit", "li", unit="insp", passed=True), "kind 'verify'"),
        ):
            answer = await http.post(f"/v1/items/{mine}/commands", json=body)
            assert answer.status_code == 403 and words in answer.json()["reason"], answer.text
    async with gateway.http(gateway.key("office2")) as http:  # a key that may verify: not the same unit
        same_unit = await http.post(
            f"/v1/items/{mine}/commands", json=cmd("verify", "inspector", "chen", unit="um-team", passed=True)
        )
    assert same_unit.status_code == 409 and same_unit.json()["error"] == "IllegalCommand", same_unit.text
    events = [e.event_type for e in EventStore(gateway.engine).read(mine) if not e.actor.startswith("system")]
    assert events[:4] == ["ItemRegistered", "ItemDispatched", "ItemAccepted", "RectificationSubmitted"]
    assert "RectificationVerified" not in events
    async with gateway.http(gateway.key("office2b")) as http:  # the refused items were never registered
        assert [(await http.get(f"/v1/items/{i}")).status_code for i in outside] == [404, 404]
    assert [list(EventStore(gateway.engine).read(i)) for i in outside] == [[], []]


async def test_malformed_bodies_name_the_field_and_illegal_commands_give_the_reason(
    gateway: RunningGateway,
) -> None:
    item = unique("val")
    async with gateway.http(gateway.key("office3")) as http:
        assert (await http.post("/v1/items", json=registration(item))).status_code == 201
        await gateway.projected(item, "registered")
        before = await gateway.settled_counts()
        naive = datetime.now(UTC).replace(tzinfo=None).isoformat()
        malformed = [
            (cmd("submit_rectification", "handling_unit", "li", evidence="photo"), "body.evidence"),
            (cmd("rate_responder", "grid_worker", "li", rating=4.5), "body.rating"),
            (cmd("dispatch", "dispatcher", "zhao") | {"occurred_at": naive}, "body.occurred_at"),
            (cmd("dispatch", "dispatcher", "zhao") | {"occurred_at": 1764000000}, "body.occurred_at"),
            (cmd("dispatch", "dispatcher", "zhao") | {"colour": "red"}, "body.colour"),
            (cmd("dispatch", "dispatcher", "zhao", passed="yes"), "body.passed"),
        ]
        for body, field in malformed:
            answer = await http.post(f"/v1/items/{item}/commands", json=body)
            assert answer.status_code == 422 and answer.json()["field"] == field, (body, answer.text)
        naive_reg = registration(unique("val")) | {"reported_at": "2026-11-30T10:00:00"}
        answer = await http.post("/v1/items", json=naive_reg)
        assert answer.status_code == 422 and answer.json()["field"] == "body.reported_at", answer.text
        unknown = await http.post(
            "/v1/items", json=registration(unique("val")) | {"attributes": {"colour": ["x"]}}
        )
        assert unknown.status_code == 422 and unknown.json()["field"] == "attributes.colour"
        illegal = await http.post(f"/v1/items/{item}/commands", json=cmd("close", "dispatcher", "zhao"))
        assert illegal.status_code == 409 and illegal.json()["error"] == "IllegalCommand"
        assert "registered" in illegal.json()["reason"]
        kind = await http.post(f"/v1/items/{item}/commands", json=cmd("fly", "dispatcher", "zhao"))
        assert kind.status_code == 422 and "is not a command kind" in kind.json()["reason"], kind.text
        missing = await http.post(
            f"/v1/items/{unique('none')}/commands", json=cmd("dispatch", "dispatcher", "z")
        )
        assert missing.status_code == 404
    await asyncio.sleep(0.5)
    assert gateway.counts() == before


async def test_a_command_delivered_twice_is_applied_once(gateway: RunningGateway) -> None:
    item = unique("dup")
    async with gateway.http(gateway.key("office4")) as http:
        assert (await http.post("/v1/items", json=registration(item))).status_code == 201
        dispatch = cmd("dispatch", "dispatcher", "zhao", unit="um-team")
        first = await http.post(f"/v1/items/{item}/commands", json=dispatch)
        again = await http.post(f"/v1/items/{item}/commands", json=dispatch)  # an HTTP retry
        cancel = cmd("cancel", "dispatcher", "zhao", reason="a duplicate report")
        ended = await http.post(f"/v1/items/{item}/commands", json=cancel)
        retried = await http.post(f"/v1/items/{item}/commands", json=cancel)  # after the item has ended
        other = await http.post(
            f"/v1/items/{item}/commands", json=cmd("accept", "handling_unit", "li", unit="um-team")
        )
    assert [r.status_code for r in (first, again, ended, retried)] == [200, 200, 200, 200]
    assert all(r.json()["applied"] for r in (first, again, ended, retried))
    assert other.status_code == 409 and "ended" in other.json()["reason"]
    types = [e.event_type for e in EventStore(gateway.engine).read(item)]
    assert types.count("ItemDispatched") == 1 and types.count("ItemCancelled") == 1


async def test_a_refusal_never_echoes_a_huge_item_id(gateway: RunningGateway) -> None:
    """An item id far past any item's length (5,000 characters, in the path) is answered with a
    short refusal that names it cut, never the whole input."""
    huge = "q" * 5000
    async with gateway.http(gateway.key("office4")) as http:
        answers = [
            await http.get(f"/v1/items/{huge}"),
            await http.post(f"/v1/items/{huge}/commands", json=cmd("dispatch", "dispatcher", "z")),
        ]
    for answer in answers:
        assert answer.status_code in (404, 422), answer.text[:300]
        assert len(answer.text) < 1000 and huge not in answer.text, answer.text[:300]
