#!/usr/bin/env python3
"""Verify an export of duban's event log with nothing but Python's standard library.

    python standalone_verify.py duban-log.jsonl        (made by: duban audit export --output …)

An auditor need not trust duban's code: this file restates, on its own, how the log is chained and
sealed, and checks every record of the export against it. Exit status 0: the log verifies; 1: it
does not (the first record that fails, per stream, is printed); 2: the file cannot be read, or a
record in it is malformed (not JSON, a key missing, a value of the wrong type, a time that is not
an ISO-8601 time with its offset): its line number and what is wrong are printed.

The rules (duban's events.chain and events.seals say the same):
- Each event's ``digest`` is the SHA-256 of its canonical encoding: the JSON object of its fields
  event_id, event_type, schema_version, item_id, sequence, occurred_at, recorded_at, actor, payload,
  correlation_id, causation_id — keys sorted, Python's default separators, not ASCII-escaped,
  UTF-8 — with times written as ISO-8601 UTC (``2022-01-18T15:08:24+00:00``).
- Events form streams by item_id, numbered by ``sequence`` from 1 without gaps or repeats.
- ``chain`` = SHA-256(previous chain's 32 bytes + digest's 32 bytes); before the first event, the
  chain is SHA-256(b"duban-stream\\0" + item_id in UTF-8).
- A seal's ``root`` = SHA-256 of the lines "<item_id>\\t<sequence>\\t<chain>\\n", sorted by item_id,
  of every stream's head as of the seal's cut-off: the event of highest sequence recorded at or
  before it; the seal also counts the streams and the events up to the cut-off.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections import defaultdict
from datetime import UTC, datetime

FIELDS = ("event_id", "event_type", "schema_version", "item_id", "sequence", "occurred_at",
          "recorded_at", "actor", "payload", "correlation_id", "causation_id")  # fmt: skip


TEXT, NUMBER, OBJECT, TIME, OPTIONAL_TEXT = "text", "integer", "JSON object", "time", "text or null"
EVENT_KEYS = {
    "position": NUMBER, "event_id": TEXT, "event_type": TEXT, "schema_version": NUMBER, "item_id": TEXT,
    "sequence": NUMBER, "occurred_at": TIME, "recorded_at": TIME, "actor": TEXT, "payload": OBJECT,
    "correlation_id": TEXT, "causation_id": TEXT, "digest": OPTIONAL_TEXT, "chain": OPTIONAL_TEXT,
}  # fmt: skip
SEAL_KEYS = {
    "seal_id": NUMBER, "taken_at": TIME, "cutoff": TIME, "period": OPTIONAL_TEXT, "streams": NUMBER,
    "events": NUMBER, "root": TEXT,
}  # fmt: skip


class Malformed(Exception):
    """A record of the export that is not what duban writes: the line and what is wrong."""


def utc(text: str) -> datetime:
    """An ISO-8601 time with its offset, in UTC."""
    return datetime.fromisoformat(text).astimezone(UTC)


def _fits(value: object, kind: str) -> bool:
    if kind == NUMBER:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == OBJECT:
        return isinstance(value, dict)
    if kind == OPTIONAL_TEXT:
        return value is None or isinstance(value, str)
    if kind == TIME:
        if not isinstance(value, str):
            return False
        try:
            return datetime.fromisoformat(value).tzinfo is not None
        except ValueError:
            return False
    return isinstance(value, str)


def check_record(record: object, line: int) -> dict:
    """``record`` (the JSON of line ``line``) if it is an event or a seal as duban exports them.

    Raises:
        Malformed: it is not (the line number and the first thing wrong).
    """
    if not isinstance(record, dict):
        raise Malformed(f"line {line}: not a JSON object")
    kind = record.get("kind")
    if kind not in ("event", "seal"):
        raise Malformed(f"line {line}: its kind {kind!r} is neither 'event' nor 'seal'")
    for key, expected in (EVENT_KEYS if kind == "event" else SEAL_KEYS).items():
        if key not in record:
            raise Malformed(f"line {line}: the {kind} has no {key!r}")
        if not _fits(record[key], expected):
            what = "an ISO-8601 time with its offset" if expected == TIME else f"a {expected}"
            raise Malformed(f"line {line}: the {kind}'s {key!r} is {record[key]!r}, not {what}")
    return record


def load(path: str) -> list[dict]:
    """The records of the export at ``path``, each checked (``check_record``).

    Raises:
        OSError: the file cannot be read.
        Malformed: a line is not JSON, or not a record (its number and why).
    """
    records = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise Malformed(f"line {number}: not JSON ({exc})") from None
            records.append(check_record(record, number))
    return records


def digest(event: dict) -> str:
    """The SHA-256 (hex) of an event's canonical encoding (the rules above)."""
    fields = {name: event[name] for name in FIELDS}
    fields["occurred_at"] = utc(event["occurred_at"]).isoformat()
    fields["recorded_at"] = utc(event["recorded_at"]).isoformat()
    return hashlib.sha256(json.dumps(fields, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def link(previous: str, this_digest: str) -> str:
    """The chain value following ``previous`` for an event of digest ``this_digest``."""
    return hashlib.sha256(bytes.fromhex(previous) + bytes.fromhex(this_digest)).hexdigest()


def genesis(item_id: str) -> str:
    """The chain value before a stream's first event."""
    return hashlib.sha256(b"duban-stream\x00" + item_id.encode("utf-8")).hexdigest()


def verify(records: list[dict]) -> list[str]:
    """The problems found, in the export's order (empty: the log verifies)."""
    streams: dict[str, list[dict]] = defaultdict(list)
    seals: list[dict] = []
    for record in records:
        (streams[record["item_id"]] if record["kind"] == "event" else seals).append(record)
    problems = []
    for item_id, events in streams.items():
        events.sort(key=lambda e: (e["sequence"], e["position"]))
        chain = genesis(item_id)
        for expected, event in enumerate(events, start=1):
            where = (
                f"event {event['event_id']} ({item_id} #{event['sequence']}, position {event['position']})"
            )
            if event["sequence"] != expected:
                what = "missing events before it" if event["sequence"] > expected else "a repeated sequence"
                problems.append(f"{where}: {what} (expected #{expected})")
                break
            if digest(event) != event["digest"]:
                problems.append(f"{where}: its content does not match its digest (edited)")
                break
            if link(chain, event["digest"]) != event["chain"]:
                problems.append(f"{where}: its chain does not follow from the event before it")
                break
            chain = event["chain"]
    for seal in seals:
        cutoff = utc(seal["cutoff"])
        heads, count = [], 0
        for item_id, events in streams.items():
            sealed = [e for e in events if utc(e["recorded_at"]) <= cutoff]
            if sealed:
                head = max(sealed, key=lambda e: e["sequence"])
                heads.append((item_id, head["sequence"], head["chain"]))
                count += len(sealed)
        root = hashlib.sha256()
        for item_id, sequence, chain in sorted(heads):
            root.update(f"{item_id}\t{sequence}\t{chain}\n".encode())
        if (root.hexdigest(), len(heads), count) != (seal["root"], seal["streams"], seal["events"]):
            problems.append(
                f"seal {seal['seal_id']} ({seal.get('period') or 'on demand'}, cut-off {seal['cutoff']}): "
                f"no longer matches ({seal['streams']} streams and {seal['events']} events sealed; "
                f"{len(heads)} and {count} now)"
            )
    return problems


def main(argv: list[str]) -> int:
    """Verify the export named in ``argv``; the exit status (module docstring)."""
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    try:
        records = load(argv[1])
    except (OSError, UnicodeDecodeError) as exc:
        print(f"cannot read {argv[1]}: {exc}", file=sys.stderr)
        return 2
    except Malformed as exc:
        print(f"{argv[1]}: {exc}", file=sys.stderr)
        return 2
    problems = verify(records)
    events = sum(1 for r in records if r["kind"] == "event")
    seals = len(records) - events
    for problem in problems:
        print(problem)
    print(f"{events} events, {seals} seals: {'verified' if not problems else f'{len(problems)} problem(s)'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
