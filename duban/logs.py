"""structlog set-up for the CLI, workers and consumers (stderr, human-readable or JSON)."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator

import structlog

from duban.errors import ConfigurationError


def configure_logging(level: str | None = None, json: bool | None = None) -> None:
    """Log to stderr at ``level`` (default ``DUBAN_LOG_LEVEL`` or WARNING); JSON if ``DUBAN_LOG_JSON=1``."""
    level_name = (level or os.environ.get("DUBAN_LOG_LEVEL") or "WARNING").upper()
    as_json = json if json is not None else os.environ.get("DUBAN_LOG_JSON") == "1"
    levels = logging.getLevelNamesMapping()
    if level_name not in levels:
        raise ConfigurationError(f"log level {level_name!r} is unknown (use DEBUG, INFO, WARNING or ERROR)")
    numeric = levels[level_name]
    renderer = structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        # Resolve sys.stderr at each use: test runners and tools swap it after configuration.
        logger_factory=lambda *_: structlog.PrintLogger(sys.stderr),
    )


@contextlib.contextmanager
def quiet_logger(logger_name: str) -> Iterator[None]:
    """Silence a library's log records (below CRITICAL) for the duration of the block."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)
