"""Interviews (约谈): the units the office calls in, by the rules of the scorebook version in force.

DOMAIN.md "Time limits and escalation": repeated breaches lead to notices and interviews. When a
month closes, each rule of its scorebook version (``interviews:``; ``projections.scorebook``) is
evaluated on what the close froze:

- ``last_place``: the unit ranked last at ``level`` (the highest rank among units with a score, when
  at least two are scored) in this month and each of the ``periods − 1`` months before, as their
  frozen snapshots have it (a month not closed yet does not count: nothing is guessed);
- ``counter_at_least``: ``counter`` (e.g. ``breached``) summed over the month at ``level`` is at
  least ``min``;
- ``city_order_overdue``: at the close, an open item escalated to a city order (rung 4, the top of
  the ladder) is past its deadline; the unit is the item's at ``level``.

A unit meeting several rules is called in once, with every reason. Each interview is recorded as an
``InterviewRequired`` event (``interview_events``), so the list is in the event log for auditors,
and the monthly notice prints it.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from datetime import date, datetime
from typing import Any

from sqlalchemy import Engine, func, select

from events import types as t
from events.envelope import SCHEMA_VERSION, EventEnvelope, make_event_id
from projections import read_models as rm
from projections.periods import previous_period
from projections.scorebook import InterviewRule, ScoreVersion

CITY_ORDER_LEVEL = 4
"""The escalation rung of a city order (README, "The Temporal UI": 1 department head … 4 city order)."""


REASONS = {
    "last_place": "ranked last at {level} level in each of {months}",
    "counter_at_least": "{n} {counter} in the month (the rule: at least {min})",
    "city_order_overdue": "{count} item(s) escalated to a city order overdue: {items}",
}
"""The reason each rule records, in English (the ``InterviewRequired`` event and the findings keep
it so); ``reason_facts`` reads one back for a document in another language."""
_READ_BACK = {
    rule: re.compile(
        "^" + re.sub(r"\\\{(\w+)\\\}", lambda m: f"(?P<{m[1]}>.+?)", re.escape(text)) + "$", re.S
    )
    for rule, text in REASONS.items()
}


def reason_facts(reason: str) -> dict[str, str] | None:
    """The rule and the facts of an interview reason of ``REASONS`` (``{"rule": "counter_at_least",
    "n": "5", "counter": "breached", "min": "5"}``), or ``None`` for any other text."""
    for rule, pattern in _READ_BACK.items():
        if m := pattern.match(reason):
            return {"rule": rule, **m.groupdict()}
    return None


def _last_units(scores: list[dict[str, Any]]) -> set[str]:
    scored = [s for s in scores if s.get("score") is not None]
    if len(scored) < 2:
        return set()
    worst = max(int(s["rank"]) for s in scored)
    return {str(s["unit_key"]) for s in scored if int(s["rank"]) == worst}


def _last_place(
    rule: InterviewRule, period: str, scores: list[dict[str, Any]], earlier: Any
) -> dict[str, str]:
    units = _last_units(scores)
    months = [period]
    for _ in range(rule.periods - 1):
        months.append(previous_period(months[-1]))
        units &= _last_units(earlier(months[-1], rule.level))
    shown = ", ".join(sorted(months))
    return {u: REASONS["last_place"].format(level=rule.level, months=shown) for u in units}


def _counter(engine: Engine, rule: InterviewRule, start: date, end: date) -> dict[str, str]:
    c = rm.unit_day_counters.c
    total = func.sum(c[rule.counter]).label("n")
    query = (
        select(c.unit_key, total)
        .where(c.level == rule.level, c.day >= start, c.day < end)
        .group_by(c.unit_key)
    )
    with engine.connect() as conn:
        rows = [(str(unit), int(n or 0)) for unit, n in conn.execute(query)]
    return {
        unit: REASONS["counter_at_least"].format(n=n, counter=rule.counter, min=rule.min)
        for unit, n in rows
        if n >= rule.min
    }


def _city_order_overdue(engine: Engine, rule: InterviewRule, cut_off: datetime) -> dict[str, str]:
    v = rm.item_view.c
    column = v[rm.LEVEL_COLUMN.get(rule.level, rule.level)]
    query = select(column, v.item_id).where(
        v.escalation_level >= CITY_ORDER_LEVEL,
        v.stage.not_in(("closed", "cancelled", "merged")),
        v.resolution_deadline < cut_off,
    )
    found: dict[str, list[str]] = defaultdict(list)
    with engine.connect() as conn:
        for unit, item in conn.execute(query.order_by(v.item_id)):
            found[str(unit)].append(str(item))
    return {
        unit: REASONS["city_order_overdue"].format(
            count=len(items), items=", ".join(items[:5]) + ("…" if len(items) > 5 else "")
        )
        for unit, items in found.items()
        if unit
    }


def evaluate_interviews(
    engine: Engine,
    version: ScoreVersion,
    period: str,
    span: tuple[date, date],
    scores_by_level: dict[str, list[dict[str, Any]]],
    cut_off: datetime,
    earlier: Any,
) -> list[dict[str, Any]]:
    """The interviews of month ``period`` (local days ``span``) at ``cut_off``: one entry per unit,
    ``{"level", "unit_key", "rules", "reasons"}``, sorted by level and unit.

    ``scores_by_level`` are the month's score rows (``projections.scoring.score_dicts``);
    ``earlier(period, level)`` returns the frozen score rows of an earlier month (empty if not closed).
    """
    called: dict[tuple[str, str], dict[str, Any]] = {}
    for rule in version.interviews:
        if rule.rule == "last_place":
            hits = _last_place(rule, period, scores_by_level.get(rule.level, []), earlier)
        elif rule.rule == "counter_at_least":
            hits = _counter(engine, rule, *span)
        else:
            hits = _city_order_overdue(engine, rule, cut_off)
        for unit, reason in hits.items():
            entry = called.setdefault(
                (rule.level, unit), {"level": rule.level, "unit_key": unit, "rules": [], "reasons": []}
            )
            entry["rules"].append(rule.rule)
            entry["reasons"].append(reason)
    return [called[k] for k in sorted(called)]


def interview_item_id(period: str, level: str, unit_key: str) -> str:
    """``interview:<period>:<level>:<digest>``: one stream per interview (the digest keeps any unit
    name within the id bound)."""
    digest = hashlib.sha256(f"{period}\0{level}\0{unit_key}".encode()).hexdigest()[:24]
    return f"interview:{period}:{level}:{digest}"


def interview_events(
    period: str, interviews: list[dict[str, Any]], scorebook_version: str, at: datetime
) -> list[EventEnvelope]:
    """One ``InterviewRequired`` event per interview, recorded at ``at`` (aware UTC) by the office;
    their ids derive from the period, level and unit, so recording them again stores nothing new."""
    events = []
    for entry in interviews:
        item = interview_item_id(period, entry["level"], entry["unit_key"])
        events.append(
            EventEnvelope(
                event_id=make_event_id(item, 1),
                event_type=t.INTERVIEW_REQUIRED,
                schema_version=SCHEMA_VERSION,
                item_id=item,
                sequence=1,
                occurred_at=at,
                recorded_at=at,
                actor="system:period-close",
                payload={
                    "period": period,
                    "level": entry["level"],
                    "unit_key": entry["unit_key"],
                    "rules": list(entry["rules"]),
                    "reasons": list(entry["reasons"]),
                    "scorebook_version": scorebook_version,
                },
                correlation_id=f"close:{period}",
                causation_id=f"close:{period}",
            )
        )
    return events


def record_interviews(engine: Engine, period: str, frozen_at: datetime, scorebook_version: str) -> int:
    """Record the ``InterviewRequired`` events of closed month ``period`` from its frozen findings
    into the event store (the projection applies them from there); how many were new. Recording
    again stores nothing (the events' ids derive from the period and the unit)."""
    from events.codec import encode_event
    from events.store import EventStore
    from projections.findings import read_findings

    found = read_findings(engine, period)
    events = interview_events(period, (found or {}).get("interviews", []), scorebook_version, frozen_at)
    if not events:
        return 0
    store = EventStore(engine)
    store.create()
    new, _ = store.record(events, [encode_event(e) for e in events])
    return new
