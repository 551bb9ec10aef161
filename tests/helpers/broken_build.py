"""A worker build that breaks running items, for the replay tests: its item workflow no longer sleeps
until the next timer (it waits for commands only). A module of its own, importing only the workflow
code, so the replayer's sandbox can import it."""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import RawValue

from workflows.item_workflow import ItemOutcome, SupervisionItemWorkflow


@workflow.defn(name="SupervisionItemWorkflow")
class WithoutTheTimer(SupervisionItemWorkflow):
    """``SupervisionItemWorkflow`` with the timer removed from its wait."""

    @workflow.init
    def __init__(self, raw: RawValue) -> None:
        super().__init__(raw)

    @workflow.run
    async def run(self, raw: RawValue) -> ItemOutcome:
        return await super().run(raw)

    async def _wait_for_work(self) -> None:
        await workflow.wait_condition(lambda: bool(self._inbox))
