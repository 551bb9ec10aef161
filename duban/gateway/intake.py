"""What integrators send, validated at the edge, and its translation into the domain's values.

The bodies are pydantic models in strict mode: nothing is coerced (a string is not a list, a float
is not a rating), unknown fields are refused, and a datetime must be an ISO-8601 text with a UTC
offset. ``registration_of`` routes a registration through the service catalogue (category × town →
department) and the rulebook (deadlines, policy); ``command_of`` builds the ``ItemCommand``, its
actor naming the integrator and the person it asserts (``<integrator>/<person>``). The domain's own
checks (``workflows.item_checks``) then run before anything reaches Temporal.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from duban.gateway.catalogue import TOWN_ATTRIBUTE, CatalogueVersion, Service
from events import bounds as b
from events.errors import ValidationError
from workflows.item_checks import check_registration, shape_problem
from workflows.item_model import ItemCommand, Registration
from workflows.item_policy import apply_rulebook
from workflows.rulebook import Rulebook

ITEM_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:~-]{0,127}$"
"""Item ids the gateway accepts: URL-safe, at most 128 characters (the workflow's own bound)."""
PERSON_PATTERN = r"^[^\x00-\x1f\x7f/]{1,95}$"
"""The person an integrator asserts: at most 95 characters, no ``/``, so ``<integrator>/<person>``
stays within the 128-character actor bound."""


def _iso_text(value: object) -> object:
    """Only an ISO-8601 text becomes a datetime (strict mode refuses numbers and naive texts)."""
    if not isinstance(value, str):
        raise ValueError("must be an ISO-8601 text with a UTC offset")
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("is not an ISO-8601 datetime") from None


def _bounded(bound: b.TextBound) -> Any:
    """A validator applying a text bound of ``events.bounds`` (length, no NUL, no control characters
    outside notes, no lone surrogates), so what the gateway keeps beside an item obeys the bounds
    the item's own fields do."""

    def check(value: str) -> str:
        problem = b.text_problem(value, bound)
        if problem is not None:
            raise ValueError(problem)
        return value

    return AfterValidator(check)


Instant = Annotated[AwareDatetime, BeforeValidator(_iso_text)]
Short = Annotated[str, StringConstraints(max_length=256), _bounded(b.LOCATION)]
Code = Annotated[str, StringConstraints(max_length=32), _bounded(b.CODE)]
Notes = Annotated[str, StringConstraints(max_length=4000), _bounded(b.NOTES)]
Coordinate = Annotated[float, Field(allow_inf_nan=False)]


class _Body(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)


class RegisterBody(_Body):
    """Register an item: what was found, where, when, reported by whom."""

    item_id: Annotated[str, StringConstraints(pattern=ITEM_ID_PATTERN)]
    service_code: Code = Field(description="a service of the catalogue (GET /v1/services)")
    town: Code = Field(description="a town of the catalogue's areas")
    reported_at: Instant = Field(description="when it was reported (ISO-8601 with offset)")
    actor: Annotated[str, StringConstraints(pattern=PERSON_PATTERN)] = Field(description="who reports it")
    community: Short = ""
    grid: Short = ""
    urgency: Annotated[str, StringConstraints(pattern=r"^(normal|urgent)$")] = "normal"
    description: Notes = ""
    address: Short = ""
    lat: Annotated[Coordinate, Field(ge=-90, le=90)] | None = None
    long: Annotated[Coordinate, Field(ge=-180, le=180)] | None = None
    attributes: Annotated[
        dict[Code, list[Annotated[str, StringConstraints(max_length=1000), _bounded(b.REFERENCE)]]],
        Field(max_length=20),
    ] = {}

    @model_validator(mode="after")
    def _both_coordinates(self) -> RegisterBody:
        if (self.lat is None) != (self.long is None):
            raise ValueError("lat and long go together")
        return self


class CommandBody(_Body):
    """A lifecycle command (the README's command table): the fields its kind needs."""

    command_id: Annotated[
        str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")
    ]
    kind: Code
    actor: Annotated[str, StringConstraints(pattern=PERSON_PATTERN)]
    role: Code
    occurred_at: Instant
    department: Short = ""
    unit: Short = ""
    notes: Annotated[str, StringConstraints(max_length=4000)] = ""
    evidence: Annotated[list[Annotated[str, StringConstraints(max_length=1024)]], Field(max_length=20)] = []
    passed: bool | None = Field(None, description="verify: whether the rectification passed (required)")
    reason: Annotated[str, StringConstraints(max_length=2000)] = ""
    location: Short = ""
    new_deadline: Instant | None = None
    into_item_id: Annotated[str, StringConstraints(max_length=128)] = ""
    departments: Annotated[list[Short], Field(max_length=20)] = []
    rating: Annotated[int, Field(ge=1, le=5)] | None = Field(None, description="rate_responder: 1 to 5")


def service_of(version: CatalogueVersion, code: str, field: str = "service_code") -> Service:
    """The catalogue's service ``code``.

    Raises:
        ValidationError: ``field``: no such service.
    """
    service = version.service(code)
    if service is None:
        raise ValidationError(field, f"{code!r} is not a service of catalogue {version.version}")
    return service


def checked_attributes(service: Service, given: dict[str, list[str]]) -> dict[str, list[str]]:
    """The request's attribute values, each checked against the service definition.

    Raises:
        ValidationError: ``attributes.<code>``: unknown to the service, missing, or a bad value.
    """
    known = {a.code for a in service.attributes} | {TOWN_ATTRIBUTE}
    for code in given:
        if code not in known:
            raise ValidationError(f"attributes.{code}", f"is not an attribute of service {service.code}")
    return {
        a.code: values
        for a in service.attributes
        if (values := a.check(given.get(a.code, []), f"attributes.{a.code}"))
    }


def registration_of(
    body: RegisterBody, version: CatalogueVersion, rulebook: Rulebook, integrator: str
) -> tuple[Registration, Service]:
    """The governed registration of ``body`` and its service, routed by catalogue ``version``.

    Raises:
        ValidationError: an unknown service or town, a bad attribute, a registration the item's own
            checks refuse (the field named as ``registration.<field>``), no rulebook version in force.
    """
    service = service_of(version, body.service_code)
    if version.area(body.town) is None:
        raise ValidationError("town", f"{body.town!r} is not one of the towns of catalogue {version.version}")
    checked_attributes(service, body.attributes)
    reg = Registration(
        item_id=body.item_id,
        category=service.category,
        category_group=service.group,
        reported_at=body.reported_at,
        department=version.route(service, body.town),
        town=body.town,
        community=body.community,
        grid=body.grid,
        zone=version.zone,
        source=integrator,
        actor=f"{integrator}/{body.actor}",
        urgency=body.urgency,
    )
    governed = apply_rulebook(reg, rulebook, version.calendar)
    check_registration(governed)
    return governed, service


def command_of(body: CommandBody, integrator: str) -> ItemCommand:
    """The ``ItemCommand`` of ``body``, asserted by ``integrator``.

    Raises:
        ValidationError: ``command``: out of the domain's bounds (``workflows.item_checks``).
    """
    if body.kind == "verify" and body.passed is None:
        raise ValidationError("passed", "is required for verify (true or false)")
    if body.kind == "rate_responder" and body.rating is None:
        raise ValidationError("rating", "is required for rate_responder (1 to 5)")
    data: dict[str, Any] = body.model_dump()
    data["actor"] = f"{integrator}/{body.actor}"
    data["passed"] = True if body.passed is None else body.passed
    data["rating"] = body.rating or 0
    command = ItemCommand(**data)
    problem = shape_problem(command)
    if problem is not None:  # "<field> <reason>", as the workflow words it
        field, _, reason = problem.partition(" ")
        raise ValidationError(field, reason)
    return command
