"""Errors of the pure domain core (on top of ``events.errors``)."""

from __future__ import annotations

from events.errors import DubanError


class IllegalCommand(DubanError):
    """A command is not allowed in the item's current state; ``reason`` says why.

    Raised by the pure domain core (``workflows.item_rules``); the workflow turns it into a
    non-retryable ``ApplicationError`` of type ``IllegalCommand`` at its boundary.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
