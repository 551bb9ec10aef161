"""Issue 10, status pushed back: webhook subscriptions over the API, deliveries that survive a
receiver that is down for a while (each verified by its signature, computed here independently),
scopes, parking of a delivery that keeps failing, and redelivery by an operator."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest_asyncio
from helpers.gateway import LIFECYCLE, REPORTED, RunningGateway, command, running_gateway, unique
from helpers.servers import free_ports
from temporalio.testing import WorkflowEnvironment

from duban.gateway.dispatcher import redeliver_parked
from events.store import EventStore


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def hooked(
    dev_env: WorkflowEnvironment, broker: str, database_url: str
) -> AsyncIterator[RunningGateway]:
    retries = {
        "webhook_retry_initial_s": 0.2,
        "webhook_retry_max_interval_s": 1.0,
        "webhook_give_up_after_s": 6.0,
    }
    async with running_gateway(dev_env, broker, database_url, with_webhooks=True, **retries) as gw:
        yield gw


class Receiver:
    """A subscriber's HTTP server on loopback: ``up()`` listens on ``port``, ``down()`` closes it (a
    POST then meets a refused connection); it answers ``status`` and keeps what it got."""

    def __init__(self, port: int, status: int = 200) -> None:
        self.port, self.status = port, status
        self.got: list[tuple[dict[str, str], bytes]] = []
        self._server: ThreadingHTTPServer | None = None

    def up(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.got.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


@contextmanager
def receiver(status: int = 200, up: bool = True) -> Iterator[Receiver]:
    r = Receiver(free_ports(1)[0], status)
    if up:
        r.up()
    try:
        yield r
    finally:
        r.down()


def verified(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """The receiver's check, written from the README: ``t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">``."""
    parts = dict(p.split("=", 1) for p in headers["x-duban-signature"].split(","))
    expected = hmac.new(secret.encode(), parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"])


async def take_through_lifecycle(gw: RunningGateway, key: str, item: str) -> None:
    async with gw.http(key) as http:
        reg = {"item_id": item, "service_code": "greenery", "town": "xicheng", "reported_at": REPORTED}
        created = await http.post("/v1/items", json=reg | {"actor": "wang"})
        assert created.status_code == 201, created.text
        for n, (kind, role, fields) in enumerate(LIFECYCLE):
            done = await http.post(f"/v1/items/{item}/commands", json=command(kind, role, n, **fields))
            assert done.status_code == 200 and done.json()["applied"], done.text


async def wait_for(check: Any, timeout_s: float = 60) -> None:
    for _ in range(int(timeout_s / 0.2)):
        if check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"not within {timeout_s} s")


async def test_a_receiver_down_for_a_while_gets_every_subscribed_event_signed(hooked: RunningGateway) -> None:
    key, item = hooked.key("field-app"), unique("hook")
    with receiver(up=False) as r:
        async with hooked.http(key) as http:
            made = await http.post(
                "/v1/webhooks",
                json={"url": r.url, "items": [item], "event_types": ["ItemDispatched", "ItemClosed"]},
            )
            assert made.status_code == 201, made.text
            sub = made.json()
            assert sub["secret"].startswith("whsec_") and sub["integrator"] == "field-app"
            listed = (await http.get("/v1/webhooks")).json()["subscriptions"]
            assert [s["subscription_id"] for s in listed] == [sub["subscription_id"]]
            assert "secret" not in listed[0]
        await take_through_lifecycle(hooked, key, item)
        wanted = {
            e.event_id: e.event_type
            for e in EventStore(hooked.engine).read(item)
            if e.event_type in ("ItemDispatched", "ItemClosed")
        }
        assert sorted(wanted.values()) == ["ItemClosed", "ItemDispatched"]
        pending = lambda: {row["event_id"] for row in hooked.webhook_rows(sub["subscription_id"], "pending")}  # noqa: E731
        await wait_for(lambda: pending() == set(wanted))  # each met the closed port at least once
        r.up()  # the receiver comes back; the retries reach it
        await wait_for(lambda: {h["x-duban-event-id"] for h, _ in r.got} >= set(wanted))
    bodies = [json.loads(body) for _, body in r.got]
    assert all(verified(sub["secret"], headers, body) for headers, body in r.got)
    assert not verified("whsec_wrong", *r.got[0])
    assert {b["event"]["event_id"]: b["event"]["event_type"] for b in bodies} == wanted
    assert all(
        b["event"]["item_id"] == item and b["subscription_id"] == sub["subscription_id"] for b in bodies
    )
    delivered = lambda: {row["event_id"] for row in hooked.webhook_rows(sub["subscription_id"], "delivered")}  # noqa: E731
    await wait_for(lambda: delivered() == set(wanted))  # recorded once each POST has been answered
    rows = hooked.webhook_rows(sub["subscription_id"], "delivered")
    assert all(row["attempts"] >= 2 for row in rows)  # the first attempt met a closed port


