"""Typed client calls of ``SupervisionItemWorkflow``: start an item, send or apply a command.

The workflow takes raw payloads (it decodes them strictly itself, ``workflows.item_payloads``), so
its handlers' signatures say ``RawValue``; these helpers keep callers typed with the dataclasses
they actually send (``ItemWorkflowInput``, ``ItemCommand``), encoded by the client's converter.
"""

from __future__ import annotations

from typing import Any

from temporalio.client import Client, WorkflowHandle

from workflows.item_model import CommandOutcome, ItemCommand
from workflows.item_workflow import ItemOutcome, ItemWorkflowInput, SupervisionItemWorkflow

ItemHandle = WorkflowHandle[SupervisionItemWorkflow, ItemOutcome]


def item_workflow_id(item_id: str) -> str:
    """Workflow id of an item: ``item-<item id>`` (the workflow refuses any other)."""
    return f"item-{item_id}"


async def start_item(client: Client, input: ItemWorkflowInput, task_queue: str, **options: Any) -> ItemHandle:
    """Start the item of ``input`` as ``item-<item id>`` on ``task_queue``; ``options`` go to
    ``Client.start_workflow`` (e.g. ``start_signal``, ``id_reuse_policy``).

    Raises:
        temporalio.exceptions.WorkflowAlreadyStartedError: the item's workflow is running.
    """
    registration = input.carried.registration if input.carried else input.registration
    handle: ItemHandle = await client.start_workflow(
        "SupervisionItemWorkflow",
        input,
        id=item_workflow_id(registration.item_id),
        task_queue=task_queue,
        result_type=ItemOutcome,
        **options,
    )
    return handle


async def send_command(handle: WorkflowHandle[Any, Any], cmd: ItemCommand) -> None:
    """Signal ``cmd`` to the item (fire-and-forget: a refusal is listed in ``state``'s ``rejected``)."""
    await handle.signal("submit_command", cmd)


async def apply_command(handle: WorkflowHandle[Any, Any], cmd: ItemCommand) -> CommandOutcome:
    """Apply ``cmd`` by update and return its outcome once its events are recorded.

    Raises:
        temporalio.client.WorkflowUpdateFailedError: refused; its cause is an ``ApplicationError`` of
            type ``MalformedCommand`` (the field and the reason) or ``IllegalCommand`` (the reason).
    """
    outcome: CommandOutcome = await handle.execute_update("apply_command", cmd, result_type=CommandOutcome)
    return outcome
