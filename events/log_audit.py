"""Verifying the event log: every stream's chain, every seal (``events.chain``, ``events.seals``).

``verify_log`` reads the store in stream order (item id, then sequence) and, per stream, checks that
the sequences run 1, 2, 3… without a gap or a repeat (an event deleted or inserted), that each
event's digest is the SHA-256 of its canonical encoding (an edited byte, an edited time), and that
each chain value links to the one before (an event moved, or a chain rewritten); the first event of
a stream that does not verify is reported, and the stream's later events are not judged against it.
An event without a chain value is one stored before chains existed only when its whole stream is
unchained (chains came in one version, and ``events.chain_migration`` chains a stream whole): a stream
that holds chained events and unchained ones has had chains removed, which is reported as
tampering. Then each seal's root is recomputed from the log as it is now (a stream truncated or
deleted, an event forged into the sealed past) — every seal, however many events failed. The
canonical encoding is rebuilt from the row itself (as the standalone verifier does), falling back to
the codec for rows of an older schema. A row whose times (or numbers) do not read is reported,
named, as ``unreadable``.

Verifying only reads: it creates no table and fills no column (an auditor's check must not wash out
what it checks; open the database with ``events.sql.read_only``).

Chaining the events stored before chains existed is ``events.chain_migration``'s.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, select

from events.chain import genesis, link, seal_root
from events.codec import encode_event, format_utc
from events.errors import DubanError, ValidationError
from events.seals import Seal, heads, read_seals
from events.sql import stored_time
from events.store import digest_of, event_of_row, stored_events

_c = stored_events.c
_string = json.encoder.encode_basestring  # JSON string as json.dumps(ensure_ascii=False) writes it


@dataclass(frozen=True)
class Problem:
    """An event (or seal) that does not verify: ``kind`` is ``gap``, ``repeat``, ``edited``,
    ``chain`` (a link that does not follow, or a chain value removed), ``unchained`` (a stream
    stored before chains existed), ``unreadable`` (a time or number that does not read) or
    ``seal``; ``detail`` says what was expected."""

    kind: str
    item_id: str
    sequence: int
    position: int
    detail: str


@dataclass
class LogReport:
    """What ``verify_log`` read and found: ``problems`` lists the first ``limit`` events that do not
    verify (in store order), then every seal that does not; ``more`` counts the events' problems
    left off the list."""

    events: int = 0
    streams: int = 0
    seals: int = 0
    problems: list[Problem] = field(default_factory=list)
    more: int = 0

    @property
    def ok(self) -> bool:
        """Whether everything verified."""
        return not self.problems and not self.more

    @property
    def total(self) -> int:
        """How many problems were found, listed or not."""
        return len(self.problems) + self.more


class UnreadableRow(DubanError):
    """A stored row whose values do not read (a time that is not a time, a payload that is not
    JSON…): the message names the event (id, stream, sequence, store position) and the value."""

    def __init__(self, row: Any, reason: str) -> None:
        super().__init__(
            f"event {row.event_id} ({row.item_id} #{row.sequence}, store position {row.position}): {reason}"
        )


def read_time(row: Any, name: str) -> Any:
    """The aware UTC datetime of ``row``'s time column ``name`` read as the driver gives it
    (``events.sql.stored_time``).

    Raises:
        UnreadableRow: the stored value is not a time.
    """
    try:
        return stored_time(getattr(row, name))
    except ValueError as exc:
        raise UnreadableRow(row, f"its {name} {exc}") from None


def canonical_bytes(row: Any) -> bytes:
    """The canonical encoding of a stored row, rebuilt from its columns: ``encode_event``'s form
    (JSON, keys sorted, default separators, times as UTC ISO-8601, not ASCII-escaped), written
    field by field with the stored payload text as it is (the store keeps it canonical) — the same
    bytes as ``json.dumps`` of the whole, without decoding and encoding the payload again."""
    return _canonical(
        row.actor, row.causation_id, row.correlation_id, row.event_id, row.event_type, row.item_id,
        row.occurred_at, row.payload, row.recorded_at, row.schema_version, row.sequence,
    )  # fmt: skip


def _canonical(actor: str, causation: str, correlation: str, event_id: str, event_type: str, item_id: str,
               occurred: Any, payload: str, recorded: Any, schema: int, sequence: int) -> bytes:  # fmt: skip
    s = _string
    return (
        f'{{"actor": {s(actor)}, "causation_id": {s(causation)}, "correlation_id": {s(correlation)}, '
        f'"event_id": {s(event_id)}, "event_type": {s(event_type)}, "item_id": {s(item_id)}, '
        f'"occurred_at": {s(format_utc(occurred))}, "payload": {payload}, '
        f'"recorded_at": {s(format_utc(recorded))}, "schema_version": {int(schema)}, '
        f'"sequence": {int(sequence)}}}'
    ).encode()


def _reencoded(row: Any) -> bytes:
    """The canonical encoding through ``json.dumps`` of the decoded columns (any payload text)."""
    data = {
        "event_id": row.event_id, "event_type": row.event_type, "schema_version": row.schema_version,
        "item_id": row.item_id, "sequence": row.sequence, "occurred_at": format_utc(row.occurred_at),
        "recorded_at": format_utc(row.recorded_at), "actor": row.actor, "payload": json.loads(row.payload),
        "correlation_id": row.correlation_id, "causation_id": row.causation_id,
    }  # fmt: skip
    return json.dumps(data, sort_keys=True, ensure_ascii=False).encode()


def _content_matches(row: Any) -> bool:
    try:
        if hashlib.sha256(canonical_bytes(row)).hexdigest() == row.digest:
            return True
        if hashlib.sha256(_reencoded(row)).hexdigest() == row.digest:  # a payload stored unsorted
            return True
        return bool(digest_of(encode_event(event_of_row(row))) == row.digest)  # an older schema
    except Exception:  # a row that no longer decodes has been edited
        return False


def _judge(row: Any, expected: int, chain: str) -> Problem | None:
    here = (str(row.item_id), int(row.sequence), int(row.position))
    if row.sequence > expected:
        return Problem("gap", *here, f"events {expected}-{row.sequence - 1} of the stream are missing")
    if row.sequence < expected:
        return Problem("repeat", *here, f"sequence {row.sequence} is stored twice (an inserted event)")
    if row.chain is None and expected > 1:  # the events before it verified, chained
        return Problem(
            "chain", *here, "its chain value was removed: the events before it in its stream are chained"
        )
    if not _content_matches(row):
        return Problem("edited", *here, "its content does not match its digest")
    if row.chain is None:
        return Problem("unchained", *here, "stored before chains existed: run duban audit chain-migrate")
    if link(chain, row.digest) != row.chain:
        return Problem("chain", *here, "its chain value does not follow from the event before it")
    return None


_SCAN = (
    'SELECT "position", item_id, "sequence", actor, causation_id, correlation_id, event_id, event_type, '
    "occurred_at, payload, recorded_at, schema_version, digest, chain FROM event_store "
    'ORDER BY item_id, "sequence", "position"'
)


def _utc_text(value: Any) -> str:
    """A stored time as ``format_utc`` writes it: from a datetime, or from SQLite's stored text
    (``YYYY-MM-DD HH:MM:SS.ffffff``, UTC), read without the driver-level conversion.

    Raises:
        ValueError: the value is not a time.
    """
    if isinstance(value, str):
        stored_time(value)  # raises on a text that is not a time
        text = value.replace(" ", "T", 1)
        if text.endswith(".000000"):
            text = text[:-7]
        return text + "+00:00"
    return format_utc(value)


def _scan(engine: Engine) -> Iterator[tuple[Any, ...]]:
    """Every stored row in stream order, as the driver gives it (no per-row conversion)."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute(_SCAN)
        while batch := cursor.fetchmany(5000):
            yield from batch
    finally:
        raw.close()


