"""The service catalogue as data: what integrators may report, where it is routed, Open311 services.

A catalogue (``catalogues/default.yaml``) holds versions, oldest first, like the rulebook: a request
is routed by the version in force when it is made. Each version names the towns a request may give,
the services (Open311 service code, names in Chinese and English, the rulebook category, group,
responsible department, keywords, the attributes of its Open311 service definition) and the routes
(category × town → department) that override a service's department in a town. Parsing is strict
(pydantic, unknown keys refused); every error names its key path. Pure: no I/O beyond reading the file.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints
from pydantic import ValidationError as PydanticValidationError

from events.errors import DocumentError, ValidationError

DEFAULT_CATALOGUE_PATH = Path(__file__).parent / "catalogues" / "default.yaml"
"""The catalogue shipped with duban (a sample city; a city replaces it with its own)."""

Code = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,31}$")]
"""A service, category, department or town code: lower-case ASCII, at most 32 characters."""
Text = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Datatype = Literal["string", "number", "datetime", "text", "singlevaluelist", "multivaluelist"]
"""The attribute datatypes of Open311 GeoReport v2 service definitions."""
TOWN_ATTRIBUTE = "town"
"""The attribute every service has: the town (街道/镇) of the problem, one of the version's areas."""


class CatalogueError(DocumentError):
    """A catalogue file is unreadable or invalid; ``field`` is the key path inside ``source``."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Names(_Strict):
    """A name in Chinese (``zh``) and English (``en``)."""

    zh: Text
    en: Text

    def get(self, lang: str) -> str:
        """The name in ``lang`` (``zh`` or anything else for English)."""
        return self.zh if lang.lower().startswith("zh") else self.en


class Value(_Strict):
    """One choice of a list attribute: ``key`` (sent) and ``name`` (shown)."""

    key: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    name: Text


class Attribute(_Strict):
    """An attribute of a service definition (Open311: ``code``, ``datatype``, ``required``…)."""

    code: Code
    datatype: Datatype
    required: bool = False
    description: Text
    datatype_description: str = ""
    values: list[Value] = []

    def check(self, raw: list[str], field: str) -> list[str]:
        """The values of this attribute in a request (``raw``: the form's values for it), checked.

        Raises:
            ValidationError: ``field``: missing when required, not one of the values, not a number,
                not an aware ISO-8601 datetime, or more than one value where one is expected.
        """
        values = [v for v in raw if v != ""]
        if not values:
            if self.required:
                raise ValidationError(field, "is required for this service")
            return []
        if self.datatype != "multivaluelist" and len(values) > 1:
            raise ValidationError(field, "takes one value")
        if len(values) > 20 or any(len(v) > 1000 for v in values):
            raise ValidationError(field, "takes at most 20 values of at most 1,000 characters")
        keys = {v.key for v in self.values}
        for value in values:
            if self.datatype in ("singlevaluelist", "multivaluelist") and value not in keys:
                raise ValidationError(field, f"must be one of {', '.join(sorted(keys))}, not {value!r}")
            if self.datatype == "number" and not _is_number(value):
                raise ValidationError(field, f"must be a number, not {value!r}")
            if self.datatype == "datetime" and not _is_aware(value):
                raise ValidationError(field, f"must be an ISO-8601 datetime with an offset, not {value!r}")
        return values


def _is_number(value: str) -> bool:
    try:
        return abs(float(value)) < 1e15
    except ValueError:
        return False


def _is_aware(value: str) -> bool:
    try:
        return datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False


def _list_values(attributes: list[Attribute]) -> list[Attribute]:
    for attr in attributes:
        is_list = attr.datatype.endswith("valuelist")
        if is_list != bool(attr.values):
            raise ValueError(f"attribute {attr.code}: values are for the list datatypes, and only them")
    if len({a.code for a in attributes}) != len(attributes):
        raise ValueError("attribute codes repeat")
    if any(a.code == TOWN_ATTRIBUTE for a in attributes):
        raise ValueError(f"{TOWN_ATTRIBUTE!r} is every service's own attribute; do not declare it")
    return attributes


class Service(_Strict):
    """One Open311 service: a kind of problem an integrator may report."""

    code: Code
    name: Names
    description: Text
    category: Code
    group: Code
    department: Code
    keywords: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] = []
    attributes: Annotated[list[Attribute], AfterValidator(_list_values)] = []


class Area(_Strict):
    """A town a request may name."""

    key: Code
    name: Names


class Route(_Strict):
    """Items of ``category`` in ``town`` go to ``department``."""

    category: Code
    town: Code
    department: Code


class CatalogueVersion(_Strict):
    """One version of the catalogue, in force from ``effective_from`` (aware)."""

    version: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    effective_from: AwareDatetime
    jurisdiction_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    zone: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    calendar: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    default_department: Code
    areas: list[Area] = Field(min_length=1)
    routes: list[Route] = []
    services: list[Service] = Field(min_length=1)

    def service(self, code: str) -> Service | None:
        """The service of ``code``, or ``None``."""
        return next((s for s in self.services if s.code == code), None)

    @property
    def departments(self) -> frozenset[str]:
        """Every department this version routes to: the default, the services' and the routes'."""
        return frozenset(
            {
                self.default_department,
                *(s.department for s in self.services),
                *(r.department for r in self.routes),
            }
        )

    def area(self, key: str) -> Area | None:
        """The town of ``key``, or ``None``."""
        return next((a for a in self.areas if a.key == key), None)

    def route(self, service: Service, town: str) -> str:
        """The department answering for ``service`` in ``town``: a route of the service's category in
        that town, else the service's department (else the version's default, never empty)."""
        for route in self.routes:
            if route.category == service.category and route.town == town:
                return route.department
        return service.department or self.default_department


class Catalogue(_Strict):
    """All versions, strictly increasing by ``effective_from``, with unique version ids."""

    versions: list[CatalogueVersion] = Field(min_length=1)

    def in_force(self, at: datetime) -> CatalogueVersion:
        """The version with the latest ``effective_from`` <= ``at`` (aware).

        Raises:
            ValidationError: ``at`` is before the first version.
        """
        chosen = [v for v in self.versions if v.effective_from <= at]
        if not chosen:
            first = self.versions[0]
            raise ValidationError("requested_datetime", f"is before catalogue {first.version} is in force")
        return chosen[-1]


def _location(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "catalogue"


def parse_catalogue(data: object, source: str) -> Catalogue:
    """Check and build a catalogue from parsed YAML.

    Raises:
        CatalogueError: ``field`` like ``versions[0].services[2].attributes[0].datatype``.
    """
    try:
        catalogue = Catalogue.model_validate(data)
    except PydanticValidationError as exc:
        error = exc.errors()[0]
        raise CatalogueError(source, _location(tuple(error["loc"])), str(error["msg"])) from None
    for i, version in enumerate(catalogue.versions):
        _check_version(version, f"versions[{i}]", source)
        if i and version.effective_from <= catalogue.versions[i - 1].effective_from:
            raise CatalogueError(source, f"versions[{i}].effective_from", "must be after the version before")
    ids = [v.version for v in catalogue.versions]
    if len(set(ids)) != len(ids):
        raise CatalogueError(source, "versions", "repeat a version id")
    return catalogue


def _check_version(version: CatalogueVersion, path: str, source: str) -> None:
    codes = [s.code for s in version.services]
    for name, keys in (("services", codes), ("areas", [a.key for a in version.areas])):
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        if repeated:
            raise CatalogueError(source, f"{path}.{name}", f"repeat the codes {', '.join(repeated)}")
    towns = {a.key for a in version.areas}
    for i, route in enumerate(version.routes):
        if route.town not in towns:
            raise CatalogueError(
                source, f"{path}.routes[{i}].town", f"{route.town!r} is not one of the areas"
            )
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(version.zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise CatalogueError(source, f"{path}.zone", f"{version.zone!r} is not an IANA time zone") from None


def load_catalogue(path: Path = DEFAULT_CATALOGUE_PATH) -> Catalogue:
    """Read and check the YAML catalogue at ``path`` (``yaml.safe_load``); see :func:`parse_catalogue`."""
    source = str(path)
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise CatalogueError(source, "catalogue", f"cannot be read: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise CatalogueError(source, "catalogue", f"is not valid YAML: {exc}") from exc
    return parse_catalogue(data, source)
