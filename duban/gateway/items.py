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
from workflows import search_attributes as sa
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


async def apply_with_start(
    gw: Gateway, key: IntegratorKey, body: RegisterBody, command_body: CommandBody
) -> CommandOutcome:
    """Apply ``command_body`` to the item of ``body``, registering it first if needed (one Temporal
    update-with-start); the scope must cover both the registration and the command.

    Raises:
        ValidationError, OutOfScope, ItemConflict, services.CommandRefused.
    """
    version = gw.catalogue.in_force(datetime.now(UTC))
    reg, _ = registration_of(body, version, gw.rulebook, key.integrator)
    command = command_of(command_body, key.integrator)
    if await _status(gw, reg.item_id) is not None:  # registered: its scope is checked on its state
        return await apply(gw, key, reg.item_id, command_body)
    for kind, role in ((REGISTER, ""), (command.kind, command.role)):
        refusal = key.scope.refusal(kind, role, reg.department, reg.town)
        if refusal:
            raise OutOfScope(refusal)
    try:
        return await services.apply_item_command_with_start(
            gw.client, ItemWorkflowInput(reg, []), command, gw.settings.task_queue
        )
    except services.ItemEnded:  # a repeat after the end is answered; anything else is refused
        return await apply(gw, key, reg.item_id, command_body)


@dataclass(frozen=True)
class Standing:
    """Where a running item stands for a scope check: its department now and its town."""

    department: str
    town: str


async def standing(gw: Gateway, item_id: str) -> Standing | None:
    """The department and town of item ``item_id`` from its workflow's search attributes (one call
    to the Temporal server, which the worker does not serve: cheaper than the ``state`` query), or
    ``None`` when the item's workflow has ended or carries no attributes (a server without duban's
    attributes, or an item still in its first workflow task): then ask ``item_state``.

    Raises:
        ItemNotFound: no workflow ``item-<item_id>``.
    """
    try:
        described = await gw.client.get_workflow_handle(item_workflow_id(item_id)).describe()
    except RPCError as exc:
        if exc.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
            raise ItemNotFound(f"no item {item_id!r}") from None
        raise
    if described.status != WorkflowExecutionStatus.RUNNING:
        return None
    found = described.typed_search_attributes
    department, town = found.get(sa.DEPARTMENT), found.get(sa.TOWN)
    if department is None or town is None:
        return None
    return Standing(*("" if v == "(none)" else v for v in (department, town)))


async def apply(gw: Gateway, key: IntegratorKey, item_id: str, body: CommandBody) -> CommandOutcome:
    """Apply the command of ``body`` to item ``item_id`` and return its outcome (a repeated command
    id returns the first outcome, applied once).

    Raises:
        ValidationError, OutOfScope, ItemNotFound, ItemConflict (ended), services.CommandRefused.
    """
    command = command_of(body, key.integrator)
    where = await standing(gw, item_id)
    state = None
    if where is None:
        state = await item_state(gw, item_id)
        where = Standing(state.department or state.registration.department, state.registration.town)
    refusal = key.scope.refusal(command.kind, command.role, where.department, where.town)
    if refusal:
        raise OutOfScope(refusal)
    if state is not None and state.terminal:  # completed: only a repeat of an applied command is answered
        if state.applied_kinds.get(command.command_id) == command.kind:
            return CommandOutcome(command.command_id, True, "applied before")
        raise ItemConflict(f"item {item_id} has ended ({state.stage}); it takes no more commands")
    try:
        return await services.apply_item_command(gw.client, item_id, command)
    except RPCError as exc:  # it ended between the look and the update: answer as for an ended item
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
        return await apply(gw, key, item_id, body)
