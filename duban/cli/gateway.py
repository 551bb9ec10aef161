"""``duban serve`` (the gateway over HTTP) and ``duban keys create|list|revoke`` (integrator keys)."""

from __future__ import annotations

import json
import os
from typing import Annotated

import typer

from duban.cli.common import errors, fail
from duban.config import load_settings
from duban.logs import configure_logging

keys_app = typer.Typer(help="Integrator keys: create (shown once), list, revoke.", no_args_is_help=True)

ScopeOpt = "Comma-separated; * for any."


def _store() -> object:
    from duban.gateway.keys import KeyStore
    from events.sql import make_engine

    return KeyStore(make_engine(load_settings().database))


@keys_app.command("create")
def create(
    integrator: Annotated[str, typer.Argument(help="The integrator's code, e.g. hotline.")],
    kinds: Annotated[str, typer.Option(help=f"Command kinds (and register) it may send. {ScopeOpt}")],
    roles: Annotated[str, typer.Option(help=f"Roles it may assert. {ScopeOpt}")] = "*",
    departments: Annotated[str, typer.Option(help=f"Departments it may act for. {ScopeOpt}")] = "*",
    towns: Annotated[str, typer.Option(help=f"Towns it may act in. {ScopeOpt}")] = "*",
) -> None:
    """Create a key; its full text is printed once (keep it: only a digest is stored)."""
    from duban.gateway.keys import KeyStore, Scope

    with errors():
        store = _store()
        assert isinstance(store, KeyStore)
        key, text = store.create(integrator, Scope.of(kinds, roles, departments, towns))
        typer.echo(f"key {key.key_id} for {key.integrator}: {text}")


@keys_app.command("list")
def list_keys(as_json: Annotated[bool, typer.Option("--json", help="JSON lines.")] = False) -> None:
    """Every key: id, integrator, scope, created, revoked (never the secret)."""
    from duban.gateway.keys import KeyStore

    with errors():
        store = _store()
        assert isinstance(store, KeyStore)
        for key in store.list():
            scope = json.loads(key.scope.as_json())
            revoked = key.revoked_at.isoformat() if key.revoked_at else None
            if as_json:
                row = {"key_id": key.key_id, "integrator": key.integrator, "scope": scope}
                typer.echo(
                    json.dumps(row | {"created_at": key.created_at.isoformat(), "revoked_at": revoked})
                )
            else:
                parts = " ".join(f"{k}={','.join(v)}" for k, v in scope.items())
                typer.echo(
                    f"{key.key_id}  {key.integrator}  {parts}  {'revoked ' + revoked if revoked else 'valid'}"
                )


@keys_app.command("revoke")
def revoke(key_id: Annotated[str, typer.Argument(help="The key id (from keys list).")]) -> None:
    """Revoke a key at once: every later request with it is refused (401)."""
    from duban.gateway.keys import KeyStore

    with errors():
        store = _store()
        assert isinstance(store, KeyStore)
        key = store.revoke(key_id)
        typer.echo(f"key {key.key_id} of {key.integrator} revoked at {key.revoked_at}")


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8080,
    bridge: Annotated[
        bool, typer.Option(help="Run the command topic bridge (duban.commands → duban.command-results).")
    ] = True,
    webhooks: Annotated[bool, typer.Option(help="Run the webhook dispatcher.")] = True,
) -> None:
    """Run the gateway: duban's HTTP API (/v1, docs at /docs), Open311 GeoReport v2 (/open311/v2),
    the command topic bridge and the webhook dispatcher (``duban worker`` delivers the webhooks)."""
    import uvicorn

    from duban.gateway.app import DispatchOptions, create_app
    from duban.gateway.bridge import BridgeOptions
    from duban.gateway.context import open_gateway

    if (
        ctx.parent is not None
        and ctx.parent.params.get("log_level") is None
        and not os.environ.get("DUBAN_LOG_LEVEL")
    ):
        configure_logging("INFO")  # the access log is INFO: on unless a level was chosen
    from duban.stack.probes import port_free

    if not port_free(port, host):  # before the bridge joins its group or the dispatcher starts
        raise fail(Exception(f"port: {host}:{port} is in use (another duban serve?)"))
    settings = load_settings()
    app = create_app(
        lambda: open_gateway(settings),
        BridgeOptions() if bridge else None,
        DispatchOptions() if webhooks else None,
    )
    try:
        uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)
    except SystemExit as exc:  # uvicorn exits when the app cannot start (Temporal down, bad catalogue)
        raise fail(Exception("the gateway could not start (see the log above)")) from exc
