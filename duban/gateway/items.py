"""The gateway's use cases on items, shared by every way in (duban's API, Open311, later the topic).

Each takes the ``Gateway``, the integrator's authenticated key and a validated body; it checks the
key's scope, then calls the service layer (``duban.services``). Errors: ``OutOfScope`` (403),
``ItemNotFound`` (404), ``ItemConflict`` (409: registered before with other values, or ended),
``CommandRefused`` (409 illegal now / 422 malformed), ``ValidationError`` (422).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from duban import services
from duban.gateway.context import Gateway
from duban.gateway.intake import CommandBody, RegisterBody, command_of, registration_of
from duban.gateway.keys import REGISTER, IntegratorKey
from events import bounds
from events.errors import DubanError, ValidationError
from workflows import search_attributes as sa
from workflows.item_client import item_workflow_id
from workflows.item_model import CommandOutcome, ItemCommand, ItemState, Registration
from workflows.item_workflow import ItemWorkflowInput

QUERY_TIMEOUT = timedelta(seconds=10)
"""How long a read waits for a worker to answer the item's ``state`` query."""
COMMAND_TIMEOUT_S = 30.0
"""How long a command waits for its outcome; then 503, and the same command id sent again learns it."""


class ItemNotFound(DubanError):
    """No item has this id."""


class ItemConflict(DubanError):
    """The item id is taken: registered with other values (``field`` names the first that differs),
    or its item has ended."""

    def __init__(self, reason: str, field: str = "item_id") -> None:
        super().__init__(reason)
        self.field = field


def check_departments(gw: Gateway, key: IntegratorKey, command: ItemCommand, town: str) -> None:
    """The departments a command names (a dispatch's, a report-in's, a grid call's) must be
    departments of the catalogue in force and within the key's scope: a key limited to parks cannot
    send an item to transport.

    Raises:
        ValidationError: an unknown department (field named). OutOfScope: outside the scope.
    """
    known = gw.catalogue.in_force(datetime.now(UTC)).departments
    named = [("department", command.department)] if command.department else []
    named += [(f"departments.{i}", d) for i, d in enumerate(command.departments)]
    for field, department in named:
        if department not in known:
            raise ValidationError(field, f"{department!r} is not a department of the service catalogue")
        key.scope.require(command.kind, command.role, department, town)


@dataclass
class Registered:
    """The outcome of a registration: ``created`` is False when the item was registered before."""

    item_id: str
    created: bool
    registration: Registration


def shown(item_id: str) -> str:
    """``item_id`` as a refusal shows it: at most ``events.bounds.IDENTIFIER``'s length (a longer
    one, which no item has, is cut and says by how much), so a refusal never echoes a huge input."""
    return bounds.clipped(item_id, bounds.IDENTIFIER.max_chars)


async def item_state(gw: Gateway, item_id: str) -> ItemState:
    """The item's state as its workflow holds it (a closed item's too, while Temporal keeps it).

    Raises:
        ItemNotFound: no workflow ``item-<item_id>``.
    """
    handle = gw.client.get_workflow_handle(item_workflow_id(item_id))
    try:
        state: ItemState | None = await handle.query(
            "state", result_type=ItemState, rpc_timeout=QUERY_TIMEOUT
        )
    except RPCError as exc:
        if exc.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
            raise ItemNotFound(f"no item {shown(item_id)!r}") from None
        raise
    if state is None:  # the workflow has not run its first task yet
        raise ItemNotFound(f"item {shown(item_id)!r} is being registered; ask again in a moment")
    return state


async def _status(gw: Gateway, item_id: str) -> WorkflowExecutionStatus | None:
    try:
        described = await gw.client.get_workflow_handle(item_workflow_id(item_id)).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    return described.status


_SAME = ("category", "town", "reported_at", "department", "community", "grid", "urgency", "actor")
_SAME_EXTRAS = ("service_code", "description", "address", "lat", "long", "media_url", "attributes")


def _differs(
    stored: Registration, reg: Registration, kept: dict[str, Any] | None, row: dict[str, Any]
) -> str:
    """The first field in which a repeated registration differs from the stored one (``""``: none)."""
    for name in _SAME:
        if getattr(stored, name) != getattr(reg, name):
            return name
    for name in _SAME_EXTRAS if kept is not None else ():
        if kept is not None and kept.get(name) != row.get(name):
            return name
    return ""


async def register(gw: Gateway, key: IntegratorKey, body: RegisterBody, extras: dict[str, Any]) -> Registered:
    """Register the item of ``body`` and keep its Open311 ``extras``. Idempotent by item id: the
    same registration again (every field the same) answers ``created`` False; of concurrent ones,
    exactly one is created.

    Raises:
        ValidationError, OutOfScope, ItemConflict (registered before with another value of the field
        named, or ended; see the module docstring).
    """
    version = gw.catalogue.in_force(datetime.now(UTC))
    reg, service = registration_of(body, version, gw.rulebook, key.integrator)
    key.scope.require(REGISTER, "", reg.department, reg.town)
    row = {"item_id": reg.item_id, "service_code": service.code, "integrator": key.integrator} | extras
    try:
        created = await services.register_new_item(
            gw.client, ItemWorkflowInput(reg, []), gw.settings.task_queue
        )
    except services.ItemEnded as exc:
        raise ItemConflict(str(exc)) from None
    if not created:
        stored = (await item_state(gw, reg.item_id)).registration
        kept = gw.requests_of([reg.item_id]).get(reg.item_id)
        field = _differs(stored, reg, kept, row | {"attributes": row.get("attributes", {})})
        if field:
            raise ItemConflict(f"item {reg.item_id} was registered before with another {field}", field)
    gw.save_request(row)
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
        key.scope.require(kind, role, reg.department, reg.town)
    check_departments(gw, key, command, reg.town)
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
            raise ItemNotFound(f"no item {shown(item_id)!r}") from None
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
    key.scope.require(command.kind, command.role, where.department, where.town)
    check_departments(gw, key, command, where.town)
    if state is not None and state.terminal:  # completed: only a repeat of an applied command is answered
        if state.applied_kinds.get(command.command_id) == command.kind:
            return CommandOutcome(command.command_id, True, "applied before")
        raise ItemConflict(f"item {item_id} has ended ({state.stage}); it takes no more commands")
    try:
        return await asyncio.wait_for(
            services.apply_item_command(gw.client, item_id, command), COMMAND_TIMEOUT_S
        )
    except TimeoutError:
        raise TimeoutError(
            f"no worker answered within {COMMAND_TIMEOUT_S:.0f} s; "
            "send the same command_id again to learn its outcome"
        ) from None
    except RPCError as exc:  # it ended between the look and the update: answer as for an ended item
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
        return await apply(gw, key, item_id, body)
