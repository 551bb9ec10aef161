"""The base of duban's named error hierarchy, reachable from every layer.

Every error duban raises on purpose derives from :class:`DubanError`, so callers (the CLI, consumers,
activities) can tell an expected failure with a clear message from a bug. Each layer defines the
errors it raises on top of these: ``workflows.errors`` (``IllegalCommand``), ``duban.errors``
(configuration, the embedded stack, import rows).
"""

from __future__ import annotations


class DubanError(Exception):
    """Base of every error duban raises on purpose."""


class ValidationError(DubanError):
    """Input failed validation. ``field`` is the dotted path of the offending field.

    Args:
        field: dotted field path, e.g. ``"payload.deadline"``.
        reason: human-readable reason, e.g. ``"must be a UTC ISO-8601 datetime"``.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class DocumentError(ValidationError):
    """A document of rules as data (a rulebook, a service catalogue…) is invalid: ``field`` is the key
    path inside it, ``source`` names the document (its path)."""

    def __init__(self, source: str, field: str, reason: str) -> None:
        super().__init__(field, reason)
        self.source = source
        self.args = (f"{source}: {field}: {reason}",)


class EventValidationError(ValidationError):
    """An event (envelope or payload) is malformed: raised by the codec, never half-applied."""


class TopicsUnavailable(DubanError):
    """The broker cannot be reached or refuses to create duban's topics (``events.topics``)."""