async def test_a_delivery_that_keeps_failing_is_parked_then_redelivered(hooked: RunningGateway) -> None:
    key, item = hooked.key("hotline-hooks"), unique("park")
    with receiver(status=500) as r:
        async with hooked.http(key) as http:
            made = await http.post(
                "/v1/webhooks", json={"url": r.url, "items": [item], "event_types": ["ItemRegistered"]}
            )
            sub = made.json()
            await take_through_lifecycle(hooked, key, item)
            await wait_for(lambda: bool(hooked.webhook_rows(sub["subscription_id"], "parked")), 90)
            parked = (
                await http.get(
                    f"/v1/webhooks/{sub['subscription_id']}/deliveries", params={"status": "parked"}
                )
            ).json()["deliveries"]
        [row] = parked
        assert row["http_status"] == 500 and row["attempts"] >= 3 and "500" in row["last_error"]
        r.status = 200
        started = await redeliver_parked(hooked.settings, sub["subscription_id"])
        assert started == 1
        await wait_for(lambda: bool(hooked.webhook_rows(sub["subscription_id"], "delivered")))
    assert r.got[-1][0]["x-duban-event-id"] == row["event_id"]


async def test_subscriptions_are_checked_and_scoped(hooked: RunningGateway) -> None:
    narrow = hooked.key("um-app", kinds="subscribe", departments="urban-management")
    no_subscribe = hooked.key("reader", kinds="register")
    async with hooked.http(narrow) as http:
        everything = await http.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/h"})
        assert everything.status_code == 403 and "departments" in everything.json()["reason"]
        other = await http.post(
            "/v1/webhooks", json={"url": "http://127.0.0.1:9/h", "departments": ["housing"]}
        )
        assert other.status_code == 403
        mine = await http.post(
            "/v1/webhooks", json={"url": "http://127.0.0.1:9/h", "departments": ["urban-management"]}
        )
        assert mine.status_code == 201, mine.text
        bad_type = await http.post(
            "/v1/webhooks",
            json={
                "url": "http://127.0.0.1:9/h",
                "departments": ["urban-management"],
                "event_types": ["Nope"],
            },
        )
        assert bad_type.status_code == 422 and bad_type.json()["field"] == "event_types.0"
        bad_url = await http.post(
            "/v1/webhooks", json={"url": "ftp://example.org/x", "departments": ["urban-management"]}
        )
        assert bad_url.status_code == 422 and bad_url.json()["field"] == "url"
        removed = await http.delete(f"/v1/webhooks/{mine.json()['subscription_id']}")
        assert removed.status_code == 200 and removed.json()["removed_at"]
        again = await http.delete(f"/v1/webhooks/{mine.json()['subscription_id']}")
        assert again.status_code == 404
    async with hooked.http(no_subscribe) as http:
        refused = await http.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/h"})
        assert refused.status_code == 403 and "subscribe" in refused.json()["reason"]
    async with hooked.http() as http:
        assert (await http.get("/v1/webhooks")).status_code == 401
