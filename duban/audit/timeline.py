"""``duban audit item ID``: an item's full story from the event store, checked against its workflow.

The timeline lists every stored event of the item in order: when (UTC and the local time of the
item's zone), what, who (the actor: for commands through the gateway ``<integrator>/<person>``),
with which role, reason, notes and evidence; events the timers caused have the actor ``system:timer``.

When the Temporal server answers, ``check_history`` fetches the item's workflow histories (every run,
continue-as-new included) and compares them with the store: each ``record_events`` activity the
workflow scheduled carries the events of one step (in its input; run as a local activity, in the
result its marker holds), so every stored event must appear there with the
same id, type, sequence, time and payload, and every event there must be stored — the store cannot
gain, lose or change an event without the history (kept by Temporal, outside duban's database)
disagreeing. Commands the item refused are listed with their reasons (the ``state`` query).
The runs are found by a visibility query on the workflow id (a ``'`` in it doubled, as the query
language spells it); an id the query language cannot spell (one with a backslash or a ``"``) is
followed instead from its latest run back through the runs it continued.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from events import types as t
from events.codec import event_to_dict, format_utc
from events.errors import DubanError
from events.store import EventStore
from workflows.item_client import item_workflow_id

COLUMNS = ("sequence", "event_type", "occurred_at_utc", "occurred_at_local", "recorded_at_utc", "actor",
           "role", "reason", "notes", "evidence", "event_id")  # fmt: skip
_COMPARED = ("event_id", "event_type", "sequence", "occurred_at", "actor", "payload")


def timeline(engine: Engine, item_id: str) -> list[dict[str, Any]]:
    """The item's stored events as timeline rows (``COLUMNS``), in sequence order."""
    events = list(EventStore(engine).read(item_id))
    zone = next((e.payload.get("zone") for e in events if e.event_type == t.ITEM_REGISTERED), "UTC") or "UTC"
    tz = ZoneInfo(zone)
    rows = []
    for e in sorted(events, key=lambda e: e.sequence):
        p = e.payload
        rows.append(
            {
                "sequence": e.sequence,
                "event_type": e.event_type,
                "occurred_at_utc": format_utc(e.occurred_at),
                "occurred_at_local": e.occurred_at.astimezone(tz).isoformat(),
                "recorded_at_utc": format_utc(e.recorded_at),
                "actor": e.actor,
                "role": p.get("role", ""),
                "reason": p.get("reason", ""),
                "notes": p.get("notes", ""),
                "evidence": " ".join(p.get("evidence", [])),
                "event_id": e.event_id,
            }
        )
    return rows


@dataclass
class HistoryCheck:
    """The store against the workflow histories: events in both alike, only in one, differing;
    the runs read; the refused commands (command id, reason); how many events each side holds;
    and, per event id that does not match, why (``reasons``)."""

    runs: int = 0
    matched: int = 0
    only_in_store: list[str] = field(default_factory=list)
    only_in_history: list[str] = field(default_factory=list)
    differing: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    stored: int = 0
    in_history: int = 0
    reasons: dict[str, str] = field(default_factory=dict)
    history_only: list[dict[str, Any]] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # what in the histories is not a recording

    @property
    def ok(self) -> bool:
        """Whether the store and the histories hold the same events, and every recording in the
        histories could be read."""
        return not (self.only_in_store or self.only_in_history or self.differing or self.unreadable)

    def summary(self) -> str:
        """The counts in words: events stored, in the histories, alike, differing, only in one."""
        return (
            f"{self.stored} events stored, {self.in_history} in the workflow history: {self.matched} alike, "
            f"{len(self.differing)} differing, {len(self.only_in_store)} only in the store, "
            f"{len(self.only_in_history)} only in the history"
            + (f", {len(self.unreadable)} unreadable in the history" if self.unreadable else "")
            + f"; {self.runs} run(s)"
        )


def visibility_literal(value: str) -> str:
    """``value`` as a string literal of a Temporal visibility query: single-quoted, each ``'``
    doubled (the query language keeps a backslash as it is, so a value holding one cannot always
    be spelled: ``spellable``)."""
    return "'" + value.replace("'", "''") + "'"


def spellable(value: str) -> bool:
    """Whether ``visibility_literal`` spells ``value`` exactly (no backslash, no ``"``)."""
    return "\\" not in value and '"' not in value


