"""The named error hierarchy of duban.

Every error duban raises on purpose derives from :class:`DubanError`, so callers (the CLI, consumers,
activities) can tell an expected failure with a clear message from a bug.
"""

from __future__ import annotations


class DubanError(Exception):
    """Base of every error duban raises on purpose."""


class ConfigurationError(DubanError):
    """A configuration value is missing or invalid; the message names the setting and the reason."""


class StackError(DubanError):
    """The embedded stack cannot start or stop (port taken, binary missing, service not answering)."""


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


class EventValidationError(ValidationError):
    """An event (envelope or payload) is malformed: raised by the codec, never half-applied."""


class ImportRowError(ValidationError):
    """A row of a case-record export cannot become a supervision item (see ``duban.importers``)."""


class IllegalCommand(DubanError):
    """A command is not allowed in the item's current state; ``reason`` says why.

    Raised by the pure domain core (``workflows.item_rules``); the workflow turns it into a
    non-retryable ``ApplicationError`` of type ``IllegalCommand`` at its boundary.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
