"""The ``duban`` command line: ``app`` (``duban.cli.app``), its reporting, stack and calendar
commands (``reports``, ``stack``, ``calendars``) and what they share (``common``)."""

from duban.cli.app import app

__all__ = ["app"]
