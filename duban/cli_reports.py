"""The reporting commands of ``duban``: rankings, indicators, scores, adjustments, closing periods,
their schedules, and rebuilding the read models. Registered on the app by ``duban.cli``."""

from __future__ import annotations

import contextlib
import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from sqlalchemy import Engine

from duban.cli_common import (
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
from duban.config import Settings, load_settings
from duban.errors import ConfigurationError, ValidationError

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
    from duban.periods import parse_period
    from projections.rankings import format_table, rank_units, to_csv, to_json

    with errors():
        start, end = parse_period(period) if period else (None, None)
        writable_file(output, "output")
        engine = _read_models(database_url or load_settings().database)
        rows = rank_units(engine, by.value, start, end, no_deadline=no_deadline.value)
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
    from duban.periods import parse_period
    from projections import indicators as ind

    with errors():
        start, end = parse_period(period) if period else (None, None)
        writable_file(output, "output")
        engine = _read_models(database_url or load_settings().database)
        options = ind.IndicatorOptions(no_deadline=no_deadline.value, cancelled=cancelled.value)
        rows = ind.indicators(engine, by.value, start, end, options)
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
    from duban.periods import parse_period, previous_period
    from projections import indicators as ind
    from projections import scoring
    from projections.frozen_periods import read_snapshots

    with errors():
        start, end = parse_period(period)
        before = previous_period(period)
        writable_file(output, "output")
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
    import uuid
    from datetime import UTC, date, datetime
    from decimal import Decimal

    from duban.db import make_engine
    from events.bounds import points_problem
    from events.codec import encode_event, validate_event
    from events.store import EventStore
    from projections.scoring import score_adjustment

    with errors():
        try:  # YYYY-MM-DD only: not 2022-W19-1, not 20220503
            when = date.fromisoformat(day) if _ISO_DAY.fullmatch(day) else None
        except ValueError:  # 2026-11-31
            when = None
        if when is None:
            raise ValidationError("day", f"{day!r} is not a date (YYYY-MM-DD)")
        if (problem := points_problem(points)) is not None:
            raise ValidationError("points", problem)
        amount = Decimal(format(Decimal(points), "f"))  # 1e3 is stored and shown as 1000
        if adjustment_id is not None and not adjustment_id.strip():
            raise ValidationError("id", "must not be empty (leave --id out for a new random id)")
        ident = uuid.uuid4().hex if adjustment_id is None else adjustment_id
        try:
            event = score_adjustment(
                ident, level.value, unit, when, amount, reason, approver, datetime.now(UTC)
            )
        except ValidationError as exc:  # name the option, not the payload field
            raise ValidationError(_ADJUST_OPTIONS.get(exc.field, exc.field), exc.reason) from None
        settings = load_settings()
        store = EventStore(make_engine(settings.database))
        store.create()
        previous = next(store.read(event.item_id), None)
        if previous is not None:
            if not _same_adjustment(previous.payload, validate_event(event).payload):
                raise ValidationError(
                    "id", f"adjustment {ident} was recorded before with other values; use a new id"
                )
            typer.echo(f"adjustment {ident}: already recorded at {previous.recorded_at:%Y-%m-%d %H:%M} UTC")
            return
        raw = encode_event(event)
        store.record([event], [raw])  # EventConflict if the same id was recorded meanwhile
        if not run_async(_publish(settings, event.item_id, raw)):
            typer.echo(
                "warning: the events topic did not answer; the projection takes it from the event store"
            )
    typer.echo(
        f"adjustment {ident}: {amount:+} points for {level.value} {unit} on {when}, approved by {approver}"
    )


MAX_CLOSE_WAIT_S = 86_400.0
"""The longest ``duban close-period --wait`` (a day): longer is a typo, not a plan."""
_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_ADJUST_OPTIONS = {"adjustment_id": "id", "unit_key": "unit"}
"""The ``duban adjust`` option of each ``ScoreAdjusted`` payload field whose name differs."""


def _same_adjustment(stored: dict[str, object], new: dict[str, object]) -> bool:
    """Whether two ``ScoreAdjusted`` payloads record the same adjustment: equal fields, the points
    compared as numbers (``-1.5`` and ``-1.50`` are the same points)."""
    from decimal import Decimal

    def numeric(payload: dict[str, object]) -> dict[str, object]:
        return payload | {"points": Decimal(str(payload.get("points")))}

    return numeric(stored) == numeric(new)


async def _publish(settings: Settings, key: str, raw: bytes) -> bool:
    """Publish one encoded event to the events topic; False if the broker did not take it in 30 s."""
    import asyncio

    from duban.kafka import make_producer
    from duban.stack import quiet_logger

    producer = make_producer(settings)
    with quiet_logger("aiokafka"):  # a broker that does not answer is reported by the caller
        try:
            await asyncio.wait_for(producer.start(), 30)
            await asyncio.wait_for(producer.send_and_wait(settings.events_topic, raw, key=key.encode()), 30)
            return True
        except Exception:  # the event is stored: delivery is the projection's catch-up's job now
            return False
        finally:
            await producer.stop()


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
    import time
    from datetime import UTC, datetime

    from projections import scoring
    from projections.frozen_periods import ProjectionBehind, freeze_when_projected, read_snapshots

    with errors():
        if not 0 <= wait <= MAX_CLOSE_WAIT_S:
            raise ConfigurationError(f"wait: must be a number of seconds from 0 to {MAX_CLOSE_WAIT_S:.0f}")
        book = scoring.load_scorebook(scorebook) if scorebook else scoring.load_scorebook()
        engine = _read_models(database_url or load_settings().database)
        already = bool(read_snapshots(engine, period))
        give_up = time.monotonic() + wait
        while True:
            try:
                [first, *_] = freeze_when_projected(engine, period, book, datetime.now(UTC))
                break
            except ProjectionBehind:
                if time.monotonic() >= give_up:
                    raise
                time.sleep(1.0)
    typer.echo(f"{period}: {'already ' if already else ''}{_frozen_note(first)}")


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

    with errors():
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigurationError(f"zone: unknown IANA time zone {zone!r}") from None
        settings = load_settings()

        async def install() -> list[str]:
            client = await Client.connect(settings.temporal_target, namespace=settings.temporal_namespace)
            return await install_schedules(client, zone, settings.task_queue)

        ids = run_async(install())
    typer.echo(f"schedules in {zone}: {', '.join(ids)}")


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

    with errors():
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
