"""``duban audit period P``: a closed period recomputed from the event log, value by value.

The read models are rebuilt in a scratch SQLite database from the events that counted for the
period — every stored event recorded before the period was closed (those recorded after count on
the next open day: the frozen-period rule, applied with the same frozen spans) — and the indicators,
scores and events hash of every level are recomputed under the scorebook version of the snapshot.
Each value is compared with the snapshot — every level the close stored (a level missing, or one
whose events hash, close time or scorebook version disagrees with the others, is a difference too)
and, in each, every table (indicators, scores); the day counters of the period's days are compared
with the live read models too, so a counter changed by hand shows (all but the cohort counters,
which keep growing on an item's registration day as it progresses after the close, by design).
Nothing trusted is reused: not the live read models, not the snapshot's own numbers.

The audited database is only read: no table is created or migrated there (``closed_snapshots``
reads the snapshots without ``create_ledger``); a snapshot whose stored JSON is corrupt, or an
event row whose time does not read, is refused, named.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Text, insert, inspect, not_, or_, select, type_coerce

from duban import wiring
from events.errors import ValidationError
from events.log_audit import UnreadableRow, read_time
from events.sql import make_engine, stored_time
from events.store import EventStore, stored_events
from projections import read_models as rm
from projections.frozen_periods import (
    Snapshot,
    create_ledger,
    events_digest,
    period_snapshots,
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


def _unit_rows(text: Any, period: str, level: str, table: str) -> list[dict[str, Any]]:
    """A snapshot's stored table (JSON rows with a ``unit_key``), refused when it does not read."""
    where = f"the snapshot of {period} at level {level!r}: its {table}"
    try:
        rows = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise ValidationError(
            "snapshot", f"{where} is not valid JSON ({exc}): the stored snapshot is corrupt"
        ) from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) and "unit_key" in r for r in rows):
        raise ValidationError(
            "snapshot", f"{where} is not a list of rows with a unit_key: the stored snapshot is corrupt"
        )
    return rows


def _day(value: Any, period: str, level: str, name: str) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ValidationError(
            "snapshot", f"the snapshot of {period} at level {level!r}: its {name} {value!r} is not a date"
        ) from None


def closed_snapshots(engine: Engine, period: str) -> list[Snapshot]:
    """The stored snapshots of ``period`` (canonical), one per level, by level; empty when it is not
    closed. Reads only (unlike ``projections.frozen_periods.read_snapshots``, it creates no table).

    Raises:
        ValidationError: field ``snapshot``, a snapshot whose JSON or times are corrupt (named).
    """
    if not inspect(engine).has_table(period_snapshots.name):
        return []
    c = period_snapshots.c
    raw = ("frozen_at", "start", "end")
    query = (
        select(*[type_coerce(col, Text) if col.name in raw else col for col in period_snapshots.c])
        .where(c.period == period)
        .order_by(c.level)
    )
    out = []
    with engine.connect() as conn:
        for r in conn.execute(query):
            try:
                frozen_at = stored_time(r.frozen_at)
            except ValueError as exc:
                raise ValidationError(
                    "snapshot", f"the snapshot of {period} at level {r.level!r}: its frozen_at {exc}"
                ) from None
            out.append(
                Snapshot(
                    r.period, r.level, _day(r.start, period, r.level, "start"),
                    _day(r.end, period, r.level, "end"), frozen_at, r.scorebook_version, r.events_hash,
                    r.events_count, _unit_rows(r.indicators, period, r.level, "indicators"),
                    _unit_rows(r.scores, period, r.level, "scores"),
                )
            )  # fmt: skip
    return out


def is_closed(engine: Engine, period: str) -> bool:
    """Whether ``period`` (canonical) has a stored snapshot (reads only)."""
    if not inspect(engine).has_table(period_snapshots.name):
        return False
    query = select(period_snapshots.c.level).where(period_snapshots.c.period == period).limit(1)
    with engine.connect() as conn:
        return conn.execute(query).first() is not None


_TIMES = ("occurred_at", "recorded_at")
_SQLITE_TIME = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9]*"
"""How SQLite holds a stored time (``YYYY-MM-DD HH:MM:SS.ffffff``), as a GLOB pattern."""


