"""Issue 10: the command topic bridge (faust-streaming) on the real broker and dev server: an item
registered and taken to close through ``duban.commands`` by update-with-start, outcomes keyed by
command id, a redelivered command applied once, and every bad message dead-lettered with its reason
while the bridge goes on."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
import pytest_asyncio
from helpers.gateway import EXPECTED_EVENTS, RunningGateway, running_gateway, unique
from temporalio.testing import WorkflowEnvironment

from duban.gateway.bridge import lanes
from duban.gateway.envelopes import SCHEMA, sign_envelope
from events.store import EventStore


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def bridged(
    dev_env: WorkflowEnvironment, broker: str, database_url: str
) -> AsyncIterator[RunningGateway]:
    async with running_gateway(dev_env, broker, database_url, with_bridge=True) as gw:
        yield gw


def envelope(
    key: str, item: str, command: dict[str, Any], registration: dict[str, Any] | None = None
) -> tuple[bytes, bytes]:
    body = {"schema": SCHEMA, "item_id": item, "registration": registration, "command": command}
    return item.encode(), json.dumps(sign_envelope(body, key)).encode()


def cmd(n: int, kind: str, role: str, actor: str, **fields: Any) -> dict[str, Any]:
    """Command ``n`` of a test, dated ``n`` seconds after its item's registration (``registration``
    dates the report two minutes ago)."""
    now = (datetime.now(UTC) - timedelta(minutes=2) + timedelta(seconds=n)).isoformat()
    return {
        "command_id": f"t{n}-{kind}",
        "kind": kind,
        "actor": actor,
        "role": role,
        "occurred_at": now,
    } | fields


def registration(item: str) -> dict[str, Any]:
    return {
        "item_id": item,
        "service_code": "pothole",
        "town": "chengguan",
        "reported_at": (datetime.now(UTC) - timedelta(minutes=3)).isoformat(),
        "actor": "wang",
    }


async def test_an_item_through_the_topic_reads_back_like_one_through_http(bridged: RunningGateway) -> None:
    key, item = bridged.key("field-app"), unique("topic")
    steps = [
        cmd(1, "dispatch", "dispatcher", "zhao", unit="roads-2", department="transport"),
        cmd(2, "accept", "handling_unit", "li", unit="roads-2"),
        cmd(3, "submit_rectification", "handling_unit", "li", unit="roads-2", evidence=["photo://9"]),
        cmd(4, "verify", "inspector", "chen", unit="inspection", passed=True),
        cmd(5, "close", "dispatcher", "zhao"),
    ]
    messages = [envelope(key, item, steps[0], registration(item))]  # update-with-start creates the item
    messages += [envelope(key, item, c) for c in steps[1:]]
    messages.append(messages[1])  # a redelivery of the accept: applied once
    await bridged.publish(messages)
    results = await bridged.read_until(
        bridged.settings.command_results_topic, lambda r: r["item_id"] == item, count=len(messages)
    )
    results = [(k, r) for k, r in results if r["item_id"] == item]
    assert [k.decode() for k, _ in results] == [c["command_id"] for c in steps] + [steps[1]["command_id"]]
    assert all(r["applied"] and r["item_id"] == item and r["integrator"] == "field-app" for _, r in results)
    types = [e.event_type for e in EventStore(bridged.engine).read(item) if not e.actor.startswith("system")]
    assert types == EXPECTED_EVENTS
    async with bridged.http(key) as http:
        shown = (await http.get(f"/v1/items/{item}")).json()
    assert shown["stage"] == "closed" and shown["department"] == "transport"
    assert [e["event_type"] for e in shown["timeline"]] == [
        e.event_type for e in EventStore(bridged.engine).read(item)
    ]
    row = await bridged.projected(item, "closed")
    assert row.resolution_deadline is not None


async def test_bad_messages_are_dead_lettered_with_the_reason_and_the_bridge_goes_on(
    bridged: RunningGateway,
) -> None:
    key, item = (
        bridged.key("field-app2", kinds="register,dispatch", roles="dispatcher", departments="transport"),
        unique("dlq"),
    )
    good = envelope(key, item, cmd(1, "dispatch", "dispatcher", "zhao", unit="roads-2"), registration(item))
    _, value = good
    forged = json.loads(value) | {"signature": "0" * 64}
    tampered = json.loads(value)
    tampered["command"]["unit"] = "someone-else"  # changed after signing
    revoked_key = bridged.key("old-app")
    from duban.gateway.keys import KeyStore

    KeyStore(bridged.engine).revoke(revoked_key.split("_")[1])
    bad = [
        (b"x", b"not json at all", "envelope"),
        (item.encode(), json.dumps(forged).encode(), "signature"),
        (item.encode(), json.dumps(tampered).encode(), "signature"),
        (
            *envelope(
                revoked_key, item, cmd(2, "dispatch", "dispatcher", "zhao", unit="r"), registration(item)
            ),
            "key_id",
        ),
        (*envelope(key, item, cmd(3, "rate_responder", "grid_worker", "z", rating=4.5)), "command.rating"),
        (
            *envelope(
                key, item, cmd(4, "verify", "inspector", "chen", unit="i", passed=True), registration(item)
            ),
            "kind",
        ),
        (b"other-item", envelope(key, item, cmd(5, "dispatch", "dispatcher", "zhao", unit="r"))[1], "key"),
    ]
    await bridged.publish([(k, v) for k, v, _ in bad] + [good])
    letters = await bridged.read_until(bridged.settings.commands_dead_letter_topic, lambda _: True, len(bad))
    # Order holds per item only (other keys' messages run side by side): match letters by their bytes.
    got = sorted((base64.b64decode(letter["raw"]), letter["field"]) for _, letter in letters)
    assert got == sorted((v, field) for _, v, field in bad)
    assert all(letter["reason"] for _, letter in letters)
    results = await bridged.read_until(bridged.settings.command_results_topic, lambda r: r["item_id"] == item)
    assert [(k.decode(), r["applied"]) for k, r in results if r["item_id"] == item] == [("t1-dispatch", True)]
    types = [e.event_type for e in EventStore(bridged.engine).read(item) if not e.actor.startswith("system")]
    assert types == ["ItemRegistered", "ItemDispatched"]  # nothing of the bad messages was applied


@pytest.mark.parametrize("kind", ["close", "accept"])
async def test_an_illegal_command_is_answered_with_the_reason(bridged: RunningGateway, kind: str) -> None:
    key, item = bridged.key("field-app3"), unique("illegal")
    await bridged.publish([envelope(key, item, cmd(1, kind, "dispatcher", "zhao"), registration(item))])
    results = await bridged.read_until(bridged.settings.command_results_topic, lambda r: r["item_id"] == item)
    [mine] = [r for _, r in results if r["item_id"] == item]
    assert mine["applied"] is False and mine["error"] == "IllegalCommand" and "registered" in mine["reason"]


def test_a_batch_splits_into_lanes_that_keep_each_items_order() -> None:
    def event(partition: int, key: bytes | None, offset: int) -> SimpleNamespace:
        return SimpleNamespace(key=key, message=SimpleNamespace(partition=partition, offset=offset))

    batch = [event(0, b"a", 0), event(1, b"b", 0), event(0, b"a", 1), event(0, None, 2), event(1, b"b", 1)]
    batch += [event(0, b"c", 3), event(0, b"a", 4)]
    got = [[(e.key, e.message.offset) for e in lane] for lane in lanes(batch)]
    assert got == [
        [(b"a", 0), (b"a", 1), (b"a", 4)],
        [(b"b", 0), (b"b", 1)],
        [(None, 2)],
        [(b"c", 3)],
    ]
