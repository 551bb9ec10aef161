"""One batch of the item projection: what the database holds for the batch's events and items,
and what the batch changes, in memory until ``projections.projector`` writes it in one transaction.

``Batch.take`` applies one entry (a Kafka record or a stored event): a repeat is skipped; a record
the event store does not vouch for (same event id, same digest) is a dead letter; the stored events
of the item that the topic skipped are applied first; an event that cannot be applied is a dead
letter with the reason, and changes nothing.
"""

from __future__ import annotations

import functools
import operator
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection, select

from events import bounds as b
from events import types as t
from events.codec import decode_event, encode_event, read_encoded, trusted_event
from events.envelope import EventEnvelope
from events.errors import EventValidationError
from events.sql_bulk import select_in
from events.store import Stored, digest_of, event_of_row, stored_digests, stored_events
from projections import read_models as rm
from projections.evolve import adjustment_row, corrected, correction_bumps, evolve, interview_row, new_view
from projections.frozen_periods import counted_day, period_snapshots

CHUNK = 500
"""Ids per ``IN (...)`` query."""
STORE_TOPIC = "store"
"""The topic named in ``applied_events`` and dead letters for events read from the event store."""


APPLIED_COLUMNS = ("event_id", "item_id", "sequence", "topic", "partition", "offset", "day")
"""The ``applied_events`` columns, in the order of ``Batch.applied``'s tuples."""


class RawMessage(NamedTuple):
    """One Kafka record as the projector sees it (``value`` is the encoded event, UTF-8 JSON)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


@dataclass
class Entry:
    """A record or a stored event on its way into a batch (``position``: its store position, once
    the store vouches for it)."""

    topic: str
    partition: int
    offset: int
    raw: bytes | None  # None: an event from the store (encoded again only if it is dead-lettered)
    event: EventEnvelope | None
    reason: str = ""
    position: int | None = None  # the event's store position, once the store vouches for it

    @property
    def source(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"


def stored_entry(position: int, event: EventEnvelope) -> Entry:
    return Entry(STORE_TOPIC, 0, position, None, event, position=position)


def row_entry(row: Any) -> Entry:
    """The entry of an ``event_store`` row; a row that no longer decodes (tampering) is a dead
    letter with the reason."""
    try:
        return stored_entry(int(row.position), event_of_row(row))
    except EventValidationError as exc:
        return Entry(STORE_TOPIC, 0, int(row.position), b"", None, str(exc), int(row.position))


_COHORT_COUNTERS = frozenset(n for n in rm.COUNTER_COLUMNS if n.startswith("cohort_"))
"""Counters of an item's registration day and units (``_apply_unchecked``), not of its event's."""
_LEVEL_KEYS = operator.itemgetter(*(rm.LEVEL_COLUMN.get(level, level) for level in rm.LEVELS))
_DEPARTMENT = rm.LEVELS.index("department")


def _unit_keys(view: dict[str, Any]) -> tuple[str, ...]:
    """The item's unit key at each level of ``rm.LEVELS`` (``""``: not counted at that level)."""
    return _LEVEL_KEYS(view)


def _with_department(keys: tuple[str, ...], department: str) -> tuple[str, ...]:
    """``keys`` (``_unit_keys``) with another department's key."""
    return (*keys[:_DEPARTMENT], department, *keys[_DEPARTMENT + 1 :])


@functools.lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def decode(msg: RawMessage) -> Entry:
    entry = Entry(msg.topic, msg.partition, msg.offset, msg.value, None)
    try:
        entry.event = decode_event(msg.value)
    except Exception as exc:  # any failure to decode is a bad message, never a crash
        entry.reason = str(exc) if isinstance(exc, EventValidationError) else f"{type(exc).__name__}: {exc}"
    return entry


_UUID_CHARS = frozenset("0123456789abcdef-")


def _uuid_shaped(value: Any) -> bool:
    """Whether ``value`` could be an event id (a canonical UUID: 36 of ``0-9a-f-``), so it can be
    looked up in the store on any database (no NUL, no surrogate, no length past the column)."""
    return isinstance(value, str) and len(value) == 36 and _UUID_CHARS.issuperset(value)


def decode_vouched(conn: Connection, messages: Sequence[RawMessage]) -> tuple[list[Entry], Stored]:
    """The entries of ``messages`` and what the store holds of their events. A message whose bytes
    the store holds (same event id, same digest) is built without validating it again
    (``events.codec.trusted_event``: it was validated when it was recorded); any other is decoded
    strictly (``decode``), so a bad one is a dead letter with the reason."""
    parsed: list[EventEnvelope | None] = []
    for msg in messages:
        try:
            parsed.append(read_encoded(msg.value))
        except ValueError:
            parsed.append(None)
    ids = [ev.event_id for ev in parsed if ev is not None and _uuid_shaped(ev.event_id)]
    stored = stored_digests(conn, ids)  # only ids that can be stored: others are decoded, and refused
    entries = []
    for msg, ev in zip(messages, parsed, strict=True):
        entry = None
        known = stored.get(ev.event_id) if ev is not None else None
        if ev is not None and known is not None and known[1] == digest_of(msg.value):
            try:
                entry = Entry(
                    msg.topic, msg.partition, msg.offset, msg.value, trusted_event(ev), position=known[0]
                )
            except ValueError:
                entry = None
        entries.append(entry or decode(msg))
    return entries, stored


