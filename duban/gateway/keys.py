"""Integrator credentials: API keys with scopes, stored hashed (``integrator_keys``).

A key reads ``dbk_<key id>_<secret>``: the key id (12 hex digits) names the row, the secret (43
URL-safe characters, 256 random bits) is shown once, at creation, and only its SHA-256 digest is
stored (a random 256-bit secret needs no slow hash; GitHub stores its tokens so). A scope says which
kinds (lifecycle command kinds, and ``register``) an integrator may send, which roles it may assert,
for which departments and towns; ``*`` allows any. The scope check is pure (``Scope.refusal``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Column, MetaData, String, Table, Text, insert, select, update
from sqlalchemy.engine import Engine

from events.errors import DubanError, ValidationError
from events.sql import UTCDateTime, create_schema
from workflows.item_model import CommandKind, Role

ANY = "*"
REGISTER = "register"
"""The scope kind that allows registering items (the others are ``CommandKind`` values)."""
SUBSCRIBE = "subscribe"
"""The scope kind that allows managing webhook subscriptions (``duban.gateway.webhooks``)."""
VIEW = "view"
"""The scope kind that opens the leaders' dashboard (``duban.gateway.dashboard``), read-only."""
KINDS = frozenset({REGISTER, SUBSCRIBE, VIEW, *(k.value for k in CommandKind)})
ROLES = frozenset(r.value for r in Role)
_KEY = re.compile(r"^dbk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,31}$")
INTEGRATOR = _NAME
"""An integrator's code: lower-case ASCII letters, digits, ``_.-``, at most 32 characters."""

metadata = MetaData()
integrator_keys = Table(
    "integrator_keys",
    metadata,
    Column("key_id", String(12), primary_key=True),
    Column("integrator", String(32), nullable=False),
    Column("secret_sha256", String(64), nullable=False),
    Column("scope", Text, nullable=False),  # JSON: {"kinds": [...], "roles": [...], ...}
    Column("created_at", UTCDateTime(), nullable=False),
    Column("revoked_at", UTCDateTime(), nullable=True),
)


class KeyRefused(DubanError):
    """A request's key is missing, unknown, malformed or revoked (HTTP 401)."""


class OutOfScope(DubanError):
    """The key is valid but its scope does not cover the request (HTTP 403); ``field`` names what
    (``kind``, ``role``, ``department``, ``town``) and the reason says why."""

    def __init__(self, reason: str, field: str = "scope") -> None:
        super().__init__(reason)
        self.field = field


@dataclass(frozen=True)
class Scope:
    """What a key may do: each a set of allowed values, ``{"*"}`` for any."""

    kinds: frozenset[str]
    roles: frozenset[str]
    departments: frozenset[str]
    towns: frozenset[str]

    @classmethod
    def of(cls, kinds: str, roles: str, departments: str, towns: str) -> Scope:
        """A scope from comma-separated lists (``"dispatch,accept"``, ``"*"``).

        Raises:
            ValidationError: an unknown kind or role, an empty list, a malformed department or town.
        """
        scope = cls(
            *(
                frozenset(p.strip() for p in v.split(",") if p.strip())
                for v in (kinds, roles, departments, towns)
            )
        )
        scope.check()
        return scope

    def check(self) -> None:
        """Raises ``ValidationError`` naming the field of a bad value (see ``of``)."""
        for name, known in (("kinds", KINDS), ("roles", ROLES), ("departments", None), ("towns", None)):
            values: frozenset[str] = getattr(self, name)
            if not values:
                raise ValidationError(name, "needs at least one value (* for any)")
            for value in values - {ANY}:
                if known is not None and value not in known:
                    raise ValidationError(name, f"{value!r} is not one of {', '.join(sorted(known))}")
                if known is None and not _NAME.match(value):
                    raise ValidationError(name, f"{value!r} is not a code (lower-case ASCII, at most 32)")

    def _allows(self, name: str, value: str) -> bool:
        values: frozenset[str] = getattr(self, name)
        return ANY in values or value in values

    def refusal(self, kind: str, role: str, department: str, town: str) -> str | None:
        """Why this scope does not cover a ``kind`` asserting ``role`` on an item of ``department``
        in ``town`` (``""`` for a role or place that does not apply), or ``None`` when it does."""
        checks = (("kinds", kind, "kind"), ("roles", role, "role"), ("departments", department, "department"))
        for name, value, what in (*checks, ("towns", town, "town")):
            if (value or name == "kinds") and not self._allows(name, value):
                return f"the key may not act on {what} {value!r}"
        return None

    def require(self, kind: str, role: str, department: str, town: str) -> None:
        """Raise ``OutOfScope`` naming the field this scope does not cover (see ``refusal``)."""
        checks = (("kinds", kind, "kind"), ("roles", role, "role"), ("departments", department, "department"))
        for name, value, what in (*checks, ("towns", town, "town")):
            if (value or name == "kinds") and not self._allows(name, value):
                raise OutOfScope(f"the key may not act on {what} {value!r}", what)

    def as_json(self) -> str:
        return json.dumps({k: sorted(getattr(self, k)) for k in ("kinds", "roles", "departments", "towns")})

    @classmethod
    def from_json(cls, text: str) -> Scope:
        data = json.loads(text)
        return cls(*(frozenset(data[k]) for k in ("kinds", "roles", "departments", "towns")))


