"""``duban calendars list|draft``: the working calendars items run on, as versioned data."""

from __future__ import annotations

import re
from typing import Annotated

import typer

from duban.cli.common import errors
from events.bounds import iso_day
from events.errors import ValidationError
from events.working_calendar import CALENDARS

calendars_app = typer.Typer(
    help="The working calendars (events/calendars/*.yaml): list their versions, draft a new one.",
    no_args_is_help=True,
)


@calendars_app.command("list")
def list_versions() -> None:
    """Each calendar's versions: effective date, years covered, holidays and make-up days, source."""
    from events.working_calendar import CALENDARS, calendar_versions

    with errors():
        for name in CALENDARS:
            for v in calendar_versions(name):
                cal = v.calendar
                typer.echo(
                    f"{name}@{v.version}  from {v.effective_from}  years {v.years[0]}-{v.years[1]}  "
                    f"{len(cal.holidays)} holidays, {len(cal.makeup_workdays)} make-up days  ({v.source})"
                )


@calendars_app.command()
def draft(
    name: Annotated[str, typer.Argument(help="Calendar: china or us-ma.")],
    version: Annotated[str, typer.Option(help="The new version's name, e.g. 2027.1.")],
    effective_from: Annotated[str, typer.Option(help="First UTC day items registered get it, YYYY-MM-DD.")],
    years: Annotated[str, typer.Option(help="Years covered, FIRST-LAST.")] = "2010-2040",
) -> None:
    """Print a new version drafted from the installed ``holidays`` library, to review and append to
    ``events/calendars/NAME.yaml`` (items registered before keep their version)."""
    from duban.calendar_data import version_yaml
    from events.working_calendar import calendar_versions

    with errors():
        span = re.fullmatch(r"([0-9]{4})-([0-9]{4})", years)
        if span is None:
            raise ValidationError("years", f"{years!r} is not FIRST-LAST, e.g. 2010-2040")
        if not re.fullmatch(r"[0-9][0-9A-Za-z.\-]{0,15}", version):
            raise ValidationError("version", "must be 1 to 16 letters, digits, dots or dashes, from a digit")
        start = iso_day(effective_from)  # YYYY-MM-DD only, not 2027-W01-1
        if start is None:
            raise ValidationError("effective-from", f"{effective_from!r} is not a date (YYYY-MM-DD)")
        first, last = int(span[1]), int(span[2])
        existing = calendar_versions(name) if name in CALENDARS else ()
        if any(v.version == version for v in existing):
            raise ValidationError("version", f"{name}@{version} exists already; name the new version anew")
        if existing and start <= existing[-1].effective_from:
            latest = existing[-1]
            raise ValidationError(
                "effective-from",
                f"must be after {latest.effective_from}, when {name}@{latest.version} took effect",
            )
        if not first <= start.year <= last:
            raise ValidationError("effective-from", f"must lie in the years it covers, {first}-{last}")
        typer.echo(version_yaml(name, version, start, first, last), nl=False)
