"""Webhooks, the pure part: what a subscription selects, how a delivery is signed, and the values
the delivery workflow passes around.

An integrator subscribes a URL to the events of items (issue 10, "status pushed back"): by event
type, and by item ids, departments, towns, or the items it registered itself; ``*`` selects all.
Every matching event is POSTed once or more (at least once; the receiver dedupes by ``event_id``).

Signature (``signature_header``): ``X-Duban-Signature: t=<unix seconds>,v1=<hex>``, where ``<hex>``
is HMAC-SHA256 under the subscription's secret of ``"<t>." + body`` (the exact bytes POSTed). The
time in the signed text lets a receiver refuse an old delivery replayed by someone else (Stripe's
scheme, which receivers know how to check).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

ANY = "*"
OUTCOMES = ("delivered", "parked", "unsubscribed")
"""How a delivery workflow ends: the receiver answered 2xx; every retry failed (kept in
``webhook_deliveries`` as ``parked``, to be redelivered by an operator); the subscription was
removed before it could be delivered."""


@dataclass(frozen=True)
class Subscription:
    """A subscription (never its secret): each selector a tuple of values, ``("*",)`` for any.

    ``own_items`` restricts it to items whose registration names ``integrator`` as their source.
    Times are aware UTC datetimes; ``removed_at`` is ``None`` while it is active."""

    subscription_id: str
    integrator: str
    url: str
    event_types: tuple[str, ...]
    items: tuple[str, ...]
    departments: tuple[str, ...]
    towns: tuple[str, ...]
    own_items: bool
    created_at: datetime
    removed_at: datetime | None = None


@dataclass(frozen=True)
class ItemPlace:
    """Where an item stands when one of its events happens: its department then, its town, and the
    integrator that registered it (``source``)."""

    department: str
    town: str
    source: str


def _selects(values: Iterable[str], value: str) -> bool:
    values = tuple(values)
    return ANY in values or value in values


def matches(sub: Subscription, event_type: str, item_id: str, place: ItemPlace) -> bool:
    """Whether ``sub`` selects an event of ``event_type`` on ``item_id`` standing at ``place``."""
    return (
        _selects(sub.event_types, event_type)
        and _selects(sub.items, item_id)
        and _selects(sub.departments, place.department)
        and _selects(sub.towns, place.town)
        and (not sub.own_items or place.source == sub.integrator)
    )


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 under ``secret`` of ``b"<timestamp>." + body`` (see the module docstring)."""
    return hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Duban-Signature`` value: ``t=<timestamp>,v1=<signature>``."""
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


@dataclass
class RetrySchedule:
    """How a delivery is retried, in seconds: the first wait, the longest wait (it doubles up to
    it), and how long after the first attempt it is parked. Defaults: 1 s, 10 min, one day
    (``duban.config``: ``webhook_retry_*``)."""

    initial_s: float = 1.0
    max_interval_s: float = 600.0
    give_up_after_s: float = 86_400.0


@dataclass
class DeliveryInput:
    """One event for one subscription (the workflow ``webhook-<subscription id>-<event id>``).

    The URL and the secret are not here: the activity reads them from the database, so they never
    enter a workflow history (which the Temporal UI shows)."""

    subscription_id: str
    event_id: str
    retry: RetrySchedule = field(default_factory=RetrySchedule)


@dataclass
class DeliveryAttempt:
    """What one attempt gave: ``outcome`` (``delivered`` or ``unsubscribed``) and the HTTP status."""

    outcome: str
    http_status: int = 0


@dataclass
class ParkInput:
    """A delivery that failed every retry: the last error, kept with it."""

    subscription_id: str
    event_id: str
    error: str


@dataclass
class DeliveryResult:
    """How the delivery workflow ended (one of ``OUTCOMES``)."""

    outcome: str
    error: str = ""


def delivery_workflow_id(subscription_id: str, event_id: str, redelivery: int = 0) -> str:
    """``webhook-<subscription>-<event>``, with ``-r<n>`` for the n-th redelivery by an operator."""
    base = f"webhook-{subscription_id}-{event_id}"
    return f"{base}-r{redelivery}" if redelivery else base