@dataclass(frozen=True)
class IntegratorKey:
    """A stored key (never its secret): ``revoked_at`` is ``None`` while it is valid."""

    key_id: str
    integrator: str
    scope: Scope
    created_at: datetime
    revoked_at: datetime | None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class KeyStore:
    """The keys in the ``integrator_keys`` table of ``engine`` (created on first use)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        create_schema(engine, metadata)

    def create(self, integrator: str, scope: Scope, now: datetime | None = None) -> tuple[IntegratorKey, str]:
        """A new key for ``integrator`` (lower-case code, at most 32 characters) and its full text,
        which is shown once and stored only as a digest.

        Raises:
            ValidationError: a malformed integrator name or scope.
        """
        if not _NAME.match(integrator):
            raise ValidationError(
                "integrator", f"{integrator!r} is not a code (lower-case ASCII, at most 32)"
            )
        scope.check()
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        created = now or datetime.now(UTC)
        with self.engine.begin() as conn:
            conn.execute(
                insert(integrator_keys).values(
                    key_id=key_id,
                    integrator=integrator,
                    secret_sha256=_digest(secret),
                    scope=scope.as_json(),
                    created_at=created,
                    revoked_at=None,
                )
            )
        return IntegratorKey(key_id, integrator, scope, created, None), f"dbk_{key_id}_{secret}"

    def list(self) -> list[IntegratorKey]:
        """Every key, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(integrator_keys).order_by(integrator_keys.c.created_at)).all()
        return [self._of(row) for row in rows]

    @staticmethod
    def _of(row: object) -> IntegratorKey:
        r = row._mapping  # type: ignore[attr-defined]
        return IntegratorKey(
            r["key_id"], r["integrator"], Scope.from_json(r["scope"]), r["created_at"], r["revoked_at"]
        )

    def revoke(self, key_id: str, now: datetime | None = None) -> IntegratorKey:
        """Revoke ``key_id`` (revoking twice keeps the first time).

        Raises:
            ValidationError: no such key.
        """
        with self.engine.begin() as conn:
            conn.execute(
                update(integrator_keys)
                .where(integrator_keys.c.key_id == key_id, integrator_keys.c.revoked_at.is_(None))
                .values(revoked_at=now or datetime.now(UTC))
            )
            row = conn.execute(select(integrator_keys).where(integrator_keys.c.key_id == key_id)).first()
        if row is None:
            raise ValidationError("key_id", f"no key {key_id!r}")
        return self._of(row)

    def signing_key(self, key_id: str) -> tuple[IntegratorKey, bytes]:
        """The valid key ``key_id`` and its HMAC key (the stored digest of its secret), for checking
        the signature of a topic message (``duban.gateway.envelopes``).

        Raises:
            KeyRefused: unknown or revoked.
        """
        with self.engine.connect() as conn:
            row = conn.execute(select(integrator_keys).where(integrator_keys.c.key_id == key_id)).first()
        if row is None:
            raise KeyRefused(f"no key {key_id!r}")
        key = self._of(row)
        if key.revoked_at is not None:
            raise KeyRefused(f"the key {key.key_id} was revoked")
        return key, bytes.fromhex(row._mapping["secret_sha256"])

    def authenticate(self, presented: str | None) -> IntegratorKey:
        """The valid key whose full text is ``presented``.

        Raises:
            KeyRefused: none presented, malformed, unknown, wrong secret or revoked (the message never
                repeats the key).
        """
        if not presented:
            raise KeyRefused("an API key is required (header X-API-Key or Authorization: Bearer)")
        match = _KEY.match(presented)
        if match is None:
            raise KeyRefused("the API key is malformed")
        with self.engine.connect() as conn:
            row = conn.execute(select(integrator_keys).where(integrator_keys.c.key_id == match[1])).first()
        if row is None or not hmac.compare_digest(row._mapping["secret_sha256"], _digest(match[2])):
            raise KeyRefused("the API key is not known")
        key = self._of(row)
        if key.revoked_at is not None:
            raise KeyRefused(f"the API key {key.key_id} was revoked")
        return key
