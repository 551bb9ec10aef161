"""``duban stack up|down|status``: manage the embedded Temporal dev server and Kafka broker."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated

import typer

from duban.config import load_settings
from duban.errors import ConfigurationError, StackError
from duban.stack.embedded import StackStatus, stack_down, stack_status, stack_up

stack_app = typer.Typer(
    help="Start, stop and inspect the embedded stack (Temporal, Kafka, database).", no_args_is_help=True
)

_HEADERS = ("service", "address", "state", "pid", "log")


def _table(status: StackStatus) -> str:
    rows = [_HEADERS]
    for svc in status.services:
        state = f"{svc.state} ({svc.detail})" if svc.detail else svc.state
        rows.append((svc.name, svc.address, state, str(svc.pid or "-"), str(svc.log or "-")))
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEADERS))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def _run(action: Callable[..., StackStatus]) -> StackStatus:
    try:
        return action(load_settings())
    except (StackError, ConfigurationError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None


@stack_app.command("up")
def up(
    apps: Annotated[
        bool, typer.Option("--apps", help="Also run duban worker, duban project and duban serve (port 8080).")
    ] = False,
) -> None:
    """Start the embedded services that are not running and wait until they answer."""
    started = time.monotonic()
    status = _run(lambda settings: stack_up(settings, apps=apps))
    typer.echo(_table(status))
    if status.temporal_ui:
        typer.echo(f"Temporal UI: {status.temporal_ui}")
    typer.echo(f"ready in {time.monotonic() - started:.1f} s")


@stack_app.command("down")
def down() -> None:
    """Stop the embedded services (SIGTERM, then SIGKILL after 15 s)."""
    typer.echo(_table(_run(stack_down)))


@stack_app.command("status")
def status() -> None:
    """Show each service, its address, state, pid and log file."""
    typer.echo(_table(_run(stack_status)))
