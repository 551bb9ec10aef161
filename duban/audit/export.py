"""``duban audit export``: the event log and its seals as JSON lines, for the standalone verifier.

One object per line: ``{"kind": "event", "position", "event_id", "event_type", "schema_version",
"item_id", "sequence", "occurred_at", "recorded_at", "actor", "payload" (the stored JSON object),
"correlation_id", "causation_id", "digest", "chain"}`` in store order, then ``{"kind": "seal",
"seal_id", "taken_at", "cutoff", "period", "streams", "events", "root"}``. Times are ISO-8601 UTC.
The rows are written as stored: nothing is recomputed, so the export is only a transport. A row
that does not read (a time that is not a time, a payload that is not JSON) stops the export,
naming the event (``events.log_audit.UnreadableRow``); ``export_file`` then leaves no file behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TextIO

from sqlalchemy import Engine, Text, select, type_coerce

from events.codec import format_utc
from events.errors import DubanError
from events.log_audit import UnreadableRow, read_time
from events.seals import read_seals
from events.store import stored_events

_TIMES = ("occurred_at", "recorded_at")


def export_log(engine: Engine, out: TextIO) -> tuple[int, int]:
    """Write the log and its seals to ``out``; returns (events, seals) written.

    Raises:
        UnreadableRow: a stored row does not read (the event is named).
    """
    events = 0
    columns = [type_coerce(c, Text) if c.name in _TIMES else c for c in stored_events.c]
    query = select(*columns).order_by(stored_events.c.position)
    with engine.connect() as conn:
        for row in conn.execution_options(yield_per=5000).execute(query):
            record = dict(row._mapping)
            try:
                record["payload"] = json.loads(record["payload"])
            except (TypeError, ValueError) as exc:
                raise UnreadableRow(row, f"its payload is not JSON ({exc})") from None
            for name in _TIMES:
                record[name] = format_utc(read_time(row, name))
            out.write(json.dumps({"kind": "event", **record}, ensure_ascii=False) + "\n")
            events += 1
    seals = read_seals(engine)
    for seal in seals:
        record = seal.__dict__ | {"taken_at": format_utc(seal.taken_at), "cutoff": format_utc(seal.cutoff)}
        out.write(json.dumps({"kind": "seal", **record}, ensure_ascii=False) + "\n")
    return events, len(seals)


class ExportFailed(DubanError):
    """The export could not be written whole (the cause is named); no file was left behind."""


def export_file(engine: Engine, output: Path) -> tuple[int, int]:
    """``export_log`` into ``output``, written whole or not at all: into a temporary file in the
    same folder, renamed to ``output`` once complete (a file already there is replaced only then).
    Returns (events, seals) written.

    Raises:
        ExportFailed: anything that stopped the export (an unreadable row, a database or disk
            error), named; the temporary file is removed and ``output`` left as it was.
    """
    fd, name = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=".partial")
    temporary = Path(name)
    try:
        with open(fd, "w", encoding="utf-8") as out:
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(out.fileno(), 0o666 & ~umask)  # as a file opened for writing would be
            counts = export_log(engine, out)
        temporary.replace(output)
    except BaseException as exc:
        temporary.unlink(missing_ok=True)
        if isinstance(exc, Exception):
            cause = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ExportFailed(f"export to {output} failed, nothing written: {cause}") from exc
        raise
    return counts
