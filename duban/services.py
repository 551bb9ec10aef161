"""The service layer: one function per use case, called by the CLI and every later entry point.

Each takes plain values (a database URL, ``Settings``, a Temporal client, request dataclasses), does
the whole use case, and returns a result dataclass or raises a ``DubanError`` naming the field and the
reason; none prints. Wiring (engines, store, producer, recorder) comes from ``duban.wiring``.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowExecutionStatus,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from duban import wiring
from duban.config import Settings
from duban.errors import ConfigurationError
from duban.observability import count_command
from events.bounds import iso_day, points_problem
from events.codec import encode_event, validate_event
from events.envelope import EventEnvelope
from events.errors import DubanError, ValidationError
from events.store import EventStore
from projections import indicators as ind
from projections import read_models as rm
from projections import scoring
from projections.frozen_periods import ProjectionBehind, Snapshot, freeze_when_projected, read_snapshots
from projections.interviews import record_interviews
from projections.periods import parse_period, previous_period
from projections.projector import ItemProjector
from projections.rankings import rank_units
from workflows.item_client import ItemHandle, apply_command, item_workflow_id, start_item
from workflows.item_model import CommandOutcome, ItemCommand
from workflows.item_workflow import ItemOutcome, ItemWorkflowInput
from workflows.payload_converter import DATA_CONVERTER

MAX_CLOSE_WAIT_S = 86_400.0
"""The longest wait of ``close_period`` for the projection (a day): longer is a typo, not a plan."""


# --- items -------------------------------------------------------------------------------------


class ItemEnded(DubanError):
    """An item id was registered before and its workflow has ended: ids are never reused."""


class CommandRefused(DubanError):
    """A command was refused: ``kind`` is ``MalformedCommand`` (the field and the reason) or
    ``IllegalCommand`` (the rules forbid it now)."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(f"{kind}: {reason}")
        self.kind, self.reason = kind, reason


