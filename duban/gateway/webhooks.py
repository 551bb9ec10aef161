"""Webhook subscriptions for integrators: the use cases (shared by the API and ``duban webhooks``)
and the API under ``/v1/webhooks``.

A subscription selects events by type, item ids, departments and towns (``*`` for any) or only the
items its integrator registered (``own_items``). Through the API, a key needs the ``subscribe`` kind
in its scope, and a key limited to some departments or towns may subscribe only within them (403
otherwise): an integrator never receives what it could not read. Deliveries are described in
``activities.webhooks`` (what is POSTed and how it is signed) and ``workflows.webhook_delivery``
(retries, parking); the dispatcher is ``duban.gateway.dispatcher``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Query, Request
from pydantic import Field, StringConstraints

from activities.webhooks import SubscriptionNotFound, WebhookStore, forbidden_address
from duban.gateway.http_api import Key
from duban.gateway.intake import ITEM_ID_PATTERN, _Body
from duban.gateway.keys import ANY, INTEGRATOR, SUBSCRIBE, IntegratorKey, OutOfScope
from duban.gateway.strict import StrictJSONRoute, no_unknown_query
from events import types as t
from events.errors import ValidationError
from workflows.webhook_model import Subscription

MAX_SELECTORS = 100
"""At most this many values per selector (a subscriber wanting more subscribes to ``*``)."""
_CODE = r"^(\*|[a-z0-9][a-z0-9_.-]{0,31})$"


def _any() -> list[str]:
    return [ANY]


EventType = Annotated[str, StringConstraints(max_length=64)]


class SubscriptionBody(_Body):
    """A subscription: the URL to POST to and what it selects (each list ``["*"]`` for any)."""

    url: Annotated[str, StringConstraints(min_length=8, max_length=1024)] = Field(
        description="http:// or https:// URL that receives the POSTs"
    )
    event_types: Annotated[list[EventType], Field(min_length=1, max_length=MAX_SELECTORS)] = Field(
        default_factory=_any
    )
    items: Annotated[
        list[Annotated[str, StringConstraints(pattern=rf"^(\*|{ITEM_ID_PATTERN[1:-1]})$")]],
        Field(min_length=1, max_length=MAX_SELECTORS),
    ] = Field(default_factory=_any)
    departments: Annotated[
        list[Annotated[str, StringConstraints(pattern=_CODE)]], Field(min_length=1, max_length=MAX_SELECTORS)
    ] = Field(default_factory=_any)
    towns: Annotated[
        list[Annotated[str, StringConstraints(pattern=_CODE)]], Field(min_length=1, max_length=MAX_SELECTORS)
    ] = Field(default_factory=_any)
    own_items: bool = False


def check_subscription(body: SubscriptionBody) -> None:
    """Raises ``ValidationError`` (field named) for a URL that is not http(s) with a host, or an
    event type duban does not record."""
    if re.search(r"[\s\x00-\x1f\x7f]", body.url):
        raise ValidationError("url", "must not contain spaces or control characters")
    parts = urlsplit(body.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("url", "must be an http:// or https:// URL with a host")
    try:
        port = parts.port
    except ValueError:
        raise ValidationError("url", "has a port outside 1-65535") from None
    if port == 0:
        raise ValidationError("url", "has a port outside 1-65535")
    reason = forbidden_address(parts.hostname)
    if reason:
        raise ValidationError("url", f"{reason}; webhooks are not sent there")
    for i, name in enumerate(body.event_types):
        if name != ANY and name not in t.EVENT_TYPES:
            raise ValidationError(f"event_types.{i}", f"{name!r} is not an event type duban records")


def require_subscribe(key: IntegratorKey) -> None:
    """Raise ``OutOfScope`` unless the key's scope has the kind ``subscribe`` (or ``*``)."""
    if ANY not in key.scope.kinds and SUBSCRIBE not in key.scope.kinds:
        raise OutOfScope("the key may not manage webhooks (its scope lacks the kind 'subscribe')", "kind")


