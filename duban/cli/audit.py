"""``duban audit``: the auditors' toolkit (``duban.audit``). Each command exits 0 when what it
checks holds, 1 when it finds a difference (printed), 2 on an error."""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import Engine

from duban.cli.common import DatabaseOpt, errors, run_async, writable_file
from duban.config import load_settings

audit_app = typer.Typer(
    help="Auditors: verify the chained event log and its seals, recompute closed periods, item "
    "timelines against their workflows, replay live histories, repair SLAs.",
    no_args_is_help=True,
)


def _engine(database_url: str | None) -> Engine:
    """The database, its event store brought up to this duban's columns (``chain``, nullable)."""
    from duban import wiring
    from events.store import EventStore

    engine = wiring.existing_database(database_url or load_settings().database)
    EventStore(engine).create()
    return engine


@audit_app.command("seal")
def seal(database_url: DatabaseOpt = None) -> None:
    """Seal the log now: a root over every stream's head as of 5 minutes ago (closing a period seals too)."""
    from events.seals import take_seal

    with errors():
        taken = take_seal(_engine(database_url), datetime.now(UTC))
    typer.echo(
        f"seal {taken.seal_id}: {taken.streams} streams, {taken.events} events up to "
        f"{taken.cutoff:%Y-%m-%d %H:%M:%S} UTC, root {taken.root}"
    )