async def _histories(client: Client, workflow_id: str) -> AsyncIterator[Any]:
    """Every run's history of ``workflow_id``: by a visibility query, or (an id it cannot spell)
    from the latest run back through ``continued_execution_run_id``."""
    if spellable(workflow_id):
        async for execution in client.list_workflows(f"WorkflowId = {visibility_literal(workflow_id)}"):
            if execution.id == workflow_id:
                yield await client.get_workflow_handle(workflow_id, run_id=execution.run_id).fetch_history()
        return
    try:
        run_id: str | None = (await client.get_workflow_handle(workflow_id).describe()).run_id
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return
        raise
    seen: set[str] = set()
    while run_id and run_id not in seen:
        seen.add(run_id)
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        yield history
        started = history.events[0].workflow_execution_started_event_attributes if history.events else None
        run_id = started.continued_execution_run_id if started is not None else None


LOCAL_ACTIVITY_MARKER = "core_local_activity"
"""The marker name under which the Temporal SDKs record a local activity's outcome."""


def _json_objects(payloads: Any, where: str, unreadable: list[str]) -> list[dict[str, Any]]:
    """The JSON objects of ``payloads``; any other payload is noted in ``unreadable``."""
    found = []
    for n, payload in enumerate(payloads):
        try:
            value = json.loads(payload.data)
        except (ValueError, RecursionError):  # not JSON, not UTF-8, nested past the parser's depth
            value = None
        if isinstance(value, dict):
            found.append(value)
        else:
            unreadable.append(f"{where}, payload {n + 1}: not a JSON object")
    return found


def _recorded(carriers: list[dict[str, Any]], where: str, unreadable: list[str]) -> list[dict[str, Any]]:
    """The events listed by ``carriers`` (a recording's input or result: ``{"events": [...]}``)."""
    found: list[dict[str, Any]] = []
    for carrier in carriers:
        events = carrier.get("events", [])
        if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
            unreadable.append(f"{where}: its events are not a list of JSON objects")
            continue
        found += events
    return found


def _local_recorded_events(marker: Any, where: str, unreadable: list[str]) -> list[dict[str, Any]]:
    """The events a ``record_events`` local activity returned, from its marker (none for others)."""
    if marker.marker_name != LOCAL_ACTIVITY_MARKER or "data" not in marker.details:
        return []
    meta = _json_objects(marker.details["data"].payloads, where, unreadable)  # the SDK's own record
    if not meta or meta[0].get("activity_type") != "record_events" or "result" not in marker.details:
        return []
    return _recorded(_json_objects(marker.details["result"].payloads, where, unreadable), where, unreadable)


def _scheduled_events(history: Any, unreadable: list[str] | None = None) -> list[dict[str, Any]]:
    """The events each ``record_events`` step carried: an activity's input, or (a local activity)
    its result in the marker. What cannot be read as a recording is noted in ``unreadable``
    (history event id and why), never raised."""
    unreadable = [] if unreadable is None else unreadable
    found = []
    for event in history.events:
        where = f"history event {event.event_id}"
        if event.HasField("marker_recorded_event_attributes"):
            found += _local_recorded_events(event.marker_recorded_event_attributes, where, unreadable)
            continue
        if not event.HasField("activity_task_scheduled_event_attributes"):
            continue
        attrs = event.activity_task_scheduled_event_attributes
        if attrs.activity_type.name != "record_events":
            continue
        found += _recorded(_json_objects(attrs.input.payloads, where, unreadable), where, unreadable)
    return found


def _comparable(event: dict[str, Any]) -> dict[str, Any]:
    from events.codec import event_from_dict

    normal = event_from_dict(event | {"recorded_at": event.get("recorded_at") or event["occurred_at"]})
    return {
        name: (format_utc(v) if name == "occurred_at" else v)
        for name, v in normal.__dict__.items()
        if name in _COMPARED
    }


