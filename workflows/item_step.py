"""The per-command step of an item, owned by the pure core: what the workflow and the tests call.

One step applies one command at business time ``now``: refuse it if it is malformed (bounds, kind),
fire the timers due before it, refuse it if it reports an act in the future, check it against the
rules, and apply it; a refusal is listed in the state (``item_rules.note_refusal``). Under rules
revision 2 a merge also needs its target to be a registered item, which only the event store knows:
the step then stops and asks (``Step.lookup``); the caller looks the target up and runs the step
again with the answer (firing timers twice fires nothing twice).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from events.envelope import EventEnvelope
from workflows import item_rules
from workflows.errors import IllegalCommand
from workflows.item_checks import shape_problem
from workflows.item_model import CommandKind, CommandOutcome, ItemCommand, ItemState

__all__ = ["Step", "handle_command"]


@dataclass
class Step:
    """What a step did: the events it produced (timers fired, then the command's), and the outcome
    (``None`` while ``lookup`` names a merge target whose registration must be looked up first)."""

    events: list[EventEnvelope] = field(default_factory=list)
    outcome: CommandOutcome | None = None
    lookup: str = ""


def handle_command(
    state: ItemState,
    cmd: ItemCommand,
    now: datetime,
    lead_tolerance_s: float,
    registered: Mapping[str, bool] | None = None,
) -> Step:
    """Apply ``cmd`` to ``state`` (mutated) at business time ``now`` (aware UTC), as one workflow step.

    Args:
        lead_tolerance_s: how far (seconds) ``occurred_at`` may lie after ``now``.
        registered: merge targets already looked up (item id → registered), for rules revision 2.

    Returns:
        A ``Step``: applied or refused with the reason (never raises for a bad command), or asking
        for a merge target's lookup (``outcome`` ``None``, ``lookup`` the target's id).
    """
    events: list[EventEnvelope] = []
    try:
        problem = shape_problem(cmd)  # a malformed command is refused, never fatal
        if problem is not None:
            raise IllegalCommand(problem)
        events += item_rules.fire_due_timers(state, min(cmd.occurred_at, now))
        item_rules.check_command_time(cmd, now, lead_tolerance_s)
        if _needs_registered_target(state, cmd):
            target = cmd.into_item_id.strip()
            if registered is None or target not in registered:
                return Step(events, None, target)
            if not registered[target]:
                raise IllegalCommand(f"merge target {target!r} is not a registered item")
        produced = item_rules.apply_command(state, cmd)
        return Step(
            events + produced, CommandOutcome(cmd.command_id, True, "", [e.event_type for e in produced])
        )
    except IllegalCommand as exc:
        outcome = CommandOutcome(cmd.command_id, False, exc.reason)
        item_rules.note_refusal(state, outcome)
        return Step(events, outcome)


def _needs_registered_target(state: ItemState, cmd: ItemCommand) -> bool:
    """Whether ``cmd`` is a merge under rules revision 2 that the rules otherwise allow now and that
    is not a repeat (raises ``IllegalCommand`` when the rules refuse it)."""
    if cmd.kind != CommandKind.MERGE or state.rules_revision < 2:
        return False
    item_rules.check_command(state, cmd)
    return cmd.command_id not in state.applied_command_ids
