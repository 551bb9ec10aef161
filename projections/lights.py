"""The traffic light of an item as the read models show it: on clock time, from its registration,
its resolution deadline and its close-out (DOMAIN.md "Time limits and escalation", anchor: green
under 80% of the limit, yellow from 80% to the deadline, red past it or closed late).

The item's own light (its workflow, ``GET /v1/items/{id}``) counts working time under its rulebook
and may differ near the thresholds; lists, boards, notices and the ledger use this one, which needs
no calendar and reads one row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

GREEN, YELLOW, RED = "green", "yellow", "red"
"""The lights' names, as the item workflow spells them (``workflows.item_model``)."""
YELLOW_SHARE = 0.8
"""Where the clock-time light turns yellow: 80% of the span from registration to the deadline."""


def clock_end(row: Any, now: datetime) -> datetime:
    """Where an ``item_view`` row's clock stands at ``now`` (aware): its close-out, or the start of
    the suspension it is in (its clock stands still: DOMAIN.md "suspension stops the clock"), if that
    came by ``now``; else ``now``. A row without ``suspended_at`` is never suspended."""
    stops = [s for s in (row.closed_at, getattr(row, "suspended_at", None)) if s is not None and s <= now]
    return min(stops) if stops else now


def clock_light(row: Any, now: datetime) -> str | None:
    """The clock-time light of an ``item_view`` row (anything with ``registered_at``,
    ``resolution_deadline`` and ``closed_at``, and ``suspended_at`` if it has one, aware UTC) at
    ``now`` (aware): ``"green"``, ``"yellow"``, ``"red"``, or ``None`` without a deadline. A suspended
    item keeps the light it had when its clock stopped (``clock_end``)."""
    deadline, start = row.resolution_deadline, row.registered_at
    if deadline is None:
        return None
    end = clock_end(row, now)
    if end > deadline:
        return RED
    span = (deadline - start).total_seconds()
    return YELLOW if span > 0 and (end - start).total_seconds() >= YELLOW_SHARE * span else GREEN