def _row_at(engine: Engine, position: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(stored_events).where(_c.position == position)).one()


def _unreadable(position: Any, item_id: Any, sequence: Any, values: dict[str, Any]) -> Problem | None:
    """The problem of a row whose sequence or times do not read, or ``None``."""
    try:
        number = int(sequence)
    except (TypeError, ValueError):
        return Problem(
            "unreadable", str(item_id), 0, int(position), f"its sequence {sequence!r} is not a number"
        )
    for name, value in values.items():
        try:
            stored_time(value)
        except ValueError as exc:
            return Problem("unreadable", str(item_id), number, int(position), f"its {name} {exc}")
    return None


class _Stream:
    """The state of the stream being scanned: the sequence and chain value the next event must
    have, and its first problem (an unchained first event stays undecided until the end of the
    stream: a legacy stream is unchained throughout)."""

    def __init__(self, item_id: str) -> None:
        self.item_id, self.expected, self.chain = item_id, 1, genesis(item_id)
        self.problem: Problem | None = None
        self.chained_later: tuple[int, int] | None = None  # (sequence, position) of a chained event

    def verdict(self) -> Problem | None:
        """The stream's problem, once all its rows have been read."""
        p = self.problem
        if p is not None and p.kind == "unchained" and self.chained_later is not None:
            sequence, position = self.chained_later
            return Problem(
                "chain", p.item_id, p.sequence, p.position,
                f"its chain value was removed: event #{sequence} of its stream (store position "
                f"{position}) is chained, and chains are never stored after unchained events",
            )  # fmt: skip
        return p


