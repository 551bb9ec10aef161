"""Command envelopes on the ``duban.commands`` topic: their schema, canonical form and signature.

An integrator publishes one JSON object per command, keyed by the item id (so the commands of an
item stay in order on one partition)::

    {"schema": "duban.command/1", "key_id": "<12 hex>", "item_id": "...",
     "registration": {...} | null, "command": {...}, "signature": "<64 hex>"}

``registration`` (the body of ``POST /v1/items``) makes the item if it does not exist yet;
``command`` is the body of ``POST /v1/items/{id}/commands``. ``signature`` is the HMAC-SHA256 of
the canonical body — the object without ``signature``, as JSON with sorted keys, no spaces, UTF-8
(``canonical_body``) — keyed by the SHA-256 digest of the integrator key's secret (the part after
the second ``_``), which is what duban stores of a key: the secret itself never leaves the
integrator. ``sign_envelope`` does it for Python integrators; the README shows it in the shell.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints
from pydantic import ValidationError as PydanticValidationError

from duban.gateway.intake import ITEM_ID_PATTERN, CommandBody, RegisterBody, _Body
from events.errors import ValidationError
from events.strict_json import refuse_repeated_keys

SCHEMA = "duban.command/1"
MAX_ENVELOPE_BYTES = 256 * 1024
"""Largest envelope accepted (a command within its bounds is a few kilobytes)."""


class CommandEnvelope(_Body):
    """One command on the topic (see the module docstring)."""

    schema_: Literal["duban.command/1"] = Field(alias="schema")
    key_id: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{12}$")]
    item_id: Annotated[str, StringConstraints(pattern=ITEM_ID_PATTERN)]
    registration: RegisterBody | None = None
    command: CommandBody
    signature: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


def canonical_body(envelope: dict[str, Any]) -> bytes:
    """The bytes that are signed: ``envelope`` without ``signature``, keys sorted, no spaces, UTF-8."""
    unsigned = {k: v for k, v in envelope.items() if k != "signature"}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def signing_key(key_text: str) -> bytes:
    """The HMAC key of an integrator key ``dbk_<id>_<secret>``: SHA-256 of the secret."""
    return hashlib.sha256(key_text.split("_", 2)[2].encode()).digest()


def signature_of(envelope: dict[str, Any], key: bytes) -> str:
    """The hex HMAC-SHA256 of ``canonical_body(envelope)`` under ``key``."""
    return hmac.new(key, canonical_body(envelope), hashlib.sha256).hexdigest()


def sign_envelope(envelope: dict[str, Any], key_text: str) -> dict[str, Any]:
    """``envelope`` with its ``key_id`` and ``signature`` set for the integrator key ``key_text``."""
    signed = dict(envelope) | {"key_id": key_text.split("_", 2)[1]}
    return signed | {"signature": signature_of(signed, signing_key(key_text))}


def parse_envelope(raw: bytes) -> tuple[dict[str, Any], CommandEnvelope]:
    """The JSON object and the validated envelope of a message's value.

    Raises:
        ValidationError: too large, not a JSON object, repeated keys, an unknown or missing field,
            a wrong type (``field``: its dotted path), a registration for another item.
    """
    if len(raw) > MAX_ENVELOPE_BYTES:
        raise ValidationError(
            "envelope", f"is {len(raw)} bytes long; at most {MAX_ENVELOPE_BYTES} are accepted"
        )

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError("envelope", f"is not UTF-8 (byte {exc.start})") from None
    try:
        data = json.loads(text, object_pairs_hook=refuse_repeated_keys)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ValidationError("envelope", f"is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValidationError("envelope", f"must be a JSON object, got {type(data).__name__}")
    try:
        envelope = CommandEnvelope.model_validate(data)
    except PydanticValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"]) or "envelope"
        raise ValidationError(field, str(error["msg"])) from None
    if envelope.registration is not None and envelope.registration.item_id != envelope.item_id:
        raise ValidationError("registration.item_id", "must be the envelope's item_id")
    return data, envelope
