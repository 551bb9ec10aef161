"""``duban ledger``: the problem ledger (问题台账) as CSV or XLSX, streamed (``duban.ledger``)."""

from __future__ import annotations

import contextlib
import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from duban.cli.common import PERIOD_HELP, DatabaseOpt, Lang, errors, writable_file
from duban.config import load_settings
from duban.errors import ConfigurationError


class LedgerFormat(StrEnum):
    """File formats of the ledger."""

    csv = "csv"
    xlsx = "xlsx"


class Stage(StrEnum):
    """Stages an item can be in (``open``: not closed out, cancelled or merged; ``suspended``: 挂账,
    its clock stopped)."""

    open = "open"
    registered = "registered"
    dispatched = "dispatched"
    accepted = "accepted"
    rectified = "rectified"
    verified = "verified"
    closed = "closed"
    cancelled = "cancelled"
    merged = "merged"
    suspended = "suspended"


class Light(StrEnum):
    """Clock-time traffic lights (``projections.lights``)."""

    green = "green"
    yellow = "yellow"
    red = "red"


def output_format(given: LedgerFormat | None, output: Path | None) -> str:
    """The format to write: ``given``, else the one ``output``'s suffix names, else CSV on stdout.

    Raises:
        ConfigurationError: field ``format`` (a suffix naming neither) or ``output`` (XLSX without it).
    """
    if given is None and output is not None:
        suffix = output.suffix.lower().lstrip(".")
        if suffix not in ("csv", "xlsx"):
            raise ConfigurationError(
                f"format: cannot tell it from the output's suffix {output.suffix or '(none)'!r}; "
                "give --format csv or --format xlsx"
            )
        return suffix
    fmt = (given or LedgerFormat.csv).value
    if fmt == "xlsx" and output is None:
        raise ConfigurationError("output: an XLSX ledger is written to a file: give --output PATH")
    return fmt


def ledger(
    period: Annotated[str | None, typer.Option(help=f"Registered in this period: {PERIOD_HELP}")] = None,
    department: Annotated[str | None, typer.Option(help="Only this department's items.")] = None,
    town: Annotated[str | None, typer.Option(help="Only this town or sub-district.")] = None,
    community: Annotated[str | None, typer.Option(help="Only this community or village.")] = None,
    district: Annotated[str | None, typer.Option(help="Only this leader-owned district.")] = None,
    category: Annotated[str | None, typer.Option(help="Only this category.")] = None,
    stage: Annotated[
        Stage | None,
        typer.Option(
            help="Only items in this stage (open: not closed out, cancelled or merged; suspended is open)."
        ),
    ] = None,
    light: Annotated[Light | None, typer.Option(help="Only items with this clock-time light.")] = None,
    overdue: Annotated[
        bool | None, typer.Option("--overdue/--no-overdue", help="Only overdue, or only not overdue, items.")
    ] = None,
    fmt: Annotated[
        LedgerFormat | None,
        typer.Option("--format", help="csv or xlsx (default: from --output's suffix, else csv)."),
    ] = None,
    lang: Annotated[Lang, typer.Option(help="Language of headers and values: zh-CN or en.")] = Lang.zh_CN,
    output: Annotated[
        Path | None, typer.Option(help="Write to this file (required for xlsx; csv: stdout without it).")
    ] = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Export the problem ledger: every item of a period or filter, one row each, with its unit, areas,
    stage, light, deadline, days overdue and who closed it out when (local time and UTC)."""
    from duban.ledger import export_ledger
    from projections.ledger import LedgerFilter

    flt = LedgerFilter(
        period=period,
        department=department or "",
        town=town or "",
        community=community or "",
        district=district or "",
        category=category or "",
        stage=stage.value if stage else "",
        light=light.value if light else "",
        overdue=overdue,
    )
    with errors():
        chosen = output_format(fmt, output)
        writable_file(output, "output")
        flt.check()
        url = database_url or load_settings().database
        if output is None:
            export_ledger(url, flt, chosen, lang.value, typer.get_binary_stream("stdout"))
            return
        partial = output.with_name(f".{output.name}.{os.getpid()}.part")
        try:  # a failed export leaves no half-written ledger where the old one was
            count = export_ledger(url, flt, chosen, lang.value, partial)
            partial.replace(output)
        finally:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
    typer.echo(f"ledger: {count} items written to {output}")
