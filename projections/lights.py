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


def clock_light(row: Any, now: datetime) -> str | None:
    """The clock-time light of an ``item_view`` row (anything with ``registered_at``,
    ``resolution_deadline`` and ``closed_at``, aware UTC) at ``now`` (aware): ``"green"``,
    ``"yellow"``, ``"red"``, or ``None`` without a deadline."""
    deadline, start = row.resolution_deadline, row.registered_at
    if deadline is None:
        return None
    end = row.closed_at or now
    if end > deadline:
        return RED
    span = (deadline - start).total_seconds()
    return YELLOW if span > 0 and (end - start).total_seconds() >= YELLOW_SHARE * span else GREEN
