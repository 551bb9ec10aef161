"""The chaos harness's checks, computed from the rows of the event store and the read models and from
Temporal's visibility — never from the projector's code or figures (the rebuild compared at the end
is the projector's, over a scratch copy of the store, as ``rebuild-read-models`` does it)."""

from __future__ import annotations

import asyncio
import collections
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from chaos_load import Load
from sqlalchemy import Engine, func, select
from temporalio.client import Client

from events.sql import make_engine
from events.store import EventStore, stored_events
from projections import read_models as rm
from projections.projector import ItemProjector

SETTLE_TIMEOUT_S = 300.0
"""How long the read models may take, after the load, to apply every stored event (seconds)."""

# What each stored event type adds to the department-level counters (DOMAIN.md: received, closed).
COUNTED = {"ItemRegistered": "registered", "ItemDispatched": "dispatched", "ItemClosed": "closed"}


@dataclass
class ChaosReport:
    """The figures of a chaos run and every check that failed (``problems``; empty: all held)."""

    items: int = 0
    accepted: int = 0
    acknowledged: int = 0
    refused: int = 0
    resent: int = 0
    stored_events: int = 0
    applied_events: int = 0
    lost_items: int = 0
    double_counts: int = 0
    failed_workflows: int = 0
    running_workflows: int = 0
    load_s: float = 0.0
    kills: list[str] = field(default_factory=list)
    durations: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def render(self) -> str:
        lines = [
            f"items driven            {self.items} ({self.accepted} accepted by the gateway)",
            f"commands                {self.acknowledged} acknowledged, {self.refused} refused, "
            f"{self.resent} requests sent again",
            f"load                    {self.load_s:.1f} s",
            f"events                  {self.stored_events} stored, {self.applied_events} applied",
            f"lost items              {self.lost_items}",
            f"double counts           {self.double_counts}",
            f"failed workflows        {self.failed_workflows}",
            f"stuck workflows         {self.running_workflows}",
            "kills:",
            *(f"  {k}" for k in self.kills),
            "problems:" if self.problems else "problems: none",
            *(f"  {p}" for p in self.problems),
        ]
        return "\n".join(lines)


async def _settled(engine: Engine) -> tuple[int, int]:
    """(stored events, applied events) once every stored event id is applied, or after the timeout."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        with engine.connect() as conn:
            stored = conn.execute(select(func.count()).select_from(stored_events)).scalar_one()
            applied = conn.execute(select(func.count()).select_from(rm.applied_events)).scalar_one()
        if stored == applied or time.monotonic() > deadline:
            return int(stored), int(applied)
        await asyncio.sleep(1.0)


def _rebuilt_checksum(engine: Engine) -> str:
    """The read models rebuilt from a copy of the store in a scratch SQLite database."""
    with tempfile.TemporaryDirectory() as scratch:
        copy = make_engine(f"sqlite:///{Path(scratch) / 'rebuild.db'}")
        target = EventStore(copy)
        target.create()
        with engine.connect() as conn, copy.begin() as out:
            rows = [
                dict(r._mapping)
                for r in conn.execute(select(stored_events).order_by(stored_events.c.position))
            ]
            for start in range(0, len(rows), 5000):
                out.execute(stored_events.insert(), rows[start : start + 5000])
        ItemProjector(copy).rebuild_from_store(target)
        checksum = rm.table_checksum(copy, ("item_view", "unit_day_counters"))
        copy.dispose()
        return checksum


async def check_everything(database_url: str, temporal: str, task_queue: str, load: Load) -> ChaosReport:
    """Every check of the module docstring of ``chaos`` over the database at ``database_url`` and the
    Temporal server at ``temporal``, for what ``load`` recorded."""
    engine = make_engine(database_url)
    report = ChaosReport(
        items=load.options.items,
        accepted=len(load.accepted),
        acknowledged=len(load.acknowledged),
        refused=len(load.refused),
        resent=load.resent,
        durations=load.durations,
    )
    if load.given_up:
        report.problems.append(f"{len(load.given_up)} items never answered, e.g. {load.given_up[:3]}")
    report.stored_events, report.applied_events = await _settled(engine)
    sc = stored_events.c
    with engine.connect() as conn:
        stored = conn.execute(select(sc.event_id, sc.event_type, sc.item_id, sc.causation_id)).all()
        applied_ids = [r[0] for r in conn.execute(select(rm.applied_events.c.event_id))]
        viewed = {r[0]: r[1] for r in conn.execute(select(rm.item_view.c.item_id, rm.item_view.c.stage))}
        level = rm.unit_day_counters.c.level == "department"
        totals = {
            name: int(
                conn.execute(
                    select(func.coalesce(func.sum(rm.unit_day_counters.c[name]), 0)).where(level)
                ).scalar_one()
            )
            for name in COUNTED.values()
        }
    registered = {item for _, kind, item, _ in stored if kind == "ItemRegistered"}
    lost = sorted(i for i in load.accepted if i not in registered or i not in viewed)
    report.lost_items = len(lost)
    if lost:
        report.problems.append(
            f"{len(lost)} accepted items missing from the store or item_view, e.g. {lost[:3]}"
        )
    stored_ids = collections.Counter(r[0] for r in stored)
    applied = collections.Counter(applied_ids)
    if set(stored_ids) != set(applied):
        missing, extra = set(stored_ids) - set(applied), set(applied) - set(stored_ids)
        report.problems.append(
            f"applied events differ from the store: {len(missing)} not applied, {len(extra)} not stored"
        )
    by_type = collections.Counter(kind for _, kind, _, _ in stored)
    for kind, counter in COUNTED.items():
        if totals[counter] != by_type[kind]:
            report.double_counts += abs(totals[counter] - by_type[kind])
            report.problems.append(
                f"unit_day_counters.{counter} {totals[counter]} ≠ {by_type[kind]} {kind} stored"
            )
    closed = {item for _, kind, item, _ in stored if kind == "ItemClosed"}
    wrong_stage = [i for i in load.accepted if i in viewed and (viewed[i] == "closed") != (i in closed)]
    if wrong_stage:
        report.problems.append(
            f"{len(wrong_stage)} items' stage in item_view disagrees with the store, e.g. {wrong_stage[:3]}"
        )
    causes = {cause for _, _, _, cause in stored}
    unapplied = sorted(c for c in load.acknowledged if c not in causes)
    if unapplied:
        report.problems.append(f"{len(unapplied)} acknowledged commands have no event, e.g. {unapplied[:3]}")
    changed = sorted(c for c in load.refused if c in causes)
    if changed:
        report.problems.append(f"{len(changed)} refused commands changed something, e.g. {changed[:3]}")
    live = rm.table_checksum(engine, ("item_view", "unit_day_counters"))
    if live != await asyncio.to_thread(_rebuilt_checksum, engine):
        report.problems.append("the read models differ from a rebuild from the store")
    engine.dispose()
    client = await Client.connect(temporal)
    base = f'TaskQueue = "{task_queue}" AND WorkflowType = "SupervisionItemWorkflow"'
    bad = " OR ".join(f'ExecutionStatus = "{s}"' for s in ("Failed", "TimedOut", "Terminated", "Canceled"))
    report.failed_workflows = (await client.count_workflows(f"{base} AND ({bad})")).count
    report.running_workflows = (await client.count_workflows(f'{base} AND ExecutionStatus = "Running"')).count
    if report.failed_workflows:
        report.problems.append(f"{report.failed_workflows} item workflows failed, timed out or were ended")
    if report.running_workflows:
        report.problems.append(f"{report.running_workflows} item workflows still run after their close")
    return report
