"""How each event changes an item's view and the day counters: the projection's pure rules.

``evolve`` applies one item event to the item's ``item_view`` row (a dict) and says which counters it
increments and by how much; ``adjustment_row`` checks a ``ScoreAdjusted`` event and queues its row.
The projector (``projections.projector``) attributes the counters to the item's units and days.

A suspension (``ItemSuspended``) shows the item as ``suspended`` (``events.stages.shown_stage``, the
rule its workflow follows) and keeps the stage it held and when its clock stopped; ``ItemResumed``
restores that stage and the resolution deadline moved out by the pause. A withdrawal (cancel, merge)
ends a suspension.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from events import types as t
from events.bounds import points_problem
from events.codec import parse_utc
from events.envelope import EventEnvelope
from events.stages import shown_stage
from events.working_calendar import calendar_for
from projections import read_models as rm
from projections.frozen_periods import counted_day


def new_view(ev: EventEnvelope) -> dict[str, Any]:
    """The ``item_view`` row an ``ItemRegistered`` event starts."""
    p = ev.payload
    deadline = p["resolution_deadline"]
    return {
        **{name: p[name] for name in ("category", "department", "unit", "town", "community", "grid", "zone")},
        "item_id": ev.item_id,
        "order_id": p["order_id"],
        "district": p["district"],
        "calendar": p["calendar"],
        "stage": "registered",
        "registered_at": ev.occurred_at,
        "resolution_deadline": parse_utc(deadline, "resolution_deadline") if deadline else None,
        "closed_at": None,
        "on_time": None,
        "overdue": False,
        "escalation_level": 0,
        "warned": False,
        "intake_department": p["department"],
        "extended": False,
        "suspended_at": None,
        "resume_stage": None,
    }


Bumps = dict[str, int]


def evolve(view: dict[str, Any], ev: EventEnvelope) -> Bumps:
    """Apply ``ev`` to ``view`` in place; return the counters it increments, by how much."""
    p, kind = ev.payload, ev.event_type
    if kind == t.ITEM_REGISTERED:
        return {"registered": 1, "registered_with_deadline": int(view["resolution_deadline"] is not None)}
    if kind == t.ITEM_DISPATCHED:
        view.update(stage="dispatched", department=p["department"], unit=p["unit"])
        return {"dispatched": 1}
    if kind == t.ITEM_ACCEPTED:
        view.update(stage="accepted", unit=p["unit"] or view["unit"])
    elif kind == t.RECTIFICATION_SUBMITTED:
        view["stage"] = "rectified"
    elif kind == t.RECTIFICATION_VERIFIED:
        view["stage"] = "verified" if p["passed"] else "accepted"  # failed: rework by the same unit
        return {"verified": 1, "verified_passed": int(p["passed"]), "cohort_rectified": int(p["passed"])}
    elif kind == t.REWORK_ORDERED:
        return {"rework": 1}
    elif kind == t.ITEM_CLOSED:
        view.update(stage="closed", closed_at=ev.occurred_at, on_time=p["on_time"])
        bumps = {
            "closed": 1,
            "cohort_closed": 1,
            "handling_seconds": p["handling_seconds"],
            **working_time(view, ev.occurred_at),
        }
        if p["on_time"] is None:
            return {**bumps, "closed_no_deadline": 1}
        if not p["on_time"]:
            view["overdue"] = True
        return {**bumps, "closed_with_deadline": 1, "closed_on_time" if p["on_time"] else "closed_overdue": 1}
    elif kind == t.ITEM_CANCELLED:
        view.update(stage="cancelled", suspended_at=None, resume_stage=None)  # withdrawn: no longer held
        return {"cancelled": 1, "cohort_withdrawn": 1}
    elif kind == t.DEADLINE_WARNED:
        view["warned"] = True
        return {"warned": 1}
    elif kind == t.DEADLINE_BREACHED:
        if p["milestone"] == "resolution":
            view["overdue"] = True
        return {"breached": 1}
    elif kind == t.ITEM_ESCALATED:
        view["escalation_level"] = p["level"]
        return {"escalated": 1}
    elif kind == t.ITEM_RETURNED:
        view["stage"] = "registered"  # back to the dispatcher
        return {"returned": 1}
    elif kind == t.ITEM_MERGED:
        view.update(stage="merged", suspended_at=None, resume_stage=None)
        return {"merged": 1, "cohort_withdrawn": 1}
    elif kind == t.EXTENSION_APPROVED:
        view["resolution_deadline"] = parse_utc(p["deadline"], "deadline")
        first, view["extended"] = not view["extended"], True
        return {"extended": 1, "cohort_extended": int(first)}
    elif kind == t.ITEM_SUSPENDED:
        if view.get("suspended_at") is None:  # the stage it holds, and when its clock stopped
            view.update(resume_stage=view["stage"], suspended_at=ev.occurred_at)
        view["stage"] = shown_stage(view["resume_stage"], True)
        return {"suspended": 1}
    elif kind == t.ITEM_RESUMED:
        held = view.get("resume_stage") or view["stage"]  # a row suspended before the columns: as is
        view.update(stage=shown_stage(held, False), suspended_at=None, resume_stage=None)
        if p["resolution_deadline"]:  # moved out by the time it stood still
            view["resolution_deadline"] = parse_utc(p["resolution_deadline"], "resolution_deadline")
    elif kind == t.DEPARTMENT_REPORTED_IN:
        return {"reported_in": 1, "reported_in_late": int(p["late"])}
    # Requests, rejections, reviews, lights, grid calls and ratings change no counter yet.
    return {}


def adjustment_row(
    ev: EventEnvelope,
    adjustments: list[dict[str, Any]],
    spans: list[tuple[date, date, datetime]],
    days: dict[str, date],
) -> str:
    """Queue a ``ScoreAdjusted`` event's row; return the reason if the adjustment is invalid."""
    p = ev.payload
    if p["level"] not in rm.LEVELS:
        return f"payload.level: unknown level {p['level']!r}"
    for name in ("unit_key", "reason", "approver"):
        if not p[name].strip():
            return f"payload.{name}: must not be empty (an adjustment needs a unit, a reason and an approver)"
    if (problem := points_problem(p["points"])) is not None:
        return f"payload.points: {problem}"
    try:
        day, points = date.fromisoformat(p["day"]), Decimal(p["points"])
    except ValueError:
        return "payload.day: must be a date, YYYY-MM-DD"
    day = days[ev.event_id] = counted_day(day, ev.recorded_at, spans)
    adjustments.append(
        {"event_id": ev.event_id, "level": p["level"], "unit_key": p["unit_key"], "day": day,
         "points": str(points), "reason": p["reason"], "approver": p["approver"]}
    )  # fmt: skip
    return ""


