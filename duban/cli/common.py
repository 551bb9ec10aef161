"""Shared parts of the ``duban`` command line: option types, error handling, running coroutines."""

from __future__ import annotations

import asyncio
import gc
import os
import sys
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from duban.errors import ConfigurationError
from events.errors import DubanError

T = TypeVar("T")


class Level(StrEnum):
    """Levels of the read models a report is by."""

    department = "department"
    district = "district"
    town = "town"
    community = "community"
    grid = "grid"
    category = "category"
    order = "order"


class Format(StrEnum):
    """Output formats of the reports."""

    table = "table"
    csv = "csv"
    json = "json"


class NoDeadline(StrEnum):
    """How closed items without a deadline enter the on-time figures."""

    exclude = "exclude"
    on_time = "on_time"


class Lang(StrEnum):
    """Languages of the office's documents and ledger."""

    zh_CN = "zh-CN"
    en = "en"


class Cancelled(StrEnum):
    """Whether cancelled and merged items stay in the registered base."""

    exclude = "exclude"
    include = "include"


PERIOD_HELP = "2022-05, 2022-05-H1, 2022-W19, 2022 or 2022-05-03."
FormatOpt = Annotated[Format, typer.Option("--format", help="Output format.")]
NoDeadlineOpt = Annotated[
    NoDeadline, typer.Option(help="Closed items without a deadline: excluded or on time.")
]
CancelledOpt = Annotated[
    Cancelled, typer.Option(help="Cancelled and merged items in the registered base: excluded or included.")
]
DatabaseOpt = Annotated[str | None, typer.Option(help="Read-model database (default: configured).")]
OutputOpt = Annotated[Path | None, typer.Option(help="Write to this file instead of stdout.")]


def fail(exc: Exception) -> typer.Exit:
    """Print ``error: <exc>`` on stderr; the exit (status 2) to raise."""
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(2)


@contextmanager
def errors() -> Iterator[None]:
    """Turn expected failures into ``error: …`` on stderr and exit status 2 (no traceback).

    Expected: duban's own errors, file-system errors (missing file, a folder given for a file),
    database errors (unreachable server, not a database), a Kafka broker and a Temporal server that
    do not answer.
    """
    from aiokafka.errors import KafkaError
    from sqlalchemy.exc import SQLAlchemyError

    try:
        yield
    except BrokenPipeError:  # the reader went away (`duban keys list | head`): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise typer.Exit(0) from None
    except (DubanError, OSError) as exc:
        raise fail(exc) from None
    except KafkaError as exc:
        raise fail(Exception(f"kafka: {exc}")) from None
    except SQLAlchemyError as exc:
        raise fail(Exception(f"database: {str(exc).splitlines()[0]}")) from None
    except RuntimeError as exc:
        if not str(exc).startswith("Failed client connect"):
            raise
        raise fail(Exception(f"temporal: {str(exc).splitlines()[0]}")) from None


def writable_file(path: Path | None, option: str) -> None:
    """Fail early (before a long run) if ``path`` cannot be written: its folder must exist."""
    if path is not None and (path.is_dir() or not path.parent.is_dir()):
        raise ConfigurationError(f"{option}: cannot write {path} (not a file in an existing folder)")


def run_async(coro: Coroutine[Any, Any, T], temporal: bool = True) -> T:
    """Run a coroutine; when it may have made Temporal clients (``temporal``), collect garbage before
    the loop closes (temporalio teardown, sdk-python#300). A full collection costs in proportion to
    the heap (0.1–0.3 s in a large process): commands that never reach Temporal pass ``False``."""

    async def wrapped() -> T:
        try:
            return await coro
        finally:
            if temporal:
                gc.collect()

    return asyncio.run(wrapped())