def _copy(source: Engine, scratch: Engine, frozen_at: Any) -> int:
    """Copy the events recorded before ``frozen_at`` and every frozen span into ``scratch``: the
    columns the source has (an older store lacks ``digest`` and ``chain``; ``create`` fills the
    digests in the scratch copy). The source is only read.

    Raises:
        UnreadableRow: a row whose time or payload does not read (the event is named).
    """
    EventStore(scratch).create()
    rm.create_tables(scratch)
    create_ledger(scratch)
    copied = 0
    present = {col["name"] for col in inspect(source).get_columns(stored_events.name)}
    columns = [
        type_coerce(col, Text) if col.name in _TIMES else col
        for col in stored_events.c
        if col.name in present
    ]
    recorded = stored_events.c.recorded_at
    before = recorded < frozen_at
    if source.dialect.name == "sqlite":  # a text that is no time compares as text: read it, to name it
        before = or_(before, not_(type_coerce(recorded, Text).op("GLOB")(_SQLITE_TIME)))
    query = select(*columns).where(before).order_by(stored_events.c.position)
    with source.connect() as src, scratch.begin() as dst:
        batch: list[dict[str, Any]] = []
        for row in src.execution_options(yield_per=BATCH).execute(query):
            values = dict(row._mapping)
            for name in _TIMES:
                values[name] = read_time(row, name)
            try:
                json.loads(values["payload"])
            except (TypeError, ValueError) as exc:
                raise UnreadableRow(row, f"its payload is not JSON ({exc})") from None
            batch.append(values)
            if len(batch) == BATCH:
                dst.execute(insert(stored_events), batch)
                copied, batch = copied + len(batch), []
        if batch:
            dst.execute(insert(stored_events), batch)
            copied += len(batch)
        if inspect(source).has_table(period_snapshots.name):
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


def _agreed(snapshots: list[Snapshot], name: str) -> Any:
    """The value of ``name`` most levels of a close agree on (they all hold the same when intact)."""
    return Counter(getattr(s, name) for s in snapshots).most_common(1)[0][0]


def _levels(snapshots: list[Snapshot], digest: str, count: int) -> list[Difference]:
    """What differs between the levels of a close and what it must hold: a snapshot for every
    level; the same close time and scorebook version in each; the recomputed events hash."""
    out = []
    stored = {s.level for s in snapshots}
    for level in rm.LEVELS:
        if level not in stored:
            out.append(Difference("snapshot", level, "", "(the level)", "present", "absent"))
    for snap in snapshots:
        if snap.level not in rm.LEVELS:
            out.append(Difference("snapshot", snap.level, "", "(the level)", "absent", "present"))
    for name in ("frozen_at", "scorebook_version"):
        agreed = _agreed(snapshots, name)
        for snap in snapshots:
            if getattr(snap, name) != agreed:
                out.append(Difference("snapshot", snap.level, "", name, agreed, getattr(snap, name)))
    hashes: dict[tuple[str, int], list[str]] = {}
    for snap in snapshots:
        hashes.setdefault((snap.events_hash, snap.events_count), []).append(snap.level)
    for found, levels in hashes.items():
        if found != (digest, count):
            level = "" if len(hashes) == 1 else ",".join(levels)
            out.append(Difference("events", level, "", "hash, count", (digest, count), found))
    return out


def audit_period(url: str | Engine, period: str, scorebook: Path | None = None) -> PeriodAudit:
    """Recompute closed ``period`` from the log and compare (module docstring). ``url``'s
    database is only read.

    Raises:
        ValidationError: a bad period, one not closed, a scorebook without the snapshot's version,
            a corrupt snapshot.
        UnreadableRow: an event row that does not read.
        ConfigurationError: no read models at ``url``.
    """
    engine = wiring.read_models(url)
    period = canonical_period(period)
    snapshots = closed_snapshots(engine, period)
    if not snapshots:
        raise ValidationError("period", f"{period} is not closed: there is no snapshot to verify")
    if not inspect(engine).has_table(stored_events.name):
        raise ValidationError("database_url", "it holds no event store to recompute the period from")
    start, end = parse_period(period)
    version = _agreed(snapshots, "scorebook_version")
    book = _book(load_scorebook(scorebook) if scorebook else load_scorebook(), version)
    with tempfile.TemporaryDirectory(prefix="duban-audit-") as folder:
        scratch = make_engine(f"sqlite:///{Path(folder) / 'scratch.db'}")
        try:
            copied = _copy(engine, scratch, _agreed(snapshots, "frozen_at"))
            ItemProjector(scratch).rebuild_from_store(EventStore(scratch))
            audit = PeriodAudit(period, copied)
            digest, count = events_digest(scratch, start, end)
            audit.differences += _levels(snapshots, digest, count)
            for snap in snapshots:
                if snap.level not in rm.LEVELS:
                    continue
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
