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
from workflows.payload_converter import DATA_CONVERTER

audit_app = typer.Typer(
    help="Auditors: verify the chained event log and its seals, recompute closed periods, item "
    "timelines against their workflows, replay live histories, repair SLAs.",
    no_args_is_help=True,
)


def _engine(database_url: str | None) -> Engine:
    """The database, its event store brought up to this duban's columns (``chain``, nullable): for
    the commands that write (``seal``, ``chain-migrate``)."""
    from duban import wiring
    from events.store import EventStore

    engine = wiring.existing_database(database_url or load_settings().database)
    EventStore(engine).create()
    return engine


def _database(database_url: str | None) -> Engine:
    """The database, opened read-only (``events.sql.read_only``): verifying creates, migrates and
    fills nothing, so it cannot wash out what it checks."""
    from duban import wiring
    from events.sql import read_only

    return read_only(wiring.existing_database(database_url or load_settings().database))


def _reader(database_url: str | None) -> Engine:
    """The database read-only, holding an event store with every column this duban reads."""
    from events.store import check_readable

    engine = _database(database_url)
    check_readable(engine)
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
    from duban.audit.period import is_closed
    from events.errors import ValidationError
    from events.log_audit import verify_log as verify
    from projections.periods import canonical_period

    with errors():
        engine = _reader(database_url)
        if period is not None:
            period = canonical_period(period)
            if not is_closed(engine, period):
                raise ValidationError("period", f"{period} is not closed: there is no close seal to verify")
        report = verify(engine, period)
    for p in report.problems:
        where = f"{p.item_id} #{p.sequence} (store position {p.position})" if p.item_id else "seal"
        typer.echo(f"{p.kind:<9} {where}: {p.detail}")
    if report.more:
        typer.echo(
            f"… and {report.more} more event problem(s) not listed (the list stops at the first "
            f"{len(report.problems) - sum(1 for p in report.problems if p.kind == 'seal')}; every seal "
            "was checked)"
        )
    typer.echo(
        f"{report.events} events in {report.streams} streams, {report.seals} seals: "
        + ("verified" if report.ok else f"{report.total} problem(s)")
    )
    raise typer.Exit(0 if report.ok else 1)


@audit_app.command("chain-migrate")
def chain_migrate(database_url: DatabaseOpt = None) -> None:
    """Chain the events stored before chains existed (stream by stream, in sequence order); refuse
    a store where a stream already holds chained events (exit 2)."""
    from duban import wiring
    from events.chain_migration import check_migratable, migrate_chains
    from events.store import EventStore

    with errors():
        engine = wiring.existing_database(database_url or load_settings().database)
        check_migratable(engine)  # before anything is written
        EventStore(engine).create()
        done = migrate_chains(engine)
    typer.echo(f"{done} events chained")


@audit_app.command("export")
def export(
    output: Annotated[Path, typer.Option(help="JSON lines file (for duban/audit/standalone_verify.py).")],
    database_url: DatabaseOpt = None,
) -> None:
    """Write the log and its seals as stored, for the standard-library-only verifier (the file is
    written whole or not at all)."""
    from duban.audit.export import export_file

    with errors():
        writable_file(output, "output")
        events, seals = export_file(_reader(database_url), output)
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
        audit = audit_period(_database(database_url), period, scorebook)
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
    from temporalio.service import RPCError

    from duban.audit.timeline import HistoryCheck, check_history, render, timeline
    from events.errors import DubanError

    settings = load_settings()
    with errors():
        writable_file(output, "output")
        engine = _reader(database_url)
        rows = timeline(engine, item_id)
        check: HistoryCheck | None = None
        if history:

            async def fetch() -> HistoryCheck:
                client = await Client.connect(
                    settings.temporal_target,
                    namespace=settings.temporal_namespace,
                    data_converter=DATA_CONVERTER,
                )
                return await check_history(client, engine, item_id)

            try:
                check = run_async(fetch())
                if check.runs == 0:  # no workflow here: a simulation's own server, or retention passed
                    typer.echo(
                        f"note: no workflow history of {item_id!r} on this Temporal server (a simulation's "
                        "items ran on its own server; histories past retention are gone): the store's "
                        "story alone",
                        err=True,
                    )
                    check = None
            except RPCError as exc:  # Temporal answered, with an error
                raise DubanError(f"temporal: the history of {item_id!r} could not be read: {exc}") from None
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
    from temporalio.service import RPCError

    from duban.audit.replay import ReplayReport
    from duban.audit.replay import replay as run_replay
    from events.errors import ValidationError

    settings = load_settings()

    async def go() -> ReplayReport:
        client = await Client.connect(
            settings.temporal_target, namespace=settings.temporal_namespace, data_converter=DATA_CONVERTER
        )
        return await run_replay(client, query, limit=limit)

    with errors():
        try:
            report = run_async(go())
        except RPCError as exc:  # the server refused the query (or failed to list the histories)
            shown = repr(query) if query is not None else "the default query"
            raise ValidationError("query", f"Temporal refused {shown}: {exc}") from None
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
    from duban.audit.recompute import apply_corrections, check_corrections
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
        added, removed = days(add_holiday, "add_holiday"), days(remove_holiday, "remove_holiday")
        check_corrections(added, removed)
        book = load_rulebook(rulebook or DEFAULT_RULEBOOK_PATH)
        url = database_url or load_settings().database
        done = run(_database(url), period, book, added, removed)
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
