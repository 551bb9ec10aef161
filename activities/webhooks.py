"""Webhook subscriptions and deliveries in SQL, and the delivery activities.

``webhook_subscriptions`` holds each subscription with its secret: the secret signs every delivery,
so it must be kept as it is (unlike integrator keys, of which only a digest is kept); it is shown
once, at creation, and never listed. ``webhook_deliveries`` keeps one row per (subscription, event)
that has been attempted: its status (``pending`` while retried, ``delivered``, ``parked``,
``unsubscribed``), the number of attempts, and the last HTTP status and error, so an operator sees
what is failing and why.

``WebhookDelivery.deliver_webhook`` POSTs one stored event (read from the event store, the only
source the gateway trusts) as JSON::

    {"subscription_id": "...", "event": {"event_id", "event_type", "item_id", "sequence",
     "occurred_at", "recorded_at", "actor", "payload"}, "attempt": 3}

with the headers ``X-Duban-Event-Id``, ``X-Duban-Subscription`` and ``X-Duban-Signature``
(``workflows.webhook_model.signature_header``). A 2xx answer is a delivery; anything else raises,
and Temporal retries (``workflows.webhook_delivery``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import secrets
import socket
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import Boolean, Column, Integer, MetaData, String, Table, Text, insert, select, update
from sqlalchemy.engine import Engine
from temporalio import activity

from events.codec import event_to_dict
from events.errors import DubanError
from events.sql import UTCDateTime, create_schema, upsert
from events.store import EventStore, event_of_row, stored_events
from workflows.webhook_model import (
    DeliveryAttempt,
    DeliveryInput,
    ParkInput,
    Subscription,
    signature_header,
)

metadata = MetaData()
webhook_subscriptions = Table(
    "webhook_subscriptions",
    metadata,
    Column("subscription_id", String(12), primary_key=True),
    Column("integrator", String(32), nullable=False),
    Column("url", String(1024), nullable=False),
    Column("secret", String(64), nullable=False),
    Column("event_types", Text, nullable=False),  # JSON lists; ["*"] for any
    Column("items", Text, nullable=False),
    Column("departments", Text, nullable=False),
    Column("towns", Text, nullable=False),
    Column("own_items", Boolean, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("removed_at", UTCDateTime(), nullable=True),
)
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("subscription_id", String(12), primary_key=True),
    Column("event_id", String(64), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("http_status", Integer, nullable=False),
    Column("last_error", String(500), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)
HTTP_TIMEOUT_S = 10.0
"""How long one POST may take, connect and answer together (redirects are not followed: a 3xx is a
failed attempt)."""
SETTLED = ("delivered", "parked", "unsubscribed")
"""Statuses a later failed attempt does not change (an operator's redelivery does)."""
_SELECTORS = ("event_types", "items", "departments", "towns")


class SubscriptionNotFound(DubanError):
    """No active subscription has this id (for this integrator)."""


class DeliveryFailed(DubanError):
    """The receiver did not answer 2xx (Temporal retries the attempt)."""


class WebhookStore:
    """Subscriptions and delivery records on ``engine``; ``create()`` makes the tables."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self) -> None:
        create_schema(self.engine, metadata)

    @staticmethod
    def _of(row: Any) -> Subscription:
        m = row._mapping
        chosen = {name: tuple(json.loads(m[name])) for name in _SELECTORS}
        return Subscription(
            m["subscription_id"],
            m["integrator"],
            m["url"],
            own_items=bool(m["own_items"]),
            created_at=m["created_at"],
            removed_at=m["removed_at"],
            **chosen,
        )

    def add(
        self, integrator: str, url: str, selectors: dict[str, list[str]], own_items: bool
    ) -> tuple[Subscription, str]:
        """Store a subscription of ``integrator`` to ``url`` with ``selectors`` (``event_types``,
        ``items``, ``departments``, ``towns``: lists of values, ``["*"]`` for any) and a new secret;
        returns the subscription and the secret (``whsec_`` + 43 URL-safe characters, 256 random
        bits), to show once."""
        sid, secret = secrets.token_hex(6), "whsec_" + secrets.token_urlsafe(32)
        row: dict[str, Any] = {name: json.dumps(sorted(set(selectors[name]))) for name in _SELECTORS}
        row |= {
            "subscription_id": sid,
            "integrator": integrator,
            "url": url,
            "secret": secret,
            "own_items": own_items,
            "created_at": datetime.now(UTC),
            "removed_at": None,
        }
        with self.engine.begin() as conn:
            conn.execute(insert(webhook_subscriptions), [row])
        found = self.get(sid)
        assert found is not None
        return found[0], secret

    def active(self) -> list[Subscription]:
        """Every subscription not removed, oldest first."""
        c = webhook_subscriptions.c
        query = select(webhook_subscriptions).where(c.removed_at.is_(None)).order_by(c.created_at)
        with self.engine.connect() as conn:
            return [self._of(r) for r in conn.execute(query)]

    def listed(self, integrator: str | None = None, removed: bool = False) -> list[Subscription]:
        """The subscriptions of ``integrator`` (all with ``None``), active ones only unless ``removed``."""
        c = webhook_subscriptions.c
        query = select(webhook_subscriptions).order_by(c.created_at)
        if integrator is not None:
            query = query.where(c.integrator == integrator)
        if not removed:
            query = query.where(c.removed_at.is_(None))
        with self.engine.connect() as conn:
            return [self._of(r) for r in conn.execute(query)]

    def get(self, subscription_id: str) -> tuple[Subscription, str] | None:
        """The subscription (removed ones too) and its secret, or ``None``."""
        c = webhook_subscriptions.c
        with self.engine.connect() as conn:
            row = conn.execute(
                select(webhook_subscriptions).where(c.subscription_id == subscription_id)
            ).first()
        return None if row is None else (self._of(row), str(row.secret))

    def remove(self, subscription_id: str, integrator: str | None = None) -> Subscription:
        """Remove an active subscription (of ``integrator``, when given): nothing more is delivered
        to it, including deliveries still being retried.

        Raises:
            SubscriptionNotFound: no such active subscription.
        """
        c = webhook_subscriptions.c
        where = [c.subscription_id == subscription_id, c.removed_at.is_(None)]
        if integrator is not None:
            where.append(c.integrator == integrator)
        with self.engine.begin() as conn:
            done = conn.execute(
                update(webhook_subscriptions).where(*where).values(removed_at=datetime.now(UTC))
            )
        found = self.get(subscription_id)
        if done.rowcount == 0 or found is None:
            raise SubscriptionNotFound(f"no active subscription {subscription_id!r}")
        return found[0]

    def record(
        self,
        subscription_id: str,
        event_id: str,
        status: str,
        http_status: int,
        error: str,
        attempted: bool = True,
    ) -> None:
        """Note one attempt of a delivery (or, not ``attempted``, a change of its status: parked,
        redelivered): the status, the HTTP status (0: none) and the error (clipped to 500
        characters). An attempt that failed never turns a settled delivery (``SETTLED``) back to
        ``pending``: an attempt can outlive its timeout and end after the workflow parked it."""
        key = {"subscription_id": subscription_id, "event_id": event_id}
        with self.engine.begin() as conn:
            prior = conn.execute(
                select(webhook_deliveries.c.attempts, webhook_deliveries.c.status).where(
                    *(getattr(webhook_deliveries.c, k) == v for k, v in key.items())
                )
            ).first()
            attempts = int(prior.attempts if prior else 0) + (1 if attempted else 0)
            if attempted and status == "pending" and prior is not None and prior.status in SETTLED:
                status = prior.status  # a late attempt (one that outlived its timeout) changes no outcome
            row = key | {
                "status": status,
                "attempts": attempts,
                "http_status": http_status,
                "last_error": error[:500],
                "updated_at": datetime.now(UTC),
            }
            changed = ("status", "attempts", "http_status", "last_error", "updated_at")
            upsert(
                conn,
                webhook_deliveries,
                ["subscription_id", "event_id"],
                [row],
                lambda _, excluded: {name: excluded[name] for name in changed},
            )

    def delivery(self, subscription_id: str, event_id: str) -> dict[str, Any] | None:
        """The record of one delivery, or ``None`` if it was never attempted."""
        c = webhook_deliveries.c
        query = select(webhook_deliveries).where(c.subscription_id == subscription_id, c.event_id == event_id)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else dict(row._mapping)

    def deliveries(
        self, subscription_id: str | None = None, status: str | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Delivery records, latest first, filtered by subscription and status."""
        c = webhook_deliveries.c
        query = select(webhook_deliveries).order_by(c.updated_at.desc()).limit(limit)
        if subscription_id is not None:
            query = query.where(c.subscription_id == subscription_id)
        if status is not None:
            query = query.where(c.status == status)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]


