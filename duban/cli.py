"""The ``duban`` command line (typer). Run ``duban --help``.

Every command reads its configuration from ``duban.config`` (environment variables, optional TOML).
Expected failures (``DubanError``) print ``error: …`` on stderr and exit with status 2.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import math
import sys
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from sqlalchemy import Engine

from duban.cli_stack import stack_app
from duban.config import load_settings
from duban.errors import ConfigurationError, DubanError, ValidationError
from duban.logs import configure_logging

if TYPE_CHECKING:
    from projections.frozen_periods import Snapshot

app = typer.Typer(
    help="duban (督办): supervise problems found in the city until they are fixed and verified.",
    no_args_is_help=True,
)
app.add_typer(stack_app, name="stack", help="Start, stop or inspect the embedded stack.")

_T = TypeVar("_T")


class Level(StrEnum):
    department = "department"
    district = "district"
    town = "town"
    community = "community"
    grid = "grid"
    category = "category"
    order = "order"


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


class NoDeadline(StrEnum):
    exclude = "exclude"
    on_time = "on_time"


class Cancelled(StrEnum):
    exclude = "exclude"
    include = "include"


PERIOD_HELP = "2022-05, 2022-05-H1, 2022-W19, 2022 or 2022-05-03."
FormatOpt = Annotated[Format, typer.Option("--format", help="Output format.")]
NoDeadlineOpt = Annotated[
    NoDeadline, typer.Option(help="Closed items without a deadline: excluded or on time.")
]
CancelledOpt = Annotated[
    Cancelled, typer.Option(help="Cancelled and merged items in the registered base: excluded or included.")
]
DatabaseOpt = Annotated[str | None, typer.Option(help="Read-model database (default: configured).")]
OutputOpt = Annotated[Path | None, typer.Option(help="Write to this file instead of stdout.")]


def _fail(exc: Exception) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(2)


@contextmanager
def _errors() -> Iterator[None]:
    """Turn expected failures into ``error: …`` on stderr and exit status 2 (no traceback).

    Expected: duban's own errors, file-system errors (missing file, a folder given for a file),
    database errors (unreachable server, not a database), a Kafka broker and a Temporal server that
    do not answer.
    """
    from aiokafka.errors import KafkaError
    from sqlalchemy.exc import SQLAlchemyError

    try:
        yield
    except (DubanError, OSError) as exc:
        raise _fail(exc) from None
    except KafkaError as exc:
        raise _fail(Exception(f"kafka: {exc}")) from None
    except SQLAlchemyError as exc:
        raise _fail(Exception(f"database: {str(exc).splitlines()[0]}")) from None
    except RuntimeError as exc:
        if not str(exc).startswith("Failed client connect"):
            raise
        raise _fail(Exception(f"temporal: {str(exc).splitlines()[0]}")) from None


def _writable_file(path: Path | None, option: str) -> None:
    """Fail early (before a long run) if ``path`` cannot be written: its folder must exist."""
    if path is not None and (path.is_dir() or not path.parent.is_dir()):
        raise ConfigurationError(f"{option}: cannot write {path} (not a file in an existing folder)")


def _run(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run a coroutine; collect garbage before the loop closes (temporalio teardown, sdk-python#300)."""

    async def wrapped() -> _T:
        try:
            return await coro
        finally:
            gc.collect()

    return asyncio.run(wrapped())


@app.callback()
def main(log_level: Annotated[str, typer.Option(help="Log level (stderr).")] = "WARNING") -> None:
    with _errors():
        configure_logging(log_level)


@app.command()
def simulate(
    path: Annotated[
        Path, typer.Argument(help="Case-record export (CSV), e.g. ../shared/data/boston311_2022_sample.csv")
    ],
    profile: Annotated[str, typer.Option(help="Import profile: boston311 or la311.")] = "boston311",
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
) -> None:
    """Replay real cases through the item workflow in simulated time, then print the rankings."""
    from duban.db import make_engine
    from duban.simulate import Replay, SimulationOptions
    from projections.rankings import format_table, rank_units

    with _errors():
        if limit is not None and limit < 1:
            raise ConfigurationError("limit: must be at least 1")
        if not math.isfinite(bucket_days) or bucket_days <= 0:
            raise ConfigurationError("bucket_days: must be a positive number of days")
        _writable_file(summary_json, "summary_json")
        options = SimulationOptions(
            profile=profile,
            path=path,
            limit=limit,
            database_url=database_url,
            progress=progress,
            bucket_days=bucket_days,
            replace=replace_database,
        )
        summary = _run(Replay(load_settings(), options).run())
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