def verify_log(engine: Engine, period: str | None = None, limit: int = 100) -> LogReport:
    """Verify every stream and the seals (those a close of ``period`` took, when given; all
    otherwise). See the module docstring. The scan checks each row on the fast path (the canonical
    encoding written from the raw columns); a row that fails is judged again in full (``_judge``)
    to name what is wrong. At most ``limit`` events' problems are listed (``LogReport.more``
    counts the others); every seal is checked and its problem listed whatever the events gave.

    Raises:
        ValidationError: field ``period``, a period no close sealed (no seal of it to verify).
    """
    report = LogReport()
    seals = read_seals(engine, period)
    if period is not None and not seals:
        raise ValidationError("period", f"{period}: no seal of its close to verify")
    found: list[Problem] = []

    def settle(state: _Stream | None) -> None:
        problem = state.verdict() if state is not None else None
        if problem is None:
            return
        if len(found) < limit:
            found.append(problem)
        else:
            report.more += 1

    state: _Stream | None = None
    sha, s = hashlib.sha256, _string
    for (position, item_id, sequence, actor, causation, correlation, event_id, event_type, occurred,
         payload, recorded, schema, digest, stored_chain) in _scan(engine):  # fmt: skip
        report.events += 1
        if state is None or item_id != state.item_id:
            settle(state)
            state = _Stream(item_id)
            report.streams += 1
        if state.problem is not None:
            if stored_chain is not None and state.chained_later is None:
                state.chained_later = (sequence, position)
            continue
        try:
            canonical = (
                f'{{"actor": {s(actor)}, "causation_id": {s(causation)}, "correlation_id": {s(correlation)}, '
                f'"event_id": {s(event_id)}, "event_type": {s(event_type)}, "item_id": {s(item_id)}, '
                f'"occurred_at": {s(_utc_text(occurred))}, "payload": {payload}, "recorded_at": '
                f'{s(_utc_text(recorded))}, "schema_version": {int(schema)}, "sequence": {int(sequence)}}}'
            )
            fast = (
                sequence == state.expected
                and stored_chain is not None
                and sha(canonical.encode()).hexdigest() == digest
                and sha(bytes.fromhex(state.chain) + bytes.fromhex(digest)).hexdigest() == stored_chain
            )
        except (TypeError, ValueError):
            fast = False
        if fast:
            state.expected, state.chain = state.expected + 1, stored_chain
            continue
        problem = _unreadable(position, item_id, sequence, {"occurred_at": occurred, "recorded_at": recorded})
        if problem is None:
            try:
                problem = _judge(_row_at(engine, position), state.expected, state.chain)
            except (TypeError, ValueError) as exc:
                problem = Problem(
                    "unreadable", str(item_id), int(sequence), int(position), f"it does not read: {exc}"
                )
        if problem is None:  # an older schema or an unsorted payload: it verifies on the slow path
            state.expected, state.chain = state.expected + 1, stored_chain
            continue
        state.problem = problem
    settle(state)
    report.problems = sorted(found, key=lambda p: p.position)
    for seal in seals:
        report.seals += 1
        problem = check_seal(engine, seal)
        if problem is not None:
            report.problems.append(problem)
    return report


def check_seal(engine: Engine, seal: Seal) -> Problem | None:
    """The problem with ``seal`` against the log as it is now, or ``None``."""
    with engine.connect() as conn:
        found, total = heads(conn, seal.cutoff)
    if seal_root(found) == seal.root and len(found) == seal.streams and total == seal.events:
        return None
    what = f"seal {seal.seal_id} of {seal.taken_at:%Y-%m-%d %H:%M} UTC"
    if seal.period:
        what += f" (the close of {seal.period})"
    detail = (
        f"{what} no longer matches: it covered {seal.streams} streams and {seal.events} events, "
        f"the log now has {len(found)} and {total} up to its cut-off {seal.cutoff:%Y-%m-%d %H:%M:%S} UTC"
    )
    return Problem("seal", "", 0, 0, detail)
