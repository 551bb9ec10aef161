"""Pure planning of a replay: an imported case becomes a registration and dated commands.

An imported case was reported, dispatched to its department and accepted when it was opened; it was
rectified, verified and closed out when the city closed it; a cancelled or referred-out case is
cancelled at its closing time (or when reported, if it has none). The unit is the case's own, or its
department when the export names none (every dispatch names a unit); the rectification's evidence is
a reference to the source record (``<profile>:<case id>``), where the city keeps its closure.
Command ids are built from the item id and the step, so a repeated replay delivers the same commands
(and the workflow applies each once).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from duban.importers.base import CaseStatus, ImportedCase
from workflows.item_model import CommandKind, ItemCommand, Registration


@dataclass
class CasePlan:
    """What to deliver for one case: start (registration and initial commands) and later commands.

    ``later_at`` is the business time (aware UTC) at which ``later`` is due; ``None`` if nothing follows.
    """

    case: ImportedCase
    registration: Registration
    initial_commands: list[ItemCommand]
    later: list[ItemCommand] = field(default_factory=list)
    later_at: datetime | None = None


def _cmd(case: ImportedCase, kind: str, actor: str, at: datetime, **extra: object) -> ItemCommand:
    return ItemCommand(command_id=f"{case.item_id}:{kind}", kind=kind, actor=actor, occurred_at=at, **extra)  # type: ignore[arg-type]


def plan_case(case: ImportedCase, profile: str) -> CasePlan:
    """Plan one case (see module docstring). The city's own deadline, when present, is the item's
    resolution deadline (``deadline_origin="source"``, overriding any rule); otherwise it has none."""
    unit = case.unit or case.department or "unknown"
    unit_actor = f"unit:{unit}"
    registration = Registration(
        item_id=case.item_id,
        category=case.category or "(uncategorised)",
        category_group=case.category_group,
        reported_at=case.reported_at,
        department=case.department,
        unit=case.unit,
        town=case.town,
        community=case.community,
        grid=case.grid,
        district=case.district,
        zone=case.zone,
        source=case.source,
        actor=f"source:{profile}",
        resolution_deadline=case.deadline,
        deadline_origin="source" if case.deadline is not None else "none",
    )
    start = case.reported_at
    initial = [
        _cmd(
            case,
            CommandKind.DISPATCH,
            f"dispatcher:{profile}",
            start,
            department=case.department,
            unit=unit,
        ),
        _cmd(case, CommandKind.ACCEPT, unit_actor, start, unit=unit),
    ]
    plan = CasePlan(case, registration, initial)
    if case.status == CaseStatus.CLOSED and case.closed_at is not None:
        at = case.closed_at
        plan.later = [
            _cmd(
                case,
                CommandKind.SUBMIT_RECTIFICATION,
                unit_actor,
                at,
                unit=unit,
                notes="closed in source",
                evidence=[f"{profile}:{case.item_id}"],
            ),
            _cmd(case, CommandKind.VERIFY, f"inspector:{profile}", at, notes="closure accepted in source"),
            _cmd(case, CommandKind.CLOSE, f"office:{profile}", at),
        ]
    elif case.status in (CaseStatus.CANCELLED, CaseStatus.REFERRED_OUT):
        at = case.closed_at or case.reported_at
        reason = "referred out in source" if case.status == CaseStatus.REFERRED_OUT else "cancelled in source"
        plan.later = [_cmd(case, CommandKind.CANCEL, f"office:{profile}", at, reason=reason)]
    if plan.later:
        # A case closed "before" it was reported is delivered at registration, dated as recorded.
        plan.later_at = max(plan.later[0].occurred_at, start)
    return plan
