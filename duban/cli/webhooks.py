"""``duban webhooks add|list|remove|deliveries|redeliver``: integrators' webhook subscriptions."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated

import typer

from duban.cli.common import errors, run_async
from duban.config import load_settings

webhooks_app = typer.Typer(
    help="Webhook subscriptions: integrators receive the events of their items, signed.",
    no_args_is_help=True,
)
ListOpt = "Comma-separated; * for any."


class DeliveryStatus(StrEnum):
    pending = "pending"
    delivered = "delivered"
    parked = "parked"
    unsubscribed = "unsubscribed"


def _store() -> object:
    from activities.webhooks import WebhookStore
    from events.sql import make_engine

    store = WebhookStore(make_engine(load_settings().database))
    store.create()
    return store


def _split(value: str) -> list[str]:
    return [p.strip() for p in value.split(",") if p.strip()] or ["*"]


@webhooks_app.command("add")
def add(
    url: Annotated[str, typer.Argument(help="http(s) URL that receives the POSTs.")],
    integrator: Annotated[str, typer.Option(help="The integrator it belongs to (as in duban keys).")],
    events: Annotated[str, typer.Option(help=f"Event types, e.g. ItemEscalated,ItemClosed. {ListOpt}")] = "*",
    items: Annotated[str, typer.Option(help=f"Item ids. {ListOpt}")] = "*",
    departments: Annotated[str, typer.Option(help=f"Departments. {ListOpt}")] = "*",
    towns: Annotated[str, typer.Option(help=f"Towns. {ListOpt}")] = "*",
    own_items: Annotated[bool, typer.Option(help="Only items the integrator registered.")] = False,
) -> None:
    """Subscribe ``URL``; the secret that signs its deliveries is printed once."""
    from pydantic import ValidationError as PydanticError

    from activities.webhooks import WebhookStore
    from duban.gateway.webhooks import SubscriptionBody, subscribe
    from events.errors import ValidationError

    with errors():
        store = _store()
        assert isinstance(store, WebhookStore)
        try:
            body = SubscriptionBody(
                url=url,
                event_types=_split(events),
                items=_split(items),
                departments=_split(departments),
                towns=_split(towns),
                own_items=own_items,
            )
        except PydanticError as exc:
            first = exc.errors()[0]
            raise ValidationError(".".join(str(p) for p in first["loc"]), str(first["msg"])) from None
        from duban.gateway.keys import KeyStore

        if not any(
            k.integrator == integrator and k.revoked_at is None for k in KeyStore(store.engine).list()
        ):
            raise ValidationError(
                "integrator", f"{integrator!r} has no valid key (duban keys create {integrator} …)"
            )
        sub, secret = subscribe(store, integrator, body)
        typer.echo(f"subscription {sub.subscription_id} for {sub.integrator}: secret {secret}")


@webhooks_app.command("list")
def list_subscriptions(
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines.")] = False,
    removed: Annotated[bool, typer.Option(help="Include removed subscriptions.")] = False,
) -> None:
    """Every subscription (never its secret)."""
    from activities.webhooks import WebhookStore
    from duban.gateway.webhooks import subscription_json

    with errors():
        store = _store()
        assert isinstance(store, WebhookStore)
        for sub in store.listed(removed=removed):
            row = subscription_json(sub)
            if as_json:
                typer.echo(json.dumps(row, ensure_ascii=False))
                continue
            chosen = " ".join(
                f"{k}={','.join(row[k])}" for k in ("event_types", "items", "departments", "towns")
            )
            state = f"removed {row['removed_at']}" if row["removed_at"] else "active"
            own = " own_items" if sub.own_items else ""
            typer.echo(f"{sub.subscription_id}  {sub.integrator}  {sub.url}  {chosen}{own}  {state}")


@webhooks_app.command("remove")
def remove(subscription_id: Annotated[str, typer.Argument(help="The subscription id.")]) -> None:
    """Remove a subscription: nothing more is delivered to it (retries in progress stop)."""
    from activities.webhooks import WebhookStore

    with errors():
        store = _store()
        assert isinstance(store, WebhookStore)
        sub = store.remove(subscription_id)
        typer.echo(f"subscription {sub.subscription_id} of {sub.integrator} removed at {sub.removed_at}")


@webhooks_app.command("deliveries")
def deliveries(
    subscription_id: Annotated[str | None, typer.Argument(help="Only this subscription.")] = None,
    status: Annotated[
        DeliveryStatus | None, typer.Option(help="pending, delivered, parked or unsubscribed.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="At most this many, latest first.")] = 100,
) -> None:
    """Delivery records: status, attempts, last HTTP status and error (parked ones need an operator)."""
    from activities.webhooks import WebhookStore

    with errors():
        store = _store()
        assert isinstance(store, WebhookStore)
        for row in store.deliveries(subscription_id, status.value if status else None, limit):
            error = f"  {row['last_error']}" if row["last_error"] else ""
            typer.echo(
                f"{row['subscription_id']}  {row['event_id']}  {row['status']}  attempts={row['attempts']}"
                f"  http={row['http_status'] or '-'}  {row['updated_at'].isoformat()}{error}"
            )


@webhooks_app.command("redeliver")
def redeliver(
    subscription_id: Annotated[str, typer.Argument(help="The subscription id.")],
    event: Annotated[str | None, typer.Option(help="This event id (default: every parked one).")] = None,
) -> None:
    """Deliver parked events of a subscription again (new delivery workflows, same retries)."""
    from duban.gateway.dispatcher import redeliver_parked

    with errors():
        started = run_async(redeliver_parked(load_settings(), subscription_id, event))
        typer.echo(f"{started} deliveries started again")