class RefusedDestination(DubanError):
    """A webhook URL that must not be called (a link-local, multicast or unspecified address)."""


def forbidden_address(host: str) -> str:
    """Why a literal IP address must not receive webhooks (``""`` if it may): link-local addresses
    are where clouds serve instance metadata and credentials (169.254.169.254); multicast and
    unspecified addresses are no receiver. Loopback and private networks are allowed: an office's
    own systems live there."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return ""
    kinds = {
        "link-local": address.is_link_local,
        "multicast": address.is_multicast,
        "unspecified": address.is_unspecified,
        "reserved": address.is_reserved,
    }
    for what, hit in kinds.items():
        if hit:
            return f"{host} is a {what} address"
    return ""


def check_destination(url: str) -> None:
    """Refuse to call ``url`` if its host resolves to a forbidden address (``forbidden_address``),
    checked at each attempt since a name may resolve elsewhere later.

    Raises:
        RefusedDestination: the reason. OSError: the name does not resolve.
    """
    host = urlsplit(url).hostname or ""
    for *_, sockaddr in socket.getaddrinfo(host, None):
        reason = forbidden_address(str(sockaddr[0]))
        if reason:
            raise RefusedDestination(f"refused: {host} resolves to {reason}")


def delivery_body(subscription_id: str, event: dict[str, Any], attempt: int) -> bytes:
    """The JSON bytes POSTed for one event (see the module docstring)."""
    body = {"subscription_id": subscription_id, "event": event, "attempt": attempt}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


class WebhookDelivery:
    """The delivery activities on a ``WebhookStore`` and an ``EventStore`` (register the bound
    methods ``deliver_webhook`` and ``park_webhook_delivery``)."""

    def __init__(self, webhooks: WebhookStore, store: EventStore) -> None:
        self.webhooks, self.store = webhooks, store

    def _event(self, event_id: str) -> dict[str, Any] | None:
        with self.store.engine.connect() as conn:
            row = conn.execute(select(stored_events).where(stored_events.c.event_id == event_id)).first()
        return None if row is None else event_to_dict(event_of_row(row))

    @activity.defn(name="deliver_webhook")
    async def deliver_webhook(self, input: DeliveryInput) -> DeliveryAttempt:
        """Activity: POST the event (see the module docstring).

        Raises:
            DeliveryFailed: no answer, or an answer other than 2xx (retried by Temporal).
        """
        found = await asyncio.to_thread(self.webhooks.get, input.subscription_id)
        if found is None or found[0].removed_at is not None:
            await asyncio.to_thread(
                self.webhooks.record, input.subscription_id, input.event_id, "unsubscribed", 0,
                "the subscription was removed", False,
            )  # fmt: skip
            return DeliveryAttempt("unsubscribed")
        sub, secret = found
        event = await asyncio.to_thread(self._event, input.event_id)
        if event is None:  # the dispatcher starts deliveries of stored events only
            raise DeliveryFailed(f"event {input.event_id} is not in the event store")
        attempt = activity.info().attempt
        body = delivery_body(sub.subscription_id, event, attempt)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "duban-webhooks/1",
            "X-Duban-Event-Id": input.event_id,
            "X-Duban-Subscription": sub.subscription_id,
            "X-Duban-Signature": signature_header(secret, int(time.time()), body),
        }
        status, error = 0, ""
        try:
            await asyncio.to_thread(check_destination, sub.url)
            async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_S, follow_redirects=False) as http:
                answer = await asyncio.wait_for(
                    http.post(sub.url, content=body, headers=headers), HTTP_TIMEOUT_S
                )
            status = answer.status_code
            if not 200 <= status < 300:
                error = f"the receiver answered {status}"
        except TimeoutError:
            error = f"the receiver did not answer within {HTTP_TIMEOUT_S:.0f} s"
        except Exception as exc:  # any failure to deliver is this attempt's error, recorded below
            error = f"{type(exc).__name__}: {exc}"
        outcome = "delivered" if not error else "pending"
        await asyncio.to_thread(
            self.webhooks.record, sub.subscription_id, input.event_id, outcome, status, error
        )
        if error:
            raise DeliveryFailed(error)
        return DeliveryAttempt("delivered", status)

    @activity.defn(name="park_webhook_delivery")
    async def park_webhook_delivery(self, input: ParkInput) -> None:
        """Activity: mark the delivery parked (its last error kept from its last attempt if known)."""
        last = await asyncio.to_thread(self.webhooks.delivery, input.subscription_id, input.event_id)
        error = (last["last_error"] if last and last["last_error"] else "") or input.error
        status = int(last["http_status"]) if last else 0
        await asyncio.to_thread(
            self.webhooks.record, input.subscription_id, input.event_id, "parked", status, error, False
        )