def scope_refusal(key: IntegratorKey, body: SubscriptionBody) -> str | None:
    """Why ``key`` may not make this subscription, or ``None``."""
    scope = key.scope
    if ANY not in scope.kinds and SUBSCRIBE not in scope.kinds:
        return "the key may not manage webhooks (its scope lacks the kind 'subscribe')"
    for name in ("departments", "towns"):
        allowed: frozenset[str] = getattr(scope, name)
        wanted = set(getattr(body, name))
        if ANY not in allowed and (ANY in wanted or not wanted <= allowed):
            return f"the key may subscribe only to its {name}: {', '.join(sorted(allowed))}"
    return None


def subscribe(store: WebhookStore, integrator: str, body: SubscriptionBody) -> tuple[Subscription, str]:
    """Store the subscription of ``integrator``; returns it and its secret (shown once).

    Raises:
        ValidationError: a malformed integrator code; see ``check_subscription``.
    """
    if not INTEGRATOR.match(integrator):
        raise ValidationError("integrator", f"{integrator!r} is not a code (lower-case ASCII, at most 32)")
    check_subscription(body)
    selectors = {name: getattr(body, name) for name in ("event_types", "items", "departments", "towns")}
    return store.add(integrator, body.url, selectors, body.own_items)


def subscription_json(sub: Subscription) -> dict[str, Any]:
    """A subscription as the API and ``duban webhooks list --json`` show it (never its secret)."""
    return {
        "subscription_id": sub.subscription_id,
        "integrator": sub.integrator,
        "url": sub.url,
        "event_types": list(sub.event_types),
        "items": list(sub.items),
        "departments": list(sub.departments),
        "towns": list(sub.towns),
        "own_items": sub.own_items,
        "created_at": sub.created_at.isoformat(),
        "removed_at": sub.removed_at.isoformat() if sub.removed_at else None,
    }


def delivery_json(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if k == "updated_at" else v) for k, v in row.items()}


# --- the API ---------------------------------------------------------------------------------

router = APIRouter(
    prefix="/v1/webhooks",
    tags=["webhooks"],
    route_class=StrictJSONRoute,
    dependencies=[Depends(no_unknown_query)],
)


def _store(request: Request) -> WebhookStore:
    store: WebhookStore = request.app.state.webhooks
    return store


Store = Annotated[WebhookStore, Depends(_store)]


@router.post("", status_code=201, summary="Subscribe a URL to item events (the secret is shown once)")
def add_subscription(body: SubscriptionBody, key: Key, store: Store) -> dict[str, Any]:
    refusal = scope_refusal(key, body)
    if refusal:
        raise OutOfScope(
            refusal, "departments" if "departments" in refusal else "towns" if "towns" in refusal else "kind"
        )
    sub, secret = subscribe(store, key.integrator, body)
    return subscription_json(sub) | {"secret": secret}


@router.get("", summary="The key's integrator's subscriptions")
def list_subscriptions(key: Key, store: Store) -> dict[str, Any]:
    require_subscribe(key)
    return {"subscriptions": [subscription_json(s) for s in store.listed(key.integrator)]}


@router.delete("/{subscription_id}", summary="Remove a subscription: nothing more is delivered to it")
def remove_subscription(subscription_id: str, key: Key, store: Store) -> dict[str, Any]:
    require_subscribe(key)
    return subscription_json(store.remove(subscription_id, key.integrator))


@router.get(
    "/{subscription_id}/deliveries", summary="Deliveries of a subscription: pending, delivered, parked"
)
def deliveries(
    subscription_id: str,
    key: Key,
    store: Store,
    status: Annotated[str, Query(pattern=r"^(|pending|delivered|parked|unsubscribed)$")] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    require_subscribe(key)
    found = store.get(subscription_id)
    if found is None or found[0].integrator != key.integrator:
        raise SubscriptionNotFound(f"no subscription {subscription_id!r}")
    rows = store.deliveries(subscription_id, status or None, limit)
    return {"deliveries": [delivery_json(r) for r in rows]}