async def check_history(client: Client, engine: Engine, item_id: str) -> HistoryCheck:
    """Compare the item's stored events with its workflow histories (module docstring)."""
    check = HistoryCheck()
    workflow_id = item_workflow_id(item_id)
    scheduled: dict[str, dict[str, Any]] = {}
    async for history in _histories(client, workflow_id):
        check.runs += 1
        for event in _scheduled_events(history, check.unreadable):
            try:
                comparable = _comparable(event)
            except (DubanError, KeyError, TypeError) as exc:  # not an event: noted, never raised
                reason = str(exc) if isinstance(exc, DubanError) else f"{type(exc).__name__}: {exc}"
                check.unreadable.append(f"run {check.runs}: a recorded event that is not one ({reason})")
                continue
            scheduled.setdefault(comparable["event_id"], comparable)
    stored = {e.event_id: _comparable(event_to_dict(e)) for e in EventStore(engine).read(item_id)}
    check.stored, check.in_history = len(stored), len(scheduled)
    for event_id, event in stored.items():
        if event_id not in scheduled:
            check.only_in_store.append(f"{event['event_type']} #{event['sequence']} ({event_id})")
            check.reasons[event_id] = "not in the workflow history"
        elif scheduled[event_id] != event:
            fields = [n for n in _COMPARED if scheduled[event_id].get(n) != event.get(n)]
            check.differing.append(f"{event['event_type']} #{event['sequence']} ({event_id})")
            check.reasons[event_id] = f"differs from the workflow history in {', '.join(fields)}"
        else:
            check.matched += 1
    check.only_in_history = [
        f"{e['event_type']} #{e['sequence']} ({i})" for i, e in scheduled.items() if i not in stored
    ]
    check.history_only = [
        {"sequence": e["sequence"], "event_type": e["event_type"], "event_id": i}
        for i, e in scheduled.items()
        if i not in stored
    ]
    try:
        state = await client.get_workflow_handle(workflow_id).query("state")
        check.refused = [(r["command_id"], r["reason"]) for r in state.get("rejected", [])]
    except Exception:  # a workflow no worker can answer for: the refusals are not known then
        pass
    return check


def render(rows: list[dict[str, Any]], check: HistoryCheck | None, fmt: str, item_id: str) -> str:
    """The timeline as ``json``, ``csv`` or ``html``, with the history check when there is one."""
    if fmt == "json":
        body: dict[str, Any] = {"item_id": item_id, "timeline": rows}
        if check is not None:
            body["history"] = check.__dict__ | {"ok": check.ok}
        return json.dumps(body, ensure_ascii=False, indent=2)
    if fmt == "csv":
        out = io.StringIO()
        if check is None:
            writer = csv.DictWriter(out, fieldnames=list(COLUMNS), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
            return out.getvalue()
        # with the history check: a "history" column, its verdict on each event, and a row for
        # each event the history carried that the store does not hold
        writer = csv.DictWriter(out, fieldnames=[*COLUMNS, "history"], lineterminator="\n", restval="")
        writer.writeheader()
        writer.writerows(r | {"history": check.reasons.get(r["event_id"], "matches")} for r in rows)
        writer.writerows(
            e | {"history": "only in the workflow history (not stored)"} for e in check.history_only
        )
        writer.writerows({"history": f"unreadable in the history: {u}"} for u in check.unreadable)
        return out.getvalue()
    cells = "".join(
        "<tr>" + "".join(f"<td>{escape(str(r[c]))}</td>" for c in COLUMNS) + "</tr>" for r in rows
    )
    verdict = ""
    if check is not None:
        agrees = "matches" if check.ok else "DOES NOT MATCH"
        verdict = f"<p>Temporal history: {agrees} ({escape(check.summary())})</p>"
        wrong = [
            f"{escape(r['event_type'])} #{r['sequence']} ({escape(r['event_id'])}): "
            f"{escape(check.reasons[r['event_id']])}"
            for r in rows
            if r["event_id"] in check.reasons
        ]
        wrong += [f"{escape(i)}: only in the workflow history (not stored)" for i in check.only_in_history]
        wrong += [f"unreadable in the history: {escape(u)}" for u in check.unreadable]
        if wrong:
            verdict += "<ul>" + "".join(f"<li>{w}</li>" for w in wrong) + "</ul>"
    head = "".join(f"<th>{c}</th>" for c in COLUMNS)
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{escape(item_id)}</title></head><body>"
        f"<h1>{escape(item_id)}</h1>{verdict}<table border='1'><tr>{head}</tr>{cells}</table></body></html>"
    )
