"""JSON objects that repeat a key are refused: which of the values counts is up to the parser, and
duban does not guess (RFC 8259 §4 leaves it open). The one hook every strict decoder of duban uses."""

from __future__ import annotations

from typing import Any

from events.errors import ValidationError


class RepeatedKey(ValidationError):
    """A JSON object gives a key twice; ``field`` is the key."""


def refuse_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` for ``json.loads``: the object, or ``RepeatedKey`` for a repeated key."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise RepeatedKey(key, "is given twice")
        out[key] = value
    return out
