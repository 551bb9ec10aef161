"""``duban audit export``: the event log and its seals as JSON lines, for the standalone verifier.

One object per line: ``{"kind": "event", "position", "event_id", "event_type", "schema_version",
"item_id", "sequence", "occurred_at", "recorded_at", "actor", "payload" (the stored JSON object),
"correlation_id", "causation_id", "digest", "chain"}`` in store order, then ``{"kind": "seal",
"seal_id", "taken_at", "cutoff", "period", "streams", "events", "root"}``. Times are ISO-8601 UTC.
The rows are written as stored: nothing is recomputed, so the export is only a transport.
"""

from __future__ import annotations

import json
from typing import TextIO

from sqlalchemy import Engine, select

from events.codec import format_utc
from events.seals import read_seals
from events.store import stored_events


def export_log(engine: Engine, out: TextIO) -> tuple[int, int]:
    """Write the log and its seals to ``out``; returns (events, seals) written."""
    events = 0
    query = select(stored_events).order_by(stored_events.c.position)
    with engine.connect() as conn:
        for row in conn.execution_options(yield_per=5000).execute(query):
            record = dict(row._mapping)
            record["payload"] = json.loads(record["payload"])
            record["occurred_at"] = format_utc(record["occurred_at"])
            record["recorded_at"] = format_utc(record["recorded_at"])
            out.write(json.dumps({"kind": "event", **record}, ensure_ascii=False) + "\n")
            events += 1
    seals = read_seals(engine)
    for seal in seals:
        record = seal.__dict__ | {"taken_at": format_utc(seal.taken_at), "cutoff": format_utc(seal.cutoff)}
        out.write(json.dumps({"kind": "seal", **record}, ensure_ascii=False) + "\n")
    return events, len(seals)