@audit_app.command("verify-log")
def verify_log(
    period: Annotated[str | None, typer.Option(help="Check the seals of this period's close only.")] = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Check every stream's chain and the seals; name the first event (or seal) that does not verify."""
    from events.log_audit import verify_log as verify

    with errors():
        report = verify(_engine(database_url), period)
    for p in report.problems:
        where = f"{p.item_id} #{p.sequence} (store position {p.position})" if p.item_id else "seal"
        typer.echo(f"{p.kind:<9} {where}: {p.detail}")
    typer.echo(
        f"{report.events} events in {report.streams} streams, {report.seals} seals: "
        + ("verified" if report.ok else f"{len(report.problems)} problem(s)")
    )
    raise typer.Exit(0 if report.ok else 1)


@audit_app.command("chain-migrate")
def chain_migrate(database_url: DatabaseOpt = None) -> None:
    """Chain the events stored before chains existed (stream by stream, in sequence order)."""
    from events.log_audit import migrate_chains

    with errors():
        done = migrate_chains(_engine(database_url))
    typer.echo(f"{done} events chained")


@audit_app.command("export")
def export(
    output: Annotated[Path, typer.Option(help="JSON lines file (for duban/audit/standalone_verify.py).")],
    database_url: DatabaseOpt = None,
) -> None:
    """Write the log and its seals as stored, for the standard-library-only verifier."""
    from duban.audit.export import export_log

    with errors():
        writable_file(output, "output")
        with output.open("w", encoding="utf-8") as out:
            events, seals = export_log(_engine(database_url), out)
    typer.echo(f"{output}: {events} events, {seals} seals")


@audit_app.command("period")
def period(
    period: Annotated[
        str, typer.Argument(help="A closed period: 2022-05, 2022-05-H1, 2022-W19, 2022-05-03.")
    ],
    scorebook: Annotated[
        Path | None, typer.Option(help="Scorebook YAML (default: the built-in one).")
    ] = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Rebuild a closed period from the log in a scratch database; compare every value with its snapshot."""
    from duban.audit.period import audit_period

    with errors():
        audit = audit_period(database_url or load_settings().database, period, scorebook)
    for difference in audit.differences:
        typer.echo(str(difference))
    typer.echo(f"{audit.period}: {audit.events} events replayed, {len(audit.differences)} differences")
    raise typer.Exit(0 if not audit.differences else 1)


class TimelineFormat(StrEnum):
    json = "json"
    csv = "csv"
    html = "html"


@audit_app.command("item")
def item(
    item_id: Annotated[str, typer.Argument(help="The item id.")],
    output_format: Annotated[
        TimelineFormat, typer.Option("--format", help="json, csv or html.")
    ] = TimelineFormat.json,
    history: Annotated[
        bool, typer.Option(help="Check against the Temporal history (when it answers).")
    ] = True,
    output: Annotated[Path | None, typer.Option(help="Write here instead of stdout.")] = None,
    database_url: DatabaseOpt = None,
) -> None:
    """An item's full story from the event store, checked against its workflow history."""
    from temporalio.client import Client

    from duban.audit.timeline import HistoryCheck, check_history, render, timeline

    settings = load_settings()
    with errors():
        writable_file(output, "output")
        engine = _engine(database_url)
        rows = timeline(engine, item_id)
        check: HistoryCheck | None = None
        if history:

            async def fetch() -> HistoryCheck:
                client = await Client.connect(settings.temporal_target, namespace=settings.temporal_namespace)
                return await check_history(client, engine, item_id)

            try:
                check = run_async(fetch())
            except RuntimeError as exc:  # Temporal does not answer: the store's story alone
                typer.echo(f"note: no history check ({str(exc).splitlines()[0]})", err=True)
        text = render(rows, check, output_format.value, item_id)
    if not rows:
        typer.echo(f"error: item_id: no events of {item_id!r} in the event store", err=True)
        raise typer.Exit(2)
    if output:
        output.write_text(text, encoding="utf-8")
    else:
        typer.echo(text)
    raise typer.Exit(0 if check is None or check.ok else 1)


@audit_app.command("replay")
def replay(
    query: Annotated[
        str | None,
        typer.Option(
            help="Temporal visibility query (default: items and orders running or closed in the last week)."
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1_000_000, help="At most this many histories.")] = 10_000,
) -> None:
    """Replay live histories against this build's workflow code: run before deploying a worker."""
    from temporalio.client import Client

    from duban.audit.replay import ReplayReport
    from duban.audit.replay import replay as run_replay

    settings = load_settings()

    async def go() -> ReplayReport:
        client = await Client.connect(settings.temporal_target, namespace=settings.temporal_namespace)
        return await run_replay(client, query, limit=limit)

    with errors():
        report = run_async(go())
    for workflow_id, run_id, error in report.failures:
        typer.echo(f"NONDETERMINISTIC {workflow_id} (run {run_id}): {error}")
    failures = len(report.failures)
    typer.echo(f"{report.replayed} histories replayed, {failures} failed")
    raise typer.Exit(0 if not failures else 1)


@audit_app.command("recompute")
def recompute(
    period: Annotated[str, typer.Option(help="A closed period: 2022-05, 2022-05-H1, 2022-W19.")],
    rulebook: Annotated[
        Path | None, typer.Option(help="The corrected rulebook YAML (default: the built-in one).")
    ] = None,
    add_holiday: Annotated[
        list[str] | None, typer.Option(help="A day off the calendar missed (YYYY-MM-DD); repeat for more.")
    ] = None,
    remove_holiday: Annotated[
        list[str] | None, typer.Option(help="A day wrongly off (YYYY-MM-DD); repeat for more.")
    ] = None,
    apply: Annotated[
        bool, typer.Option("--apply", help="Record the corrections (they count in the next open period).")
    ] = False,
    reason: Annotated[str, typer.Option(help="Why, recorded with each correction.")] = "SLA repair",
    database_url: DatabaseOpt = None,
) -> None:
    """SLA repair: recompute a closed period's deadlines and on-time outcomes under corrected rules."""
    from duban.audit.recompute import apply_corrections
    from duban.audit.recompute import recompute as run
    from events.bounds import REASON, iso_day, text_problem
    from events.errors import ValidationError
    from workflows.rulebook import DEFAULT_RULEBOOK_PATH, load_rulebook

    def days(values: list[str] | None, option: str) -> frozenset[date]:
        out = set()
        for value in values or []:
            day = iso_day(value)
            if day is None:
                raise ValidationError(option, f"{value!r} is not a date (YYYY-MM-DD)")
            out.add(day)
        return frozenset(out)

    with errors():
        if (problem := text_problem(reason, REASON)) is not None or not reason.strip():
            raise ValidationError("reason", problem or "must not be empty")
        book = load_rulebook(rulebook or DEFAULT_RULEBOOK_PATH)
        url = database_url or load_settings().database
        done = run(
            url, period, book, days(add_holiday, "add_holiday"), days(remove_holiday, "remove_holiday")
        )
        for fix in done.corrections:
            typer.echo(
                f"{fix.item_id:<24} {fix.department:<18} deadline {fix.previous_deadline} → {fix.deadline}; "
                f"on time {fix.previous_on_time} → {fix.on_time}; "
                f"breaches −{fix.breaches_reversed}, escalations −{fix.escalations_reversed}"
            )
        for difference in done.differences:
            typer.echo(str(difference))
        typer.echo(
            f"{done.period}: {len(done.corrections)} items corrected, {len(done.differences)} differences"
        )
        if apply:
            recorded = apply_corrections(url, period, done.corrections, reason)
            typer.echo(f"{recorded} corrections recorded (they count in the next open period)")
