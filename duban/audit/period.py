"""``duban audit period P``: a closed period recomputed from the event log, value by value.

The read models are rebuilt in a scratch SQLite database from the events that counted for the
period — every stored event recorded before the period was closed (those recorded after count on
the next open day: the frozen-period rule, applied with the same frozen spans) — and the indicators,
scores and events hash of every level are recomputed under the scorebook version of the snapshot.
Each value is compared with the snapshot; the day counters of the period's days are compared with
the live read models too, so a counter changed by hand shows (all but the cohort counters, which
keep growing on an item's registration day as it progresses after the close, by design). Nothing
trusted is reused: not the live read models, not the snapshot's own numbers.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert, select

from duban import wiring
from events.errors import ValidationError
from events.sql import make_engine
from events.store import EventStore, stored_events
from projections import read_models as rm
from projections.frozen_periods import (
    create_ledger,
    events_digest,
    period_snapshots,
    read_snapshots,
)
from projections.indicators import indicator_dict, indicators
from projections.periods import canonical_period, parse_period
from projections.projector import ItemProjector
from projections.scoring import Scorebook, load_scorebook, period_scores

BATCH = 5000


@dataclass(frozen=True)
class Difference:
    """One value that differs: where (``what``: indicators, scores, counters, events; the level,
    unit and, for counters, the day), which field, and the two values."""

    what: str
    level: str
    unit: str
    field: str
    expected: Any
    found: Any

    def __str__(self) -> str:
        where = "/".join(p for p in (self.what, self.level, self.unit) if p)
        return f"{where}: {self.field} is {self.found!r} where the recomputation gives {self.expected!r}"


@dataclass
class PeriodAudit:
    """The audit of one closed period: how many events were replayed, and every difference."""

    period: str
    events: int
    differences: list[Difference] = field(default_factory=list)


def _book(scorebook: Scorebook, version: str) -> Scorebook:
    chosen = [v for v in scorebook.versions if v.version == version]
    if not chosen:
        raise ValidationError("scorebook", f"has no version {version} (the snapshot's); pass the one it used")
    return Scorebook((chosen[0],))


def _copy(source: Engine, scratch: Engine, frozen_at: Any) -> int:
    """Copy the events recorded before ``frozen_at`` and every frozen span into ``scratch``."""
    EventStore(scratch).create()
    rm.create_tables(scratch)
    create_ledger(scratch)
    copied = 0
    query = (
        select(stored_events)
        .where(stored_events.c.recorded_at < frozen_at)
        .order_by(stored_events.c.position)
    )
    with source.connect() as src, scratch.begin() as dst:
        batch: list[dict[str, Any]] = []
        for row in src.execution_options(yield_per=BATCH).execute(query):
            batch.append(dict(row._mapping))
            if len(batch) == BATCH:
                dst.execute(insert(stored_events), batch)
                copied, batch = copied + len(batch), []
        if batch:
            dst.execute(insert(stored_events), batch)
            copied += len(batch)
        spans = [dict(r._mapping) for r in src.execute(select(period_snapshots))]
        if spans:
            dst.execute(insert(period_snapshots), spans)
    return copied


def _compare(
    what: str, level: str, frozen: list[dict[str, Any]], fresh: list[dict[str, Any]]
) -> list[Difference]:
    out = []
    before = {str(r["unit_key"]): r for r in frozen}
    after = {str(r["unit_key"]): r for r in fresh}
    for unit in sorted(set(before) | set(after)):
        a, b = before.get(unit), after.get(unit)
        if a is None or b is None:
            out.append(
                Difference(
                    what,
                    level,
                    unit,
                    "(the unit)",
                    "present" if b else "absent",
                    "present" if a else "absent",
                )
            )
            continue
        for name in sorted(set(a) | set(b)):
            if a.get(name) != b.get(name):
                out.append(Difference(what, level, unit, name, b.get(name), a.get(name)))
    return out


def _counters(engine: Engine, start: Any, end: Any) -> list[dict[str, Any]]:
    c = rm.unit_day_counters.c
    query = select(rm.unit_day_counters).where(c.day >= start, c.day < end)
    with engine.connect() as conn:
        return [
            dict(r._mapping) | {"unit_key": f"{r.level}|{r.unit_key}|{r.day}"} for r in conn.execute(query)
        ]


def audit_period(url: str | Engine, period: str, scorebook: Path | None = None) -> PeriodAudit:
    """Recompute closed ``period`` from the log and compare (module docstring).

    Raises:
        ValidationError: a bad period, one not closed, a scorebook without the snapshot's version.
        ConfigurationError: no read models at ``url``.
    """
    engine = wiring.read_models(url)
    EventStore(engine).create()  # an older store gains the columns this duban reads
    period = canonical_period(period)
    snapshots = read_snapshots(engine, period)
    if not snapshots:
        raise ValidationError("period", f"{period} is not closed: there is no snapshot to verify")
    start, end = parse_period(period)
    book = _book(load_scorebook(scorebook) if scorebook else load_scorebook(), snapshots[0].scorebook_version)
    with tempfile.TemporaryDirectory(prefix="duban-audit-") as folder:
        scratch = make_engine(f"sqlite:///{Path(folder) / 'scratch.db'}")
        try:
            copied = _copy(engine, scratch, snapshots[0].frozen_at)
            ItemProjector(scratch).rebuild_from_store(EventStore(scratch))
            audit = PeriodAudit(period, copied)
            digest, count = events_digest(scratch, start, end)
            if (digest, count) != (snapshots[0].events_hash, snapshots[0].events_count):
                audit.differences.append(
                    Difference(
                        "events",
                        "",
                        "",
                        "hash, count",
                        (digest, count),
                        (snapshots[0].events_hash, snapshots[0].events_count),
                    )
                )
            for snap in snapshots:
                fresh_ind = [indicator_dict(r) for r in indicators(scratch, snap.level, start, end)]
                audit.differences += _compare("indicators", snap.level, snap.indicators, fresh_ind)
                fresh_scores = period_scores(scratch, snap.level, period, book)
                audit.differences += _compare("scores", snap.level, snap.scores, fresh_scores)
            audit.differences += _compare(
                "counters", "", _counters(engine, start, end), _counters(scratch, start, end)
            )
        finally:
            scratch.dispose()
    return audit