@app.command()
def rank(
    by: Annotated[Level, typer.Option(help="Level to rank.")] = Level.department,
    period: Annotated[str | None, typer.Option(help=PERIOD_HELP)] = None,
    output_format: FormatOpt = Format.table,
    no_deadline: NoDeadlineOpt = NoDeadline.exclude,
    database_url: DatabaseOpt = None,
    output: OutputOpt = None,
) -> None:
    """Rank departments or areas by on-time closure rate for a period (local days of each item's area)."""
    from duban.periods import parse_period
    from projections.rankings import format_table, rank_units, to_csv, to_json

    with _errors():
        start, end = parse_period(period) if period else (None, None)
        _writable_file(output, "output")
        engine = _read_models(database_url or load_settings().database)
        rows = rank_units(engine, by.value, start, end, no_deadline=no_deadline.value)
    render = {Format.table: format_table, Format.csv: to_csv, Format.json: to_json}[output_format]
    _emit(render(rows), output, f"Period: {period or 'all'}" if output_format == Format.table else None)


def _emit(text: str, output: Path | None, heading: str | None) -> None:
    """Write ``text`` to ``output`` (a file), or print it after ``heading`` (tables only)."""
    text = text if text.endswith("\n") else text + "\n"
    if output:
        with _errors():
            output.write_text(text)
        return
    if heading is not None:
        typer.echo(heading)
    sys.stdout.write(text)


@app.command()
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
    from duban.periods import parse_period
    from projections import indicators as ind

    with _errors():
        start, end = parse_period(period) if period else (None, None)
        _writable_file(output, "output")
        engine = _read_models(database_url or load_settings().database)
        options = ind.IndicatorOptions(no_deadline=no_deadline.value, cancelled=cancelled.value)
        rows = ind.indicators(engine, by.value, start, end, options)
    render = {Format.table: ind.format_table, Format.csv: ind.to_csv, Format.json: ind.to_json}[output_format]
    heading = f"Period: {period or 'all'}; rates to 0.0001, hours to 0.01 (half up)"
    _emit(render(rows), output, heading if output_format == Format.table else None)


@app.command()
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
    from duban.periods import parse_period, previous_period
    from projections import indicators as ind
    from projections import scoring
    from projections.frozen_periods import read_snapshots

    with _errors():
        start, end = parse_period(period)
        before = previous_period(period)
        _writable_file(output, "output")
        book = scoring.load_scorebook(scorebook) if scorebook else scoring.load_scorebook()
        engine = _read_models(database_url or load_settings().database)
        frozen = read_snapshots(engine, period, by.value)
        if frozen:
            rows, note = frozen[0].scores, _frozen_note(frozen[0])
            if scorebook or no_deadline != NoDeadline.exclude or cancelled != Cancelled.exclude:
                note += "; --scorebook, --no-deadline and --cancelled do not apply to a closed period"
        else:
            options = ind.IndicatorOptions(no_deadline=no_deadline.value, cancelled=cancelled.value)
            current = scoring.score_units(engine, by.value, start, end, book, options)
            previous: list[scoring.Score] = []
            with contextlib.suppress(ValidationError):  # no scorebook for the previous period
                previous = scoring.score_units(engine, by.value, *parse_period(before), book, options)
            rows, note = (
                scoring.score_dicts(scoring.with_movement(current, previous)),
                "open (not yet closed)",
            )
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


@app.command()
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
    """Record a manual score adjustment as a ScoreAdjusted event (event store, then the events topic)."""
    import uuid
    from datetime import UTC, date, datetime
    from decimal import Decimal, InvalidOperation

    from activities.event_recording import EventRecorder, RecordEventsInput
    from duban.db import make_engine
    from duban.kafka import make_producer
    from events.store import EventStore
    from projections.scoring import score_adjustment

    with _errors():
        try:
            when = date.fromisoformat(day) if len(day) == 10 else None
        except ValueError:
            when = None
        if when is None:
            raise ValidationError("day", f"{day!r} is not a date (YYYY-MM-DD)")
        try:
            amount = Decimal(points)
        except InvalidOperation:
            raise ValidationError("points", f"{points!r} is not a decimal number") from None
        ident = adjustment_id or uuid.uuid4().hex
        event = score_adjustment(ident, level.value, unit, when, amount, reason, approver, datetime.now(UTC))
        settings = load_settings()
        store = EventStore(make_engine(settings.database))
        store.create()

        async def record() -> None:
            producer = make_producer(settings)
            await producer.start()
            try:
                await EventRecorder(store, producer, settings.events_topic).record_events(
                    RecordEventsInput([event])
                )
            finally:
                await producer.stop()

        _run(record())
    typer.echo(
        f"adjustment {ident}: {amount:+} points for {level.value} {unit} on {when}, approved by {approver}"
    )


