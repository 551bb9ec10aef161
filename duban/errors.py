"""Errors of the entry points and their wiring (on top of ``events.errors``, the common base)."""

from __future__ import annotations

from events.errors import DubanError, ValidationError


class ConfigurationError(DubanError):
    """A configuration value is missing or invalid; the message names the setting and the reason."""


class StackError(DubanError):
    """The embedded stack cannot start or stop (port taken, binary missing, service not answering)."""


class ImportRowError(ValidationError):
    """A row of a case-record export cannot become a supervision item (see ``duban.importers``)."""
