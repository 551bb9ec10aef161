"""The main job: replay real case records through the real item workflow in simulated time.

The time-skipping Temporal test server runs the workflows; its clock is driven by the cases' own
timestamps: the replay walks the cases' business days in order, skips the server clock to each day,
starts that day's items and delivers that day's commands (dated with their real times; the workflow
applies each after the timers due before it). Skipping waits until the server is idle, so each
day's timers (warnings, breaches, escalations) fire in order. Events go to the event store and to
Kafka; the projection consumes them into the read models, from which the labels check and the
rankings are read.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

import structlog
import temporalio.api.testservice.v1 as test_service
from sqlalchemy import Engine, inspect, select
from temporalio.client import Client
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.testing import WorkflowEnvironment
from tqdm import tqdm

from activities.event_recording import EventRecorder
from duban import wiring
from duban.config import Settings
from duban.errors import ConfigurationError
from duban.importers.base import ImportResult
from duban.importers.profiles import load_cases, load_profile, with_zone
from duban.jobs.replay_plan import CasePlan, plan_case
from duban.processes.worker import build_worker
from duban.stack.binaries import find_binary
from duban.stack.embedded import stack_up
from duban.stack.probes import ensure_topics, host_port, port_answers
from events.sql import create_schema, make_engine
from events.store import EventStore
from events.store import metadata as store_metadata
from projections.consumer import ProjectionConsumer
from projections.read_models import dead_letters, item_view
from projections.read_models import metadata as read_metadata
from workflows.item_client import item_workflow_id, send_command, start_item
from workflows.item_workflow import ItemWorkflowInput
from workflows.payload_converter import DATA_CONVERTER

log = structlog.get_logger(__name__)

SKIP_RPC_TIMEOUT = timedelta(minutes=30)


@dataclass
class SimulationOptions:
    """Options of one replay. ``database_url`` defaults to a fresh ``<data_dir>/simulate-<profile>.db``.

    ``bucket_days``: the replay delivers each bucket's starts and commands at the bucket's start
    (dated with their real times; the workflow orders them against its timers), then skips the clock
    to the next bucket. Larger buckets mean fewer clock steps; outcomes do not depend on the size.
    ``concurrency``: client calls in flight at once.
    ``replace``: allow ``database_url`` to name a database that already holds duban's tables (they
    are dropped). The default file is rebuilt on every run and replaced only when the run succeeds.
    ``profile_file`` (a user-written profile; it wins over ``profile``), ``services`` (an Open311
    ``services.json``) and ``zone`` (the area's IANA zone, replacing the profile's) shape the import.
    """

    profile: str
    path: Path
    profile_file: Path | None = None
    services: Path | None = None
    zone: str | None = None
    limit: int | None = None
    database_url: str | None = None
    concurrency: int = 64
    progress: bool = True
    bucket_days: float = 30.0
    replace: bool = False


@dataclass
class SimulationSummary:
    """What a replay did. ``labels_*`` compare each item's on-time outcome in the read model with the
    city's own label, for the cases that have both a deadline and a label: a closed item's on-time
    flag, and for an item still open at the end, whether it is not (yet) overdue."""

    profile: str
    items: int
    events: int
    rejected_rows: int
    labels_checked: int
    labels_matched: int
    wall_s: float
    items_per_s: float
    label_mismatches: list[str] = field(default_factory=list)
    blank_label_rows: list[str] = field(default_factory=list)
    dead_letters: int = 0
    database_url: str = ""
    topic: str = ""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


async def _skip(env: WorkflowEnvironment, duration: timedelta) -> None:
    """Advance the test server's clock by ``duration``; returns once the server is idle past it."""
    request = test_service.SleepRequest()
    request.duration.FromTimedelta(max(duration, timedelta(0)))
    await env.client.service_client.test_service.unlock_time_skipping_with_sleep(
        request, timeout=SKIP_RPC_TIMEOUT
    )


def quiet_runtime() -> Runtime:
    """A Temporal runtime whose core logs only errors (the test server lacks capabilities that the
    SDK warns about at every start, which would only clutter the job's output)."""
    filter_ = TelemetryFilter(core_level="ERROR", other_level="ERROR")
    return Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(filter=filter_)))