@app.command("close-period")
def close_period(
    period: Annotated[str, typer.Option(help=PERIOD_HELP)],
    scorebook: Annotated[
        Path | None, typer.Option(help="Scorebook YAML (default: the built-in one).")
    ] = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Close a period: freeze its indicators and scores at every level (closing again changes nothing)."""
    from datetime import UTC, datetime

    from projections import scoring
    from projections.frozen_periods import freeze_period

    with _errors():
        book = scoring.load_scorebook(scorebook) if scorebook else scoring.load_scorebook()
        engine = _read_models(database_url or load_settings().database)
        [first, *_] = freeze_period(engine, period, book, datetime.now(UTC))
    typer.echo(f"{period}: {_frozen_note(first)}")


def _csv_of(rows: list[dict[str, object]]) -> str:
    import csv
    import io

    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return out.getvalue()


def _existing_database(url: str) -> None:
    """ConfigurationError unless ``url`` is a SQLite or PostgreSQL URL and, for SQLite, a file."""
    from duban.config import check_database_url

    check_database_url(url, "database_url")
    path = url.removeprefix("sqlite:///")
    if url.startswith("sqlite") and (not url.startswith("sqlite:///") or path in ("", ":memory:")):
        raise ConfigurationError(f"database_url: {url} is not a SQLite file (use sqlite:///path/to/file.db)")
    if url.startswith("sqlite:///") and not Path(path).is_file():
        raise ConfigurationError(f"database_url: no such SQLite file: {path}")


def _read_models(url: str) -> Engine:
    """Engine on a database that holds duban's read models; ConfigurationError naming it if not."""
    from sqlalchemy import inspect

    from duban.db import make_engine

    _existing_database(url)
    engine = make_engine(url)
    if not inspect(engine).has_table("unit_day_counters"):
        raise ConfigurationError(
            f"database_url: {url} holds no read models (run duban simulate or duban project)"
        )
    from projections import read_models as rm

    for table in (rm.item_view, rm.unit_day_counters, rm.score_adjustments):
        found = inspect(engine).has_table(table.name)
        present = {c["name"] for c in inspect(engine).get_columns(table.name)} if found else set()
        missing = [c.name for c in table.columns if c.name not in present]
        if missing:
            raise ConfigurationError(
                f"database_url: the read models in {url} predate this duban ({table.name} lacks "
                f"{', '.join(missing[:3])}{'…' if len(missing) > 3 else ''}); rebuild them from the "
                "event store: duban rebuild-read-models"
            )
    return engine


@app.command()
def schedules(
    zone: Annotated[
        str, typer.Option(help="IANA time zone of the area, e.g. Asia/Shanghai.")
    ] = "Asia/Shanghai",
) -> None:
    """Install (or update) the Temporal Schedules that close daily, weekly, half-monthly and monthly
    periods five minutes after each cut-off in ``zone``; the worker runs them (``duban worker``)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from temporalio.client import Client

    from activities.period_closing import install_schedules

    with _errors():
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigurationError(f"zone: unknown IANA time zone {zone!r}") from None
        settings = load_settings()

        async def install() -> list[str]:
            client = await Client.connect(settings.temporal_target, namespace=settings.temporal_namespace)
            return await install_schedules(client, zone, settings.task_queue)

        ids = _run(install())
    typer.echo(f"schedules in {zone}: {', '.join(ids)}")


@app.command("rebuild-read-models")
def rebuild_read_models(
    database_url: Annotated[
        str | None,
        typer.Option(help="Database holding the event store and read models (default: configured)."),
    ] = None,
) -> None:
    """Drop the read models and rebuild them from the event store (the events are not touched)."""
    from sqlalchemy import inspect

    from duban.db import make_engine
    from events.store import EventStore
    from projections import read_models as rm
    from projections.projector import ItemProjector

    with _errors():
        url = database_url or load_settings().database
        _existing_database(url)
        engine = make_engine(url)
        if not inspect(engine).has_table("event_store"):
            raise ConfigurationError(f"database_url: {url} holds no event store to rebuild from")
        store = EventStore(engine)
        rm.drop_tables(engine)
        result = ItemProjector(engine).rebuild_from_store(store)
        names = ("item_view", "unit_day_counters")
        typer.echo(
            f"rebuilt from {store.count()} stored events: {result.applied} applied, "
            f"{result.dead_lettered} dead letters; checksum {rm.table_checksum(engine, names)[:16]}"
        )


@app.command("import-report")
def import_report(
    path: Annotated[Path, typer.Argument(help="Case-record export (CSV).")],
    profile: Annotated[str, typer.Option(help="Import profile: boston311 or la311.")] = "boston311",
) -> None:
    """Read an export with a profile and list the rows it rejects (row number, column, reason)."""
    from duban.importers.profiles import load_cases

    with _errors():
        result = load_cases(profile, path)
    typer.echo(f"{result.rows_read} rows read, {len(result.cases)} items, {len(result.rejected)} rejected")
    for row in result.rejected:
        typer.echo(f"  row {row.row_number}: {row.field}: {row.reason}")


@app.command()
def worker() -> None:
    """Run a Temporal worker for supervision items (records events to the store and Kafka)."""
    from duban.worker import run_worker

    with _errors():
        _run(run_worker(load_settings()))


@app.command()
def project() -> None:
    """Run the projection: consume the events topic into the read models until stopped."""
    from duban.projector_service import run_projector

    with _errors():
        _run(run_projector(load_settings()))


@app.command()
def demo(
    items: Annotated[int, typer.Option(help="How many sample items to run.")] = 12,
    minutes: Annotated[float, typer.Option(help="Real minutes a whole resolution window takes.")] = 1.0,
) -> None:
    """Run a small live sample on the dev server in real time, then leave the stack running."""
    from duban.demo import run_demo

    with _errors():
        _run(run_demo(load_settings(), items=items, window_minutes=minutes))
