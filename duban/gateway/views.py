"""JSON views of items for the gateway: one item (state, deadlines, light, timeline) and lists.

Times are ISO-8601 UTC texts (``...Z``); the item's own zone is given beside them so a client can
show local time. The list reads the ``item_view`` read model; its ``light`` is computed on clock time
from the registration and the resolution deadline (green under 80% of the span, yellow to the
deadline, red past it or closed late): the item's own light (``GET /v1/items/{id}``) counts working
time under its rulebook and may differ near the thresholds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from events.codec import format_utc
from events.store import EventStore
from projections import read_models as rm
from projections.lights import clock_light
from workflows.item_model import ItemState

MAX_PAGE = 200


def _t(value: datetime | None) -> str | None:
    return format_utc(value) if value is not None else None


def item_json(state: ItemState, store: EventStore) -> dict[str, Any]:
    """The item as ``GET /v1/items/{id}`` shows it, with the timeline of its stored events."""
    reg = state.registration
    clocks = {
        c.name: {"deadline": _t(c.deadline), "basis": c.basis, "met_at": _t(c.met_at)} for c in state.clocks
    }
    timeline = [
        {
            "sequence": e.sequence,
            "event_type": e.event_type,
            "occurred_at": _t(e.occurred_at),
            "actor": e.actor,
            "event_id": e.event_id,
        }
        for e in store.read(reg.item_id)
    ]
    return {
        "item_id": reg.item_id,
        "stage": state.shown_stage,
        "light": state.shown_light,
        "category": reg.category,
        "department": state.department or reg.department,
        "unit": state.unit,
        "town": reg.town,
        "community": reg.community,
        "zone": reg.zone,
        "reported_at": _t(reg.reported_at),
        "response_deadline": clocks.get("response", {}).get("deadline"),
        "resolution_deadline": clocks.get("resolution", {}).get("deadline"),
        "clocks": clocks,
        "escalation_level": state.escalation_level,
        "overdue": state.overdue,
        "on_time": state.on_time,
        "closed_at": _t(state.closed_at),
        "rulebook_version": reg.policy.rulebook_version if reg.policy else None,
        "timeline": timeline,
    }


@dataclass(frozen=True)
class ItemFilter:
    """Filters of ``GET /v1/items``; empty means any. ``overdue`` ``None`` means either."""

    department: str = ""
    town: str = ""
    community: str = ""
    category: str = ""
    stage: str = ""
    order_id: str = ""
    overdue: bool | None = None
    light: str = ""


def list_items(engine: Engine, flt: ItemFilter, page: int, page_size: int) -> dict[str, Any]:
    """A page (1-based) of items from ``item_view``, newest registration first, and the total."""
    table = rm.item_view
    query = select(table)
    for name in ("department", "town", "community", "category", "stage", "order_id"):
        if getattr(flt, name):
            query = query.where(table.c[name] == getattr(flt, name))
    if flt.overdue is not None:
        query = query.where(table.c.overdue.is_(flt.overdue))
    query = query.order_by(table.c.registered_at.desc(), table.c.item_id)
    now = datetime.now(UTC)
    with engine.connect() as conn:
        if flt.light:  # computed per row: filter in Python over the other filters' rows
            rows = [r for r in conn.execute(query) if clock_light(r, now) == flt.light]
            total, rows = len(rows), rows[(page - 1) * page_size : page * page_size]
        else:
            total = conn.execute(select(func.count()).select_from(query.subquery())).scalar_one()
            rows = list(conn.execute(query.limit(page_size).offset((page - 1) * page_size)))
    items = [
        {
            "item_id": r.item_id,
            "stage": r.stage,
            "light": clock_light(r, now),
            "category": r.category,
            "department": r.department,
            "town": r.town,
            "community": r.community,
            "order_id": r.order_id,
            "registered_at": _t(r.registered_at),
            "resolution_deadline": _t(r.resolution_deadline),
            "closed_at": _t(r.closed_at),
            "overdue": r.overdue,
            "on_time": r.on_time,
            "escalation_level": r.escalation_level,
        }
        for r in rows
    ]
    return {"page": page, "page_size": page_size, "total": total, "items": items}
