"""The ``duban`` command line (typer). Run ``duban --help``.

Every command reads its configuration from ``duban.config`` (environment variables, optional TOML).
Expected failures (``DubanError``) print ``error: …`` on stderr and exit with status 2.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer

from duban.cli import reports as cli_reports
from duban.cli.audit import audit_app
from duban.cli.calendars import calendars_app
from duban.cli.common import errors, fail, run_async, writable_file
from duban.cli.documents import report_app
from duban.cli.gateway import keys_app
from duban.cli.gateway import serve as serve_command
from duban.cli.imports import ProfileFileOpt, ServicesOpt, ZoneOpt, import_report, profile_app
from duban.cli.ledger import ledger as ledger_command
from duban.cli.stack import stack_app
from duban.cli.webhooks import webhooks_app
from duban.config import load_settings
from duban.errors import ConfigurationError
from duban.logs import configure_logging

app = typer.Typer(
    help="duban (督办): supervise problems found in the city until they are fixed and verified.",
    no_args_is_help=True,
)
app.add_typer(stack_app, name="stack", help="Start, stop or inspect the embedded stack.")
app.add_typer(calendars_app, name="calendars", help="The working calendars: list versions, draft one.")
app.add_typer(keys_app, name="keys", help="Integrator keys for the gateway: create, list, revoke.")
app.add_typer(
    audit_app,
    name="audit",
    help="Auditors: the chained log, periods recomputed, timelines, replay, SLA repair.",
)
app.add_typer(report_app, name="report", help="The office's documents: notices and reports of a period.")
app.add_typer(webhooks_app, name="webhooks", help="Webhook subscriptions: add, list, remove, deliveries.")
app.add_typer(
    profile_app, name="profile", help="Import profiles: list, show, check, draft one for a new export."
)


@app.callback()
def main(
    log_level: Annotated[
        str | None, typer.Option(help="Log level (stderr); default DUBAN_LOG_LEVEL, else WARNING.")
    ] = None,
) -> None:
    with errors():
        configure_logging(log_level)


@app.command()
def simulate(
    path: Annotated[
        Path, typer.Argument(help="Case-record export (CSV), e.g. ../shared/data/boston311_2022_sample.csv")
    ],
    profile: Annotated[str, typer.Option(help="Import profile: boston311, la311 or open311.")] = "boston311",
    limit: Annotated[int | None, typer.Option(help="Replay only the first N valid cases.")] = None,
    summary_json: Annotated[Path | None, typer.Option(help="Also write the summary as JSON here.")] = None,
    database_url: Annotated[
        str | None, typer.Option(help="Database for this run (default: <data dir>/simulate-<profile>.db).")
    ] = None,
    replace_database: Annotated[
        bool,
        typer.Option("--replace", help="Allow --database-url to name a database that holds duban tables."),
    ] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    bucket_days: Annotated[
        float, typer.Option(help="Days of business time delivered per clock step.")
    ] = 30.0,
    profile_file: ProfileFileOpt = None,
    services: ServicesOpt = None,
    zone: ZoneOpt = None,
) -> None:
    """Replay real cases through the item workflow in simulated time, then print the rankings."""
    from duban.jobs.simulate import Replay, SimulationOptions
    from events.sql import make_engine
    from projections.rankings import format_table, rank_units

    with errors():
        if limit is not None and limit < 1:
            raise ConfigurationError("limit: must be at least 1")
        if not math.isfinite(bucket_days) or bucket_days <= 0:
            raise ConfigurationError("bucket_days: must be a positive number of days")
        settings = load_settings()
        settings.data_dir.mkdir(parents=True, exist_ok=True)  # the job writes there; the summary may too
        writable_file(summary_json, "summary_json")
        options = SimulationOptions(
            profile=profile,
            path=path,
            profile_file=profile_file,
            services=services,
            zone=zone,
            limit=limit,
            database_url=database_url,
            progress=progress,
            bucket_days=bucket_days,
            replace=replace_database,
        )
        summary = run_async(Replay(settings, options).run())
    engine = make_engine(summary.database_url)
    for level in ("department", "town"):
        typer.echo(f"\nRanking by {level}, all periods (on-time closure rate):")
        typer.echo(format_table(rank_units(engine, level, None, None)))
    typer.echo("\nSummary")
    typer.echo(f"  items          {summary.items}")
    typer.echo(f"  events         {summary.events}")
    typer.echo(f"  rejected rows  {summary.rejected_rows}")
    typer.echo(f"  dead letters   {summary.dead_letters}")
    matched, checked = summary.labels_matched, summary.labels_checked
    if checked:
        typer.echo(f"  city labels    {matched} of {checked} on-time outcomes equal the city's")
    else:
        typer.echo("  city labels    none in this export (nothing to check)")
    for row in summary.blank_label_rows:
        typer.echo(f"  blank label    {row} has a deadline but no city label (not checked)")
    for row in summary.label_mismatches:
        typer.echo(f"  MISMATCH       {row}")
    typer.echo(f"  wall time      {summary.wall_s:.1f} s ({summary.items_per_s:.1f} items/s)")
    typer.echo(f"  read models    {summary.database_url}")
    if summary_json:
        summary_json.write_text(json.dumps(summary.to_dict(), indent=2, ensure_ascii=False) + "\n")
        typer.echo(f"  summary JSON   {summary_json}")


StatusPort = Annotated[
    int,
    typer.Option(
        help="Serve /metrics (Prometheus), /healthz and /readyz on this port (0: none).", min=0, max=65535
    ),
]
StatusHost = Annotated[str, typer.Option(help="Address for --status-port.")]


def _status_port_free(port: int, host: str) -> None:
    from duban.stack.probes import port_free

    if port and not port_free(port, host):
        raise fail(Exception(f"status-port: {host}:{port} is in use"))


@app.command()
def worker(status_port: StatusPort = 0, status_host: StatusHost = "127.0.0.1") -> None:
    """Run a Temporal worker for supervision items (records events to the store and Kafka)."""
    from duban.processes.worker import run_worker

    _status_port_free(status_port, status_host)
    with errors():
        run_async(run_worker(load_settings(), status_port, status_host))


@app.command()
def bridge(status_port: StatusPort = 0, status_host: StatusHost = "127.0.0.1") -> None:
    """Run the command topic bridge alone (duban.commands → items → duban.command-results); pair it
    with ``duban serve --no-bridge``."""
    from duban.processes.bridge import run_bridge

    _status_port_free(status_port, status_host)
    with errors():
        run_async(run_bridge(load_settings(), status_port, status_host))


@app.command()
def project(status_port: StatusPort = 0, status_host: StatusHost = "127.0.0.1") -> None:
    """Run the projection: consume the events topic into the read models until stopped."""
    from duban.processes.projector import run_projector

    _status_port_free(status_port, status_host)
    with errors():
        run_async(run_projector(load_settings(), status_port, status_host))


@app.command()
def demo(
    items: Annotated[int, typer.Option(help="How many sample items to run.")] = 12,
    minutes: Annotated[float, typer.Option(help="Real minutes a whole resolution window takes.")] = 1.0,
) -> None:
    """Run a small live sample on the dev server in real time, then leave the stack running."""
    from duban.jobs.demo import run_demo

    with errors():
        run_async(run_demo(load_settings(), items=items, window_minutes=minutes))


# The reporting commands (duban.cli.reports), after the ones above in `duban --help`.
app.command()(cli_reports.rank)
app.command()(cli_reports.indicators)
app.command()(cli_reports.scores)
app.command()(cli_reports.adjust)
app.command("close-period")(cli_reports.close_period)
app.command()(cli_reports.schedules)
app.command("rebuild-read-models")(cli_reports.rebuild_read_models)
app.command("ledger")(ledger_command)
app.command("serve")(serve_command)
app.command("import-report")(import_report)
