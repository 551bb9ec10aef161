"""The gateway's use cases on items, shared by every way in (duban's API, Open311, later the topic).

Each takes the ``Gateway``, the integrator's authenticated key and a validated body; it checks the
key's scope, then calls the service layer (``duban.services``). Errors: ``OutOfScope`` (403),
``ItemNotFound`` (404), ``ItemConflict`` (409: registered before with other values, or ended),
``CommandRefused`` (409 illegal now / 422 malformed), ``ValidationError`` (422).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from duban import services
from duban.gateway.context import Gateway
from duban.gateway.intake import CommandBody, RegisterBody, command_of, registration_of
from duban.gateway.keys import REGISTER, IntegratorKey, OutOfScope
from events.errors import DubanError
from workflows.item_client import item_workflow_id
from workflows.item_model import CommandOutcome, ItemState, Registration
from workflows.item_workflow import ItemWorkflowInput


class ItemNotFound(DubanError):
    """No item has this id."""


class ItemConflict(DubanError):
    """The item id is taken: registered with other values, or its item has ended."""


@dataclass
class Registered:
    """The outcome of a registration: ``created`` is False when the item was registered before."""

    item_id: str
    created: bool
    registration: Registration


async def item_state(gw: Gateway, item_id: str) -> ItemState:
    """The item's state as its workflow holds it (a closed item's too, while Temporal keeps it).

    Raises:
        ItemNotFound: no workflow ``item-<item_id>``.
    """
    handle = gw.client.get_workflow_handle(item_workflow_id(item_id))
    try:
        state: ItemState | None = await handle.query("state", result_type=ItemState)
    except RPCError as exc:
        if exc.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
            raise ItemNotFound(f"no item {item_id!r}") from None
        raise
    if state is None:  # the workflow has not run its first task yet
        raise ItemNotFound(f"item {item_id!r} is being registered; ask again in a moment")
    return state


async def _status(gw: Gateway, item_id: str) -> WorkflowExecutionStatus | None:
    try:
        described = await gw.client.get_workflow_handle(item_workflow_id(item_id)).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    return described.status


_SAME = ("category", "town", "reported_at", "department", "community", "grid", "urgency")


async def register(gw: Gateway, key: IntegratorKey, body: RegisterBody, extras: dict[str, Any]) -> Registered:
    """Register the item of ``body`` (idempotent by item id) and keep its Open311 ``extras``.

    Raises:
        ValidationError, OutOfScope, ItemConflict (see the module docstring).
    """
    version = gw.catalogue.in_force(datetime.now(UTC))
    reg, service = registration_of(body, version, gw.rulebook, key.integrator)
    refusal = key.scope.refusal(REGISTER, "", reg.department, reg.town)
    if refusal:
        raise OutOfScope(refusal)
    status = await _status(gw, reg.item_id)
    created = status is None
    if status is not None:
        if status != WorkflowExecutionStatus.RUNNING:
            raise ItemConflict(
                f"item {reg.item_id} was registered before and has ended; ids are never reused"
            )
        stored = (await item_state(gw, reg.item_id)).registration
        differ = [f for f in _SAME if getattr(stored, f) != getattr(reg, f)]
        if differ:
            raise ItemConflict(f"item {reg.item_id} was registered before with another {differ[0]}")
    else:
        try:
            await services.register_item(gw.client, ItemWorkflowInput(reg, []), gw.settings.task_queue)
        except services.ItemEnded as exc:
            raise ItemConflict(str(exc)) from None
    gw.save_request(
        {"item_id": reg.item_id, "service_code": service.code, "integrator": key.integrator} | extras
    )
    return Registered(reg.item_id, created, reg)


async def apply(gw: Gateway, key: IntegratorKey, item_id: str, body: CommandBody) -> CommandOutcome:
    """Apply the command of ``body`` to item ``item_id`` and return its outcome (a repeated command
    id returns the first outcome, applied once).

    Raises:
        ValidationError, OutOfScope, ItemNotFound, ItemConflict (ended), services.CommandRefused.
    """
    command = command_of(body, key.integrator)
    state = await item_state(gw, item_id)
    reg = state.registration
    refusal = key.scope.refusal(command.kind, command.role, state.department or reg.department, reg.town)
    if refusal:
        raise OutOfScope(refusal)
    if state.terminal:  # its workflow has completed: only a repeat of an applied command is answered
        if state.applied_kinds.get(command.command_id) == command.kind:
            return CommandOutcome(command.command_id, True, "applied before")
        raise ItemConflict(f"item {item_id} has ended ({state.stage}); it takes no more commands")
    return await services.apply_item_command(gw.client, item_id, command)
