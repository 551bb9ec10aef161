"""The reporting commands of ``duban``: rankings, indicators, scores, adjustments, closing periods,
their schedules, and rebuilding the read models. Registered on the app by ``duban.cli``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from duban.cli.common import (
    PERIOD_HELP,
    Cancelled,
    CancelledOpt,
    DatabaseOpt,
    Format,
    FormatOpt,
    Level,
    NoDeadline,
    NoDeadlineOpt,
    OutputOpt,
    errors,
    run_async,
    writable_file,
)
from duban.config import load_settings

if TYPE_CHECKING:
    from projections.frozen_periods import Snapshot


def rank(
    by: Annotated[Level, typer.Option(help="Level to rank.")] = Level.department,
    period: Annotated[str | None, typer.Option(help=PERIOD_HELP)] = None,
    output_format: FormatOpt = Format.table,
    no_deadline: NoDeadlineOpt = NoDeadline.exclude,
    database_url: DatabaseOpt = None,
    output: OutputOpt = None,
) -> None:
    """Rank departments or areas by on-time closure rate for a period (local days of each item's area)."""
    from duban import services
    from projections.rankings import format_table, to_csv, to_json

    with errors():
        writable_file(output, "output")
        rows = services.rankings(
            database_url or load_settings().database, by.value, period, no_deadline.value
        )
    render = {Format.table: format_table, Format.csv: to_csv, Format.json: to_json}[output_format]
    _emit(render(rows), output, f"Period: {period or 'all'}" if output_format == Format.table else None)


def _emit(text: str, output: Path | None, heading: str | None) -> None:
    """Write ``text`` to ``output`` (a file), or print it after ``heading`` (tables only)."""
    text = text if text.endswith("\n") else text + "\n"
    if output:
        with errors():
            output.write_text(text)
        return
    if heading is not None:
        typer.echo(heading)
    sys.stdout.write(text)


def indicators(
    by: Annotated[
        Level, typer.Option(help="Level: department, district, town, community, grid, category, order.")
    ] = (Level.department),
    period: Annotated[str | None, typer.Option(help=PERIOD_HELP)] = None,
    output_format: FormatOpt = Format.table,
    no_deadline: NoDeadlineOpt = NoDeadline.exclude,
    cancelled: CancelledOpt = Cancelled.exclude,
    database_url: DatabaseOpt = None,
    output: OutputOpt = None,
) -> None:
    """Every indicator of every unit for a period, each with its numerator and denominator."""
    from duban import services
    from projections import indicators as ind

    with errors():
        writable_file(output, "output")
        options = ind.IndicatorOptions(no_deadline=no_deadline.value, cancelled=cancelled.value)
        rows = services.indicator_rows(database_url or load_settings().database, by.value, period, options)
    render = {Format.table: ind.format_table, Format.csv: ind.to_csv, Format.json: ind.to_json}[output_format]
    heading = f"Period: {period or 'all'}; rates to 0.0001, hours to 0.01 (half up)"
    _emit(render(rows), output, heading if output_format == Format.table else None)


def scores(
    period: Annotated[str, typer.Option(help=PERIOD_HELP)],
    by: Annotated[Level, typer.Option(help="Level to score.")] = Level.department,
    output_format: FormatOpt = Format.table,
    scorebook: Annotated[
        Path | None, typer.Option(help="Scorebook YAML (default: the built-in one).")
    ] = None,
    no_deadline: NoDeadlineOpt = NoDeadline.exclude,
    cancelled: CancelledOpt = Cancelled.exclude,
    database_url: DatabaseOpt = None,
    output: OutputOpt = None,
) -> None:
    """Score and rank units for a period (scorebook in force on its first day), with the movement
    against the previous period of the same kind."""
    from duban import services
    from projections import indicators as ind
    from projections import scoring

    with errors():
        writable_file(output, "output")
        options = ind.IndicatorOptions(no_deadline=no_deadline.value, cancelled=cancelled.value)
        report = services.scores_report(
            database_url or load_settings().database, by.value, period, scorebook, options
        )
    rows, before = report.rows, report.previous
    if report.snapshot is not None:
        note = _frozen_note(report.snapshot)
        if scorebook or no_deadline != NoDeadline.exclude or cancelled != Cancelled.exclude:
            note += "; --scorebook, --no-deadline and --cancelled do not apply to a closed period"
    else:
        note = "open (not yet closed)"
    if output_format == Format.json:
        text = json.dumps(rows, ensure_ascii=False, indent=2)
    elif output_format == Format.csv:
        text = _csv_of(rows)
    else:
        text = scoring.format_scores(rows)
    heading = f"Period: {period}, {note}; movement against {before}; scores to 0.01, half up"
    _emit(text, output, heading if output_format == Format.table else None)


def _frozen_note(snapshot: Snapshot) -> str:
    return (
        f"closed {snapshot.frozen_at:%Y-%m-%d %H:%M} UTC (scorebook {snapshot.scorebook_version}, "
        f"{snapshot.events_count} events, hash {snapshot.events_hash[:12]})"
    )


def adjust(
    level: Annotated[Level, typer.Option(help="Level of the unit adjusted.")],
    unit: Annotated[str, typer.Option(help="The unit's key, e.g. PWDx.")],
    day: Annotated[str, typer.Option(help="Local day the adjustment counts on, YYYY-MM-DD.")],
    points: Annotated[str, typer.Option(help="Exact decimal points, negative to deduct, e.g. -1.50.")],
    reason: Annotated[str, typer.Option(help="Why (kept with the adjustment).")],
    approver: Annotated[str, typer.Option(help="Who approved it.")],
    adjustment_id: Annotated[
        str | None, typer.Option("--id", help="Adjustment id; recording the same id twice stores it once.")
    ] = None,
) -> None:
    """Record a manual score adjustment as a ScoreAdjusted event (event store, then the events topic).

    Recording the same ``--id`` again with the same values changes nothing; with other values it is
    refused. If the topic cannot be reached the adjustment stays recorded: the projection catches it
    up from the event store.
    """
    from decimal import Decimal

    from duban import services

    request = services.AdjustmentRequest(level.value, unit, day, points, reason, approver, adjustment_id)
    with errors():
        done = run_async(services.record_adjustment(load_settings(), request), temporal=False)
    ident, p = done.event.item_id.removeprefix("score-adjustment:"), done.event.payload
    if done.already_at is not None:
        typer.echo(f"adjustment {ident}: already recorded at {done.already_at:%Y-%m-%d %H:%M} UTC")
        return
    if not done.published:
        typer.echo("warning: the events topic did not answer; the projection takes it from the event store")
    amount = Decimal(str(p["points"]))
    typer.echo(
        f"adjustment {ident}: {amount:+} points for {p['level']} {p['unit_key']} on {p['day']}, "
        f"approved by {p['approver']}"
    )


def close_period(
    period: Annotated[str, typer.Option(help=PERIOD_HELP)],
    scorebook: Annotated[
        Path | None, typer.Option(help="Scorebook YAML (default: the built-in one).")
    ] = None,
    database_url: DatabaseOpt = None,
    wait: Annotated[
        float, typer.Option(help="Seconds to wait for the projection to apply every stored event.")
    ] = 60.0,
) -> None:
    """Close a period: freeze its indicators and scores at every level (closing again changes nothing).

    Only once the projection has applied every event stored before the close: it waits up to
    ``--wait`` seconds for that, then refuses, naming how many stored events are not yet applied.
    """
    from duban import services

    with errors():
        closed = services.close_period(database_url or load_settings().database, period, scorebook, wait)
    typer.echo(f"{period}: {'already ' if closed.already else ''}{_frozen_note(closed.snapshot)}")


def _csv_of(rows: list[dict[str, object]]) -> str:
    import csv
    import io

    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return out.getvalue()


def schedules(
    zone: Annotated[
        str, typer.Option(help="IANA time zone of the area, e.g. Asia/Shanghai.")
    ] = "Asia/Shanghai",
) -> None:
    """Install (or update) the Temporal Schedules that close daily, weekly, half-monthly and monthly
    periods five minutes after each cut-off in ``zone``; the worker runs them (``duban worker``)."""
    from duban import services

    with errors():
        ids = run_async(services.install_schedules(load_settings(), zone))
    typer.echo(f"schedules in {zone}: {', '.join(ids)}")


def rebuild_read_models(
    database_url: Annotated[
        str | None,
        typer.Option(help="Database holding the event store and read models (default: configured)."),
    ] = None,
) -> None:
    """Drop the read models and rebuild them from the event store (the events are not touched)."""
    from duban import services

    with errors():
        done = services.rebuild_read_models(database_url or load_settings().database)
    typer.echo(
        f"rebuilt from {done.stored} stored events: {done.applied} applied, "
        f"{done.dead_lettered} dead letters; checksum {done.checksum[:16]}"
    )