def _bucket(at: datetime, origin: datetime, size: timedelta) -> datetime:
    """Start of the delivery bucket of ``size`` (counted from ``origin``) that holds ``at``."""
    return origin + size * ((at - origin) // size)


async def ensure_kafka(settings: Settings) -> None:
    """Start the embedded stack if duban uses the embedded broker and it is not answering."""
    if settings.kafka_embedded and not port_answers(*host_port(settings.kafka_target)):
        log.info("simulate.starting_embedded_stack")
        await asyncio.to_thread(stack_up, settings)


def reset_database(engine: Engine) -> None:
    """Drop and recreate duban's tables (event store and read models) in a simulation database."""
    for md in (read_metadata, store_metadata):
        md.drop_all(engine)
        create_schema(engine, md)


class Replay:
    """One run of the main job (see module docstring)."""

    def __init__(self, settings: Settings, options: SimulationOptions) -> None:
        self.settings = settings
        self.options = options
        self.run_id = uuid.uuid4().hex[:8]
        self.spec = with_zone(load_profile(options.profile, options.profile_file), options.zone)
        final = (settings.data_dir / f"simulate-{self.spec.name}.db").resolve()
        self.final_path: Path | None = None if options.database_url else final
        # The default file is built aside and moved into place only when the run succeeds, so a
        # failed run never destroys the previous results.
        self.database_url = options.database_url or f"sqlite:///{final}.partial"
        self.topic = f"{settings.events_topic}.simulate.{self.spec.name}.{self.run_id}"
        self.run_settings = replace(settings, events_topic=self.topic, dead_letter_topic=f"{self.topic}.dlq")

    async def run(self, env: WorkflowEnvironment | None = None) -> SimulationSummary:
        """Import, replay, project, check labels; raises on infrastructure failure.

        Args:
            env: a running time-skipping environment to use (a benchmark shares one); by default
                the replay starts its own test server and stops it at the end.
        """
        started = time.monotonic()
        imported = load_cases(self.spec, self.options.path, self.options.services)
        cases = imported.cases[: self.options.limit] if self.options.limit else imported.cases
        plans = [plan_case(c, self.spec.name) for c in cases]
        self._check_database()
        await ensure_kafka(self.settings)
        await ensure_topics(self.run_settings)
        engine = self._fresh_database()
        consumer = ProjectionConsumer(self.run_settings, engine, group_id=f"duban-simulate-{self.run_id}")
        stop = asyncio.Event()
        consumer_task = asyncio.create_task(consumer.run(stop))
        try:
            await self._replay(plans, engine, env)
            await consumer.wait_caught_up(timeout_s=600)
        finally:
            stop.set()
            await consumer_task
        wall = time.monotonic() - started
        summary = self._summarise(imported, plans, engine, wall)
        engine.dispose()
        if self.final_path is not None:
            for suffix in ("-wal", "-shm"):
                Path(f"{self.final_path}{suffix}").unlink(missing_ok=True)
            Path(f"{self.final_path}.partial").replace(self.final_path)
            summary.database_url = f"sqlite:///{self.final_path}"
        return summary

    def _check_database(self) -> None:
        """Refuse a database the run must not touch, before anything starts or is written.

        Raises:
            ConfigurationError: the SQLite file's folder does not exist, or a database named by
                ``database_url`` already holds duban's tables and ``replace`` is not set.
        """
        url = self.database_url
        if url.startswith("sqlite:///"):
            path = Path(url.removeprefix("sqlite:///"))
            if not path.parent.is_dir():
                raise ConfigurationError(f"database_url: folder {path.parent} does not exist")
            if not path.exists():
                return
        if self.final_path is not None or self.options.replace:
            return
        engine = make_engine(url)
        try:
            tables = set(inspect(engine).get_table_names())
        finally:
            engine.dispose()
        if tables & {"event_store", "item_view"}:
            raise ConfigurationError(
                f"database_url: {url} already holds duban tables; pass --replace to overwrite them"
            )

    def _fresh_database(self) -> Engine:
        """An engine on an empty simulation database (checked by ``_check_database`` first)."""
        if self.final_path is not None:
            Path(self.database_url.removeprefix("sqlite:///")).unlink(missing_ok=True)
        engine = make_engine(self.database_url)
        reset_database(engine)
        return engine

    async def _replay(self, plans: list[CasePlan], engine: Engine, env: WorkflowEnvironment | None) -> None:
        async with wiring.recording(self.run_settings, engine, self.topic, recreate_topics=False) as rec:
            if env is not None:
                await self._replay_on(env, plans, rec.recorder)
                return
            binary = find_binary("temporal-test-server")
            async with await WorkflowEnvironment.start_time_skipping(
                test_server_existing_path=str(binary), runtime=quiet_runtime(), data_converter=DATA_CONVERTER
            ) as own:
                await self._replay_on(own, plans, rec.recorder)

    async def _replay_on(
        self, env: WorkflowEnvironment, plans: list[CasePlan], recorder: EventRecorder
    ) -> None:
        task_queue = f"duban-simulate-{self.run_id}"
        async with build_worker(env.client, task_queue, recorder, max_cached=len(plans) + 100):
            with env.auto_time_skipping_disabled():
                await self._drive(env, env.client, task_queue, plans)

    async def _drive(
        self, env: WorkflowEnvironment, client: Client, queue: str, plans: list[CasePlan]
    ) -> None:
        if not plans:
            return
        first = min(p.case.reported_at for p in plans)
        origin = first.replace(hour=0, minute=0, second=0, microsecond=0)
        offset = (await env.get_current_time() - origin).total_seconds()
        size = timedelta(days=self.options.bucket_days)
        days: dict[datetime, list[tuple[CasePlan, bool]]] = defaultdict(list)
        for plan in plans:
            days[_bucket(plan.case.reported_at, origin, size)].append((plan, True))
            if plan.later_at is not None:
                days[_bucket(plan.later_at, origin, size)].append((plan, False))
        # the export's last recorded moment: the city labelled its open items then, so the clock stops
        # there (an open item past its deadline by then is overdue; one due later is not yet)
        last = max(p.later_at or p.case.reported_at for p in plans)
        semaphore = asyncio.Semaphore(self.options.concurrency)
        tolerance = size.total_seconds() + 1
        # no bar unless asked for and stderr is a terminal (tqdm: disable=None)
        shown = None if self.options.progress else True
        bar = tqdm(total=sum(len(v) for v in days.values()), unit="step", disable=shown)
        now = origin

        async def deliver(plan: CasePlan, start: bool) -> None:
            async with semaphore:
                if start:
                    await start_item(
                        client,
                        ItemWorkflowInput(
                            plan.registration,
                            plan.initial_commands,
                            offset,
                            False,
                            tolerance,
                            local_recording=True,  # a crash ends the whole replay: see the field
                            memo=False,  # nobody inspects the replay's own server
                        ),
                        queue,
                    )
                if not start or (plan.later_at is not None and _bucket(plan.later_at, origin, size) == day):
                    handle = client.get_workflow_handle(item_workflow_id(plan.case.item_id))
                    for cmd in plan.later:
                        await send_command(handle, cmd)
                bar.update(1)

        for day in sorted(days):
            await _skip(env, day - now)
            now = day
            entries = days[day]
            starting = {id(p) for p, s in entries if s}
            # A case starting and finishing the same day is delivered once, start then commands.
            todo = [(p, s) for p, s in entries if s or id(p) not in starting]
            bar.update(len(entries) - len(todo))
            await asyncio.gather(*(deliver(p, s) for p, s in todo))
        await _skip(env, max(last - now, timedelta(0)) + timedelta(seconds=1))
        bar.close()

    def _summarise(
        self, imported: ImportResult, plans: list[CasePlan], engine: Engine, wall: float
    ) -> SimulationSummary:
        c = item_view.c
        with engine.connect() as conn:
            rows = conn.execute(select(c.item_id, c.on_time, c.overdue)).all()
        # a closed item's outcome is its on-time flag; an open one is "on time" until it is overdue
        # (what a city labels an open item past its deadline: OVERDUE)
        outcomes = {
            item_id: (not overdue) if on_time is None else on_time for item_id, on_time, overdue in rows
        }
        checked = matched = 0
        mismatches: list[str] = []
        blanks: list[str] = []
        for plan in plans:
            case = plan.case
            if case.deadline is None:
                continue
            if case.city_on_time is None:
                if imported.has_label:  # the city labels its cases: a deadline without one is worth naming
                    blanks.append(f"row {case.row_number} (item {case.item_id})")
                continue
            checked += 1
            if outcomes.get(case.item_id) == case.city_on_time:
                matched += 1
            else:
                mismatches.append(f"row {case.row_number} (item {case.item_id})")
        with engine.connect() as conn:
            dead = len(conn.execute(select(dead_letters.c.id)).all())
        return SimulationSummary(
            profile=imported.profile,
            items=len(plans),
            events=EventStore(engine).count(),
            rejected_rows=len(imported.rejected),
            labels_checked=checked,
            labels_matched=matched,
            wall_s=round(wall, 2),
            items_per_s=round(len(plans) / wall, 2) if wall else 0.0,
            label_mismatches=mismatches[:50],
            blank_label_rows=blanks,
            dead_letters=dead,
            database_url=self.database_url,
            topic=self.topic,
        )


def run_simulation(settings: Settings, options: SimulationOptions) -> SimulationSummary:
    """Run the main job synchronously (see ``Replay``)."""
    return asyncio.run(Replay(settings, options).run())