def interview_row(ev: EventEnvelope, interviews: list[dict[str, Any]]) -> str:
    """Queue an ``InterviewRequired`` event's row; return the reason if it is invalid."""
    p = ev.payload
    if p["level"] not in rm.LEVELS:
        return f"payload.level: unknown level {p['level']!r}"
    if not p["unit_key"].strip() or not p["reasons"]:
        return "payload: an interview needs a unit and at least one reason"
    interviews.append(
        {"event_id": ev.event_id, "period": p["period"], "level": p["level"], "unit_key": p["unit_key"],
         "rules": json.dumps(p["rules"]), "reasons": json.dumps(p["reasons"], ensure_ascii=False),
         "scorebook_version": p["scorebook_version"], "recorded_at": ev.recorded_at}
    )  # fmt: skip
    return ""


def corrected(ev: EventEnvelope) -> str:
    """The item an ``OutcomeCorrected`` event corrects (``""`` for any other event)."""
    if ev.event_type != t.OUTCOME_CORRECTED:
        return ""
    return str(ev.payload.get("item") or "")


def correction_bumps(view: dict[str, Any], ev: EventEnvelope) -> Bumps:
    """Apply an ``OutcomeCorrected`` event to the corrected item's ``view`` in place; return how the
    counters move: a close counted late now on time (or the reverse), breaches and escalations that
    the corrected deadline had not reached taken back."""
    p = ev.payload
    bumps: Bumps = {}
    before, after = p["previous_on_time"], p["on_time"]
    if view["stage"] == "closed" and before is not None and after is not None and before != after:
        bumps["closed_on_time"] = 1 if after else -1
        bumps["closed_overdue"] = -1 if after else 1
    if p["breaches_reversed"]:
        bumps["breached"] = -int(p["breaches_reversed"])
    if p["escalations_reversed"]:
        bumps["escalated"] = -int(p["escalations_reversed"])
    deadline = p["deadline"]
    view["resolution_deadline"] = parse_utc(deadline, "deadline") if deadline else None
    if after is not None:
        view["on_time"] = after
    if p["breaches_reversed"]:
        view["overdue"] = False
    return bumps


def working_time(view: dict[str, Any], closed_at: datetime) -> Bumps:
    """Working seconds from registration to close on the item's calendar (items with one only)."""
    if not view["calendar"]:
        return {}
    seconds = calendar_for(view["calendar"]).working_seconds_between(view["registered_at"], closed_at)
    return {"closed_with_calendar": 1, "handling_working_seconds": seconds}