async def register_item(client: Client, input: ItemWorkflowInput, task_queue: str) -> ItemHandle:
    """Start the item of ``input``, or return the handle of its running workflow (registering twice is
    harmless: the workflow input of the first registration stands).

    Raises:
        ItemEnded: the id belongs to an item whose workflow has ended.
    """
    try:
        return await start_item(
            client,
            input,
            task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
    except WorkflowAlreadyStartedError:
        raise ItemEnded(f"item {input.registration.item_id} was registered before and has ended") from None


async def register_new_item(client: Client, input: ItemWorkflowInput, task_queue: str) -> bool:
    """Start the item of ``input``; True if this call started it, False if its workflow was already
    running (of concurrent calls, exactly one starts it).

    Raises:
        ItemEnded: the id belongs to an item whose workflow has ended.
    """
    try:
        await start_item(
            client,
            input,
            task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
        return True
    except WorkflowAlreadyStartedError:
        described = await client.get_workflow_handle(item_workflow_id(input.registration.item_id)).describe()
        if described.status == WorkflowExecutionStatus.RUNNING:
            return False
        raise ItemEnded(f"item {input.registration.item_id} was registered before and has ended") from None


async def apply_item_command(client: Client, item_id: str, command: ItemCommand) -> CommandOutcome:
    """Apply ``command`` to item ``item_id`` and return its outcome once its events are recorded.

    Raises:
        CommandRefused: malformed or illegal now (the workflow's reason).
    """
    handle = client.get_workflow_handle(f"item-{item_id}")
    try:
        outcome = await apply_command(handle, command)
    except WorkflowUpdateFailedError as exc:
        raise _refused(command, exc) from None
    count_command(command.kind, outcome.applied)
    return outcome


def _refused(command: ItemCommand, exc: WorkflowUpdateFailedError) -> CommandRefused:
    """The workflow's refusal of ``command`` as ``CommandRefused`` (counted in the metrics)."""
    cause: Any = exc.cause
    refused = CommandRefused(getattr(cause, "type", None) or "Refused", getattr(cause, "message", str(exc)))
    count_command(command.kind, False, refused.kind)
    return refused


async def apply_item_command_with_start(
    client: Client, input: ItemWorkflowInput, command: ItemCommand, task_queue: str
) -> CommandOutcome:
    """Apply ``command`` to the item of ``input``, starting the item first if it is not running
    (Temporal update-with-start: one call, the start and the update succeed or fail together).

    Raises:
        ItemEnded: the item's workflow has ended (apply the command with ``apply_item_command``: a
            repeat of a command it applied is answered, anything else is refused).
        CommandRefused: malformed or illegal now (the workflow's reason).
    """
    reg = input.registration
    start: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
        "SupervisionItemWorkflow",
        input,
        id=item_workflow_id(reg.item_id),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        result_type=ItemOutcome,
    )
    try:
        outcome: CommandOutcome = await client.execute_update_with_start_workflow(
            "apply_command", command, start_workflow_operation=start, result_type=CommandOutcome
        )
    except WorkflowAlreadyStartedError:
        raise ItemEnded(f"item {reg.item_id} was registered before and has ended") from None
    except WorkflowUpdateFailedError as exc:
        raise _refused(command, exc) from None
    count_command(command.kind, outcome.applied)
    return outcome


# --- reading: rankings, indicators, scores ------------------------------------------------------


def _check_level(level: object) -> None:
    if level not in rm.LEVELS:
        raise ValidationError("level", f"must be one of {', '.join(rm.LEVELS)}, not {level!r}")


def rankings(url: str | Engine, level: str, period: str | None, no_deadline: str = "exclude") -> list[Any]:
    """The ranking of ``level`` by on-time closure rate over ``period`` (all time when ``None``).

    Raises:
        ValidationError: a bad level, period or ``no_deadline`` (``exclude`` or ``on_time``).
        ConfigurationError: no read models at ``url``.
    """
    _check_level(level)
    if no_deadline not in ("exclude", "on_time"):
        raise ValidationError("no_deadline", f"must be exclude or on_time, not {no_deadline!r}")
    start, end = parse_period(period) if period is not None else (None, None)  # "" is no period
    return rank_units(wiring.read_models(url), level, start, end, no_deadline=no_deadline)


def indicator_rows(
    url: str | Engine, level: str, period: str | None, options: ind.IndicatorOptions
) -> list[Any]:
    """Every indicator of every unit of ``level`` over ``period`` (all time when ``None``).

    Raises:
        ValidationError: a bad level or period. ConfigurationError: no read models at ``url``.
    """
    _check_level(level)
    start, end = parse_period(period) if period is not None else (None, None)  # "" is no period
    return ind.indicators(wiring.read_models(url), level, start, end, options)


def dashboard(url: str | Engine, period: str | None, level: str) -> dict[str, Any]:
    """What the leaders' dashboard shows (``projections.dashboard.dashboard_data``) for ``period``
    (default: the newest month with items) at ``level``, under the built-in scorebook.

    Raises:
        ValidationError: a bad level or period. ConfigurationError: no read models at ``url``.
    """
    from projections.dashboard import dashboard_data

    _check_level(level)
    return dashboard_data(wiring.read_models(url), period, level, scoring.load_scorebook())


@dataclass
class ScoresReport:
    """Scores of a period: frozen (``snapshot`` is its snapshot) or live; ``previous`` is the period
    the movement compares with."""

    period: str
    previous: str
    rows: list[dict[str, object]]
    snapshot: Snapshot | None


def scores_report(
    url: str | Engine, level: str, period: str, scorebook: Path | None, options: ind.IndicatorOptions
) -> ScoresReport:
    """The scores of ``level`` for ``period``: as frozen if it is closed, else as they stand now under
    ``scorebook`` (default: the built-in one) and ``options``.

    Raises:
        ValidationError: a bad period, no scorebook version for it. ConfigurationError: no read models.
    """
    _check_level(level)
    parse_period(period)
    book = scoring.load_scorebook(scorebook) if scorebook else scoring.load_scorebook()
    engine = wiring.read_models(url)
    frozen = read_snapshots(engine, period, level)
    if frozen:
        return ScoresReport(period, previous_period(period), frozen[0].scores, frozen[0])
    rows = scoring.period_scores(engine, level, period, book, options)
    return ScoresReport(period, previous_period(period), rows, None)


# --- writing: adjustments, closing periods, rebuilding ------------------------------------------


@dataclass(frozen=True)
class AdjustmentRequest:
    """A manual score adjustment as typed by a person: ``day`` ``YYYY-MM-DD``, ``points`` a decimal
    text (``-1.50``), ``adjustment_id`` ``None`` for a random one. Errors name these fields by the
    option names (``unit``, ``id``)."""

    level: str
    unit: str
    day: str
    points: str
    reason: str
    approver: str
    adjustment_id: str | None = None


@dataclass
class AdjustmentRecorded:
    """The adjustment's event; ``already_at`` when the same adjustment was recorded before (nothing
    changed), else whether the events topic took it (``published``)."""

    event: EventEnvelope
    already_at: datetime | None
    published: bool


_ADJUST_FIELDS = {"adjustment_id": "id", "unit_key": "unit"}


def _same_adjustment(stored: dict[str, object], new: dict[str, object]) -> bool:
    """Equal payloads, the points compared as numbers (``-1.5`` and ``-1.50`` are the same points)."""

    def numeric(payload: dict[str, object]) -> dict[str, object]:
        return payload | {"points": Decimal(str(payload.get("points")))}

    return numeric(stored) == numeric(new)


def adjustment_event(req: AdjustmentRequest, at: datetime) -> EventEnvelope:
    """The ``ScoreAdjusted`` event of ``req`` recorded at ``at`` (nothing is stored).

    Raises:
        ValidationError: a field out of bounds, named by its option (``day``, ``points``, ``id``…).
    """
    when = iso_day(req.day)
    if when is None:
        raise ValidationError("day", f"{req.day!r} is not a date (YYYY-MM-DD)")
    if (problem := points_problem(req.points)) is not None:
        raise ValidationError("points", problem)
    amount = Decimal(format(Decimal(req.points), "f"))  # 1e3 is stored and shown as 1000
    if req.adjustment_id is not None and not req.adjustment_id.strip():
        raise ValidationError("id", "must not be empty (leave --id out for a new random id)")
    ident = uuid.uuid4().hex if req.adjustment_id is None else req.adjustment_id
    try:
        return scoring.score_adjustment(
            ident, req.level, req.unit, when, amount, req.reason, req.approver, at
        )
    except ValidationError as exc:  # name the option, not the payload field
        raise ValidationError(_ADJUST_FIELDS.get(exc.field, exc.field), exc.reason) from None


async def record_adjustment(settings: Settings, req: AdjustmentRequest) -> AdjustmentRecorded:
    """Record ``req`` as a ``ScoreAdjusted`` event in the event store, then publish it. Idempotent by
    id: the same adjustment again changes nothing; a topic that does not answer leaves it stored (the
    projection's catch-up applies it).

    Raises:
        ValidationError: as ``adjustment_event``; the id was recorded before with other values.
    """
    event = adjustment_event(req, datetime.now(UTC))
    store = EventStore(wiring.make_engine(settings.database))
    store.create()
    previous = next(store.read(event.item_id), None)
    if previous is not None:
        if not _same_adjustment(previous.payload, validate_event(event).payload):
            ident = event.item_id.removeprefix("score-adjustment:")
            raise ValidationError(
                "id", f"adjustment {ident} was recorded before with other values; use a new id"
            )
        return AdjustmentRecorded(previous, previous.recorded_at, False)
    raw = encode_event(event)
    store.record([event], [raw])  # EventConflict if the same id was recorded meanwhile
    return AdjustmentRecorded(event, None, await wiring.publish_once(settings, event.item_id, raw))


@dataclass
class PeriodClose:
    """A closed period's snapshot (its first level's); ``already`` if it was closed before."""

    snapshot: Snapshot
    already: bool


def close_period(url: str, period: str, scorebook: Path | None, wait_s: float) -> PeriodClose:
    """Close ``period`` once the projection has applied every stored event, waiting up to ``wait_s``
    seconds (0 to ``MAX_CLOSE_WAIT_S``) for it; closing a closed period returns its snapshot.

    Raises:
        ConfigurationError: a bad ``wait_s``; no read models. ValidationError: a bad period, one that
            has not ended in every area zone. ProjectionBehind: still behind after ``wait_s``.
    """
    if not 0 <= wait_s <= MAX_CLOSE_WAIT_S:
        raise ConfigurationError(f"wait: must be a number of seconds from 0 to {MAX_CLOSE_WAIT_S:.0f}")
    book = scoring.load_scorebook(scorebook) if scorebook else scoring.load_scorebook()
    engine = wiring.read_models(url)
    already = bool(read_snapshots(engine, period))
    give_up = time.monotonic() + wait_s
    while True:
        try:
            [first, *_] = freeze_when_projected(engine, period, book, datetime.now(UTC))
            record_interviews(engine, first.period, first.frozen_at, first.scorebook_version)
            return PeriodClose(first, already)
        except ProjectionBehind:
            if time.monotonic() >= give_up:
                raise
            time.sleep(1.0)


@dataclass
class Rebuilt:
    """A rebuild of the read models: stored events read, applied, dead-lettered, and the checksum of
    ``item_view`` and ``unit_day_counters``."""

    stored: int
    applied: int
    dead_lettered: int
    checksum: str


def rebuild_read_models(url: str) -> Rebuilt:
    """Drop the read models at ``url`` and rebuild them from its event store (events untouched).

    Raises:
        ConfigurationError: not an existing database, or one without an event store.
    """
    from sqlalchemy import inspect

    engine = wiring.existing_database(url)
    if not inspect(engine).has_table("event_store"):
        raise ConfigurationError(f"database_url: {url} holds no event store to rebuild from")
    store = EventStore(engine)
    rm.drop_tables(engine)
    result = ItemProjector(engine).rebuild_from_store(store)
    checksum = rm.table_checksum(engine, ("item_view", "unit_day_counters"))
    return Rebuilt(store.count(), result.applied, result.dead_lettered, checksum)


async def install_schedules(settings: Settings, zone: str) -> list[str]:
    """Install (or update) the four period-closing Temporal Schedules in ``zone``; their ids.

    Raises:
        ConfigurationError: an unknown IANA zone.
    """
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from duban.schedules import install_schedules as install

    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigurationError(f"zone: unknown IANA time zone {zone!r}") from None
    client = await Client.connect(
        settings.temporal_target, namespace=settings.temporal_namespace, data_converter=DATA_CONVERTER
    )
    return await install(client, zone, settings.task_queue)
