"""Hand-made items for the notice, document and interview tests: the category ``pavement`` (no rule
of its own: 1 clock hour to accept, 24 clock hours to resolve, in Asia/Shanghai), driven through the
pure core with the timers due up to a given instant fired."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from events.envelope import EventEnvelope
from helpers.items import CST, RULEBOOK, run
from helpers.items import cmd as command
from workflows import item_rules as rules
from workflows.item_model import Registration
from workflows.item_policy import apply_rulebook
from workflows.item_timers import fire_due_timers


def at(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    """A local time of 2026 in Asia/Shanghai."""
    return datetime(2026, month, day, hour, minute, tzinfo=CST)


def item(
    item_id: str,
    department: str,
    town: str,
    reported: datetime,
    *steps: Any,
    until: datetime | None = None,
    category: str = "pavement",
) -> list[EventEnvelope]:
    """The events of an item reported at ``reported``, dispatched to ``<department>-team`` and
    accepted half an hour later, then ``steps`` (``(kind, time)``); an item left open has its timers
    fired up to ``until``."""
    reg = Registration(
        item_id=item_id, category=category, reported_at=reported, department=department, town=town,
        zone="Asia/Shanghai",
    )  # fmt: skip
    state, events = rules.register(apply_rulebook(reg, RULEBOOK, "china"))
    unit = f"{department}-team"
    opening = [
        command("dispatch", reported, unit=unit, department=department),
        command("accept", reported + timedelta(minutes=30), unit=unit),
    ]
    own = {"submit_rectification": {"unit": unit}}  # the inspectors verify: not the same unit
    events += run(state, *opening, *(command(kind, when, **own.get(kind, {})) for kind, when in steps))
    if until is not None and state.stage not in ("closed", "cancelled"):
        events += fire_due_timers(state, until)
    return events


def done(rectified: datetime) -> list[tuple[str, datetime]]:
    """Rectified at ``rectified``, verified half an hour later, closed an hour later."""
    return [
        ("submit_rectification", rectified),
        ("verify", rectified + timedelta(minutes=30)),
        ("close", rectified + timedelta(hours=1)),
    ]


def on_time(item_id: str, department: str, reported: datetime, town: str = "Qiaotou") -> list[EventEnvelope]:
    """An item closed two hours after its report (deadline: a day after it)."""
    return item(item_id, department, town, reported, *done(reported + timedelta(hours=1)))


def late(item_id: str, department: str, reported: datetime, town: str = "Qiaotou") -> list[EventEnvelope]:
    """An item closed 27 hours after its report: breached (and escalated to the department head)."""
    return item(item_id, department, town, reported, *done(reported + timedelta(hours=26)))
