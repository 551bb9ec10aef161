"""Strict decoding of what clients send an item: its start input, its signals and its updates.

Temporal's default JSON converter coerces values to the handler's types (a string where a list is
expected becomes a list of characters, a float rating an int) and cannot refuse what it cannot
decode: a start input it cannot decode fails the workflow task again and again (the item is wedged)
and a signal it cannot decode is dropped with a log line. So the item workflow takes raw payloads
(``temporalio.common.RawValue``) and decodes them here, with pydantic in strict mode: nothing is
coerced, an unknown field or a repeated key is refused, and every refusal is a
``events.errors.ValidationError`` naming the field (``registration.reported_at``,
``initial_commands.0.evidence``…). Pure (no I/O); the adapters are built once, at import.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from typing import Any, TypeVar

from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError
from temporalio.api.common.v1 import Payload

from events.bounds import MAX_EVENT_BYTES
from events.errors import ValidationError
from events.strict_json import refuse_repeated_keys
from workflows.item_model import ItemCommand

T = TypeVar("T")

MAX_COMMAND_BYTES = MAX_EVENT_BYTES
"""Largest command payload: a command within its bounds encodes to well under this."""
MAX_INPUT_BYTES = 2 * 1024 * 1024
"""Largest start input (Temporal's own payload limit): it may carry a continued item's state."""

_ADAPTERS: dict[type, TypeAdapter[Any]] = {}


def _adapter(tp: type[T]) -> TypeAdapter[T]:
    adapter = _ADAPTERS.get(tp)
    if adapter is None:
        adapter = _ADAPTERS[tp] = TypeAdapter(tp)
    return adapter


def _dataclass_of(hint: Any) -> type | None:
    """The dataclass in ``hint`` (``X``, ``X | None``), or ``None``."""
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return hint
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        found = [a for a in typing.get_args(hint) if dataclasses.is_dataclass(a)]
        return found[0] if len(found) == 1 and isinstance(found[0], type) else None
    return None


@functools.cache
def _hints(tp: type) -> dict[str, Any]:
    """The resolved field types of dataclass ``tp`` (``typing.get_type_hints`` is costly: once per type)."""
    return typing.get_type_hints(tp)


def _unknown_field(tp: type, data: Any, path: str) -> str | None:
    """The dotted path of the first key of ``data`` that no field of dataclass ``tp`` (or of the
    dataclasses nested in it, in lists too) declares, or ``None``."""
    if not isinstance(data, dict):
        return None
    hints = _hints(tp)
    for key in data:
        if key not in hints:
            return f"{path}{key}"
    for name, hint in hints.items():
        value = data.get(name)
        nested = _dataclass_of(hint)
        if nested is not None:
            found = _unknown_field(nested, value, f"{path}{name}.")
        elif typing.get_origin(hint) is list and isinstance(value, list):
            [item] = typing.get_args(hint) or [None]
            inner = _dataclass_of(item)
            found = next(
                (
                    f
                    for i, v in enumerate(value)
                    if inner and (f := _unknown_field(inner, v, f"{path}{name}.{i}."))
                ),
                None,
            )
        else:
            found = None
        if found:
            return found
    return None


def decode_json(data: bytes, tp: type[T], what: str, max_bytes: int) -> T:
    """Decode JSON ``data`` into dataclass ``tp`` strictly (see the module docstring).

    Raises:
        ValidationError: ``what`` (e.g. ``"command"``) is too large, not a JSON object, or repeats a
            key; a field is unknown, missing or of the wrong type (field: its dotted path).
    """
    if len(data) > max_bytes:
        raise ValidationError(what, f"is {len(data)} bytes long; at most {max_bytes} are accepted")
    try:
        parsed = json.loads(data, object_pairs_hook=refuse_repeated_keys)
    except ValidationError as exc:
        raise ValidationError(f"{what}.{exc.field}", exc.reason) from None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValidationError(what, f"is not valid UTF-8 JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise ValidationError(what, f"must be a JSON object, got {type(parsed).__name__}")
    unknown = _unknown_field(tp, parsed, "")
    if unknown is not None:
        raise ValidationError(unknown, "is not a field of " + what)
    try:
        return _adapter(tp).validate_json(data, strict=True)
    except PydanticValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"]) or what
        message = str(error["msg"])
        raise ValidationError(field, message[:1].lower() + message[1:]) from None


def payload_data(payload: Payload, what: str) -> bytes:
    """The JSON bytes of a Temporal payload.

    Raises:
        ValidationError: the payload is not JSON (``json/plain``), e.g. null or binary.
    """
    encoding = payload.metadata.get("encoding", b"")
    if encoding != b"json/plain":
        raise ValidationError(
            what, f"must be a JSON object (payload encoding {encoding.decode(errors='replace')!r})"
        )
    return payload.data


def decode_command(payload: Payload) -> ItemCommand:
    """The ``ItemCommand`` of a signal's or an update's payload, decoded strictly.

    Raises:
        ValidationError: as ``decode_json``.
    """
    return decode_json(payload_data(payload, "command"), ItemCommand, "command", MAX_COMMAND_BYTES)


def command_id_of(payload: Payload) -> str:
    """The ``command_id`` of an undecodable command when it has a usable one (a string of at most
    128 characters), else ``""``: the refusal is listed under it."""
    try:
        data = json.loads(payload.data) if len(payload.data) <= MAX_COMMAND_BYTES else None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return ""
    value = data.get("command_id") if isinstance(data, dict) else None
    return value if isinstance(value, str) and len(value) <= 128 and "\x00" not in value else ""