def _safe(text: str, limit: int) -> str:
    """``text`` as storable text: NUL and lone surrogates escaped, at most ``limit`` characters."""
    text = text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _ref(value: str | None, bound: b.TextBound) -> str | None:
    return value if value is not None and b.text_problem(value, bound) is None else None


def dead_row(entry: Entry) -> dict[str, Any]:
    """The ``dead_letters`` row of ``entry``: only storable values (ids that are not within their
    bounds are left out; the reason is escaped and cut to 2,000 characters)."""
    ev = entry.event
    raw = entry.raw
    if raw is None:
        try:
            raw = encode_event(ev) if ev is not None else b""
        except EventValidationError:
            raw = b""
    return {
        "source": _safe(entry.source, 512),
        "raw": raw,
        "reason": _safe(entry.reason, 2000),
        "event_id": _ref(ev.event_id if ev else None, b.ENVELOPE_TEXT["event_id"]),
        "item_id": _ref(ev.item_id if ev else None, b.IDENTIFIER),
        "store_position": entry.position,
    }


class Batch:
    """The in-memory work of one transaction: what the database holds for the batch's events and
    items, and what the batch changes."""

    def __init__(
        self, conn: Connection, projection: str, events: list[EventEnvelope], stored: Stored | None = None
    ) -> None:
        self.conn = conn
        event_ids = sorted({ev.event_id for ev in events})
        item_ids = sorted({ev.item_id for ev in events} | {corrected(ev) for ev in events if corrected(ev)})
        self.seen = {i for (i,) in select_in(conn, rm.applied_events, ("event_id",), "event_id", event_ids)}
        known = stored or {}
        self.stored = known | stored_digests(conn, [i for i in event_ids if i not in known])
        names = [c.name for c in rm.item_view.c]
        rows = select_in(conn, rm.item_view, names, "item_id", item_ids)
        self.views: dict[str, dict[str, Any]] = {row[0]: dict(zip(names, row, strict=True)) for row in rows}
        self.tallies: dict[tuple[tuple[str, ...], date], dict[str, int]] = {}  # see ``_tally``
        self.adjustments: list[dict[str, Any]] = []
        self.interviews: list[dict[str, Any]] = []
        self.spans = [(r.start, r.end, r.frozen_at) for r in conn.execute(select(period_snapshots)).all()]
        self.days: dict[str, date] = {}
        self.applied: list[tuple[Any, ...]] = []  # values of APPLIED_COLUMNS
        self.dead: list[dict[str, Any]] = []
        self.changed: set[str] = set()
        self.duplicates = 0

    def _tally(self, keys: tuple[str, ...], day: date, amounts: dict[str, int]) -> None:
        """Add ``amounts`` to the counters of ``day`` of the unit ``keys`` names at each level
        (``rm.LEVELS`` order; an empty key is not counted). Summed per distinct ``(keys, day)``
        first — an item's events in one batch mostly share both — and spread over the levels once,
        by ``counters``."""
        if not amounts:
            return
        bucket = self.tallies.get((keys, day))
        if bucket is None:
            self.tallies[(keys, day)] = dict(amounts)
            return
        for name, amount in amounts.items():
            bucket[name] = bucket.get(name, 0) + amount

    def counters(self) -> dict[tuple[str, str, date], dict[str, int]]:
        """The batch's counter changes: ``(level, unit key, local day) -> {counter column: amount}``."""
        out: dict[tuple[str, str, date], dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for (keys, day), amounts in self.tallies.items():
            for level, key in zip(rm.LEVELS, keys, strict=True):
                if key:
                    bucket = out[(level, key, day)]
                    for name, amount in amounts.items():
                        bucket[name] += amount
        return out

    def take(self, entry: Entry) -> None:
        """Apply ``entry`` (after the stored events of its item it skipped), or dead-letter it."""
        ev = entry.event
        if ev is not None and ev.event_id in self.seen:
            self.duplicates += 1
            return
        reason = entry.reason or (self._vouch(entry) if ev is not None else "")
        if not reason and ev is not None:
            reason = self._fill_gap(ev) or self._apply_event(ev)
        if reason:
            entry.reason = reason
            self.dead.append(dead_row(entry))
            return
        assert ev is not None
        self.seen.add(ev.event_id)
        if ev.event_type not in t.NON_ITEM_EVENTS:
            self.changed.add(ev.item_id)
        self.applied.append(
            (
                ev.event_id,
                ev.item_id,
                ev.sequence,
                entry.topic,
                entry.partition,
                entry.offset,
                self.days.get(ev.event_id),
            )
        )

    def _vouch(self, entry: Entry) -> str:
        """Why the store does not vouch for a message's event (``""`` if it does: same id, same
        digest). Events read from the store are vouched for already."""
        assert entry.event is not None
        if entry.raw is None or entry.position is not None:
            return ""
        stored = self.stored.get(entry.event.event_id)
        if stored is None:
            return "not in the event store (the projection applies only stored events)"
        position, digest = stored
        if digest != digest_of(entry.raw):
            return f"differs from the event the store holds under this id (store position {position})"
        entry.position = position
        return ""

    def _fill_gap(self, ev: EventEnvelope) -> str:
        """Apply first the stored events of ``ev``'s item between its last applied one and ``ev``."""
        if ev.event_type in t.NON_ITEM_EVENTS:
            return ""
        view = self.views.get(ev.item_id)
        last = view["last_sequence"] if view else 0
        if ev.sequence <= last + 1:
            return ""
        c = stored_events.c
        query = (
            select(stored_events)
            .where(c.item_id == ev.item_id, c.sequence > last, c.sequence < ev.sequence)
            .order_by(c.sequence)
        )
        for row in self.conn.execute(query):
            missing = stored_entry(int(row.position), event_of_row(row))
            self.take(missing)
            if missing.reason:
                return f"comes after event {missing.event.sequence if missing.event else '?'}, a dead letter"
        view = self.views.get(ev.item_id)
        now_last = view["last_sequence"] if view else 0
        if now_last != ev.sequence - 1:
            return (
                f"sequence {ev.sequence}: events {now_last + 1}-{ev.sequence - 1} of the item are not stored"
            )
        return ""

    def _apply_event(self, ev: EventEnvelope) -> str:
        """Apply one new event to the in-memory views and counters; return why not if it cannot be.
        Nothing is changed when it cannot (the changes are made only after every step succeeded)."""
        try:
            return self._apply_unchecked(ev)
        except Exception as exc:  # a bug or an unforeseen value: this event's dead letter, not a crash
            return f"cannot be applied: {type(exc).__name__}: {exc}"

    def _correct(self, ev: EventEnvelope) -> str:
        """Apply an SLA repair to the item it names: its view takes the corrected deadline and
        outcome; the counters move by the correction, on the correction's counted day (the day of
        its recording, or the first open one after: a closed period never changes)."""
        target = str(ev.payload["item"])
        view = self.views.get(target)
        if view is None:
            return f"payload.item: unknown item {target!r}"
        zone = _zone(view["zone"])
        if zone is None:
            return f"unknown time zone {view['zone']!r}"
        view = dict(view)
        bumps = correction_bumps(view, ev)
        day = counted_day(ev.occurred_at.astimezone(zone).date(), ev.recorded_at, self.spans)
        self._tally(_unit_keys(view), day, bumps)
        self.views[target] = view
        self.changed.add(target)
        self.days[ev.event_id] = day
        return ""

    def _apply_unchecked(self, ev: EventEnvelope) -> str:
        if ev.event_type == t.SCORE_ADJUSTED:
            return adjustment_row(ev, self.adjustments, self.spans, self.days)
        if ev.event_type == t.INTERVIEW_REQUIRED:
            return interview_row(ev, self.interviews)
        if ev.event_type == t.OUTCOME_CORRECTED:
            return self._correct(ev)
        view = self.views.get(ev.item_id)
        if ev.event_type == t.ITEM_REGISTERED:
            if view is not None:
                return f"item already registered (by an event of sequence {view['last_sequence']})"
            view = new_view(ev)
        elif view is None:
            return "unknown item"
        elif ev.sequence <= view["last_sequence"]:
            return f"out of order: sequence {ev.sequence} after {view['last_sequence']}"
        zone = _zone(view["zone"])
        if zone is None:
            return f"unknown time zone {view['zone']!r}"
        view = dict(view)
        bumps = evolve(view, ev)
        view.update(last_sequence=ev.sequence, last_event_at=ev.occurred_at)
        day = ev.occurred_at.astimezone(zone).date()
        counted = counted_day(day, ev.recorded_at, self.spans)
        if counted != day:  # its day was closed before it was recorded: it counts on the next open day
            bumps["late"] = 1
        cohort = {n: bumps.pop(n) for n in _COHORT_COUNTERS.intersection(bumps)}
        cohort_day = view["registered_at"].astimezone(zone).date() if cohort else day
        keys = _unit_keys(view)
        counted_keys = keys
        if ev.event_type == t.DEPARTMENT_REPORTED_IN:  # a report-in counts for the department that came
            counted_keys = _with_department(keys, ev.payload["department"])
        # an item's progress counts for the day and units it was registered with, never late
        cohort_keys = _with_department(keys, view["intake_department"])
        self.views[ev.item_id] = view
        self.days[ev.event_id] = counted
        self._tally(counted_keys, counted, bumps)
        self._tally(cohort_keys, cohort_day, cohort)
        return ""
