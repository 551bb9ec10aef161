"""What the Temporal UI shows of an item: its memo, and the upserts of only what changed (pure)."""

from __future__ import annotations

from typing import Any

from workflows.item_model import ESCALATION_LADDER, ItemState


def changed_only(now: dict[str, Any], shown: dict[str, Any]) -> list[str]:
    """The names of ``now`` whose values differ from ``shown`` (what the run has upserted so far),
    and always the first name: every step upserts as it did when it sent every value, so a history
    recorded then replays, while each upsert carries only what changed (each value is a payload,
    and each payload costs the SDK's sandbox a context switch)."""
    names = list(now)
    return [n for i, n in enumerate(names) if i == 0 or n not in shown or shown[n] != now[n]]


def item_memo(s: ItemState) -> dict[str, Any]:
    """Memo fields of an item (JSON-native): stage, light, deadline, rung, unit and exception counts."""
    clock = s.clock("resolution")
    return {
        "stage": s.shown_stage,
        "light": s.shown_light,
        "resolution_deadline": clock.deadline.isoformat() if clock else None,
        "escalated_to": ESCALATION_LADDER[s.escalation_level],
        "department": s.department,
        "unit": s.unit,
        "rulebook_version": s.registration.policy.rulebook_version if s.registration.policy else None,
        "extensions": s.extensions_granted,
        "rework_episodes": s.rework_episodes,
        "redispatches": s.redispatch_count,
        "responders": [r.department for r in s.responders],
        "merged_into": s.merged_into or None,
    }
