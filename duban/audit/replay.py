"""``duban audit replay``: the histories of running and recently closed workflows replayed against
the current workflow code (Temporal's ``Replayer``, with the SDK's default sandbox, as an auditor's
would run it) — the check to run before a new worker build is deployed: a change that would break
running items (a timer or an activity added or removed, commands reordered) fails here, naming them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.client import Client
from temporalio.worker import Replayer

from workflows.item_workflow import SupervisionItemWorkflow
from workflows.order_workflow import SupervisionOrderWorkflow
from workflows.period_close import PeriodCloseWorkflow
from workflows.webhook_delivery import WebhookDeliveryWorkflow

WORKFLOWS: tuple[type, ...] = (
    SupervisionItemWorkflow,
    SupervisionOrderWorkflow,
    PeriodCloseWorkflow,
    WebhookDeliveryWorkflow,
)
RECENT = timedelta(days=7)


def default_query(now: datetime | None = None) -> str:
    """Items and orders running, or closed in the last week (a Temporal visibility query)."""
    since = ((now or datetime.now(UTC)) - RECENT).strftime("%Y-%m-%dT%H:%M:%SZ")
    kinds = "WorkflowType IN ('SupervisionItemWorkflow', 'SupervisionOrderWorkflow')"
    return f"{kinds} AND (ExecutionStatus = 'Running' OR CloseTime > '{since}')"


@dataclass
class ReplayReport:
    """How many histories were replayed, and each that failed: (workflow id, run id, the error)."""

    replayed: int = 0
    failures: list[tuple[str, str, str]] = field(default_factory=list)


async def replay(
    client: Client, query: str | None = None, workflows: tuple[type, ...] = WORKFLOWS, limit: int = 10_000
) -> ReplayReport:
    """Replay the histories ``query`` finds (default: ``default_query``), at most ``limit``."""
    report = ReplayReport()
    replayer = Replayer(workflows=list(workflows))
    histories: Any = client.list_workflows(query or default_query(), limit=limit).map_histories()
    async with replayer.workflow_replay_iterator(histories) as results:
        async for result in results:
            report.replayed += 1
            if result.replay_failure is not None:
                history = result.history
                report.failures.append(
                    (history.workflow_id, history.run_id, str(result.replay_failure)[:500])
                )
    return report
