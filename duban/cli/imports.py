"""``duban import-report`` and ``duban profile``: reading exports with profiles, and drafting one."""

from __future__ import annotations

import csv
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from duban.cli.common import errors, writable_file

ProfileOpt = Annotated[
    str, typer.Option(help="Built-in import profile: boston311, la311 or open311 (see duban profile list).")
]
ProfileFileOpt = Annotated[
    Path | None,
    typer.Option(help="A profile YAML you wrote (or duban profile draft did); wins over --profile."),
]
ServicesOpt = Annotated[
    Path | None, typer.Option(help="Open311 services.json: each service_code's group, for open311 imports.")
]
ZoneOpt = Annotated[str | None, typer.Option(help="The area's IANA zone, replacing the profile's.")]

profile_app = typer.Typer(
    help="Import profiles: list the built-in ones, show one, draft one for a new export.",
    no_args_is_help=True,
)


def import_report(
    path: Annotated[Path, typer.Argument(help="Case-record export (CSV, or Open311 JSON or XML).")],
    profile: ProfileOpt = "boston311",
    profile_file: ProfileFileOpt = None,
    services: ServicesOpt = None,
    zone: ZoneOpt = None,
    rejected: Annotated[
        Path | None, typer.Option(help="Also write every refused row here (CSV: row, column, reason).")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar (stderr).")] = True,
) -> None:
    """Read an export with a profile; count the items and group the refused rows by column and reason."""
    from tqdm import tqdm

    from duban.importers.base import ImportedCase
    from duban.importers.profiles import load_profile, read_outcomes, with_zone
    from duban.importers.report import ImportReport

    report = ImportReport()
    with errors():
        writable_file(rejected, "rejected")
        spec = with_zone(load_profile(profile, profile_file), zone)
        size = os.path.getsize(path) if Path(path).is_file() else None
        show = progress and sys.stderr.isatty()
        with tqdm(total=size, unit="B", unit_scale=True, disable=not show, file=sys.stderr) as bar:
            out = rejected.open("w", newline="", encoding="utf-8") if rejected else None
            try:
                writer = csv.writer(out) if out else None
                if writer:
                    writer.writerow(["row", "column", "reason", "skipped"])
                for outcome in read_outcomes(spec, path, services, bar.update if show else None):
                    report.add(outcome)
                    if writer and not isinstance(outcome, ImportedCase):
                        writer.writerow([outcome.row_number, outcome.field, outcome.reason, outcome.skipped])
            finally:
                if out:
                    out.close()
    for line in report.lines("row" if spec.format == "csv" else "record"):
        typer.echo(line)


@profile_app.command("list")
def list_profiles() -> None:
    """The built-in profiles, with what each reads."""
    from duban.importers.profiles import builtin_profiles

    for name, spec in builtin_profiles().items():
        typer.echo(f"{name:<10} {spec.format:<4} {spec.zone:<20} {spec.description.split('. ')[0]}")


@profile_app.command("show")
def show_profile(name: Annotated[str, typer.Argument(help="A built-in profile's name.")]) -> None:
    """Print a built-in profile's YAML: a start for writing your own."""
    from duban.importers.profiles import BUILTIN, load_profile

    with errors():
        load_profile(name)
    typer.echo((BUILTIN / f"{name}.yaml").read_text(encoding="utf-8"), nl=False)


@profile_app.command("check")
def check_profile(path: Annotated[Path, typer.Argument(help="A profile YAML.")]) -> None:
    """Check a profile file without reading an export: prints its name or the first problem."""
    from duban.importers.profile_spec import load_profile_file

    with errors():
        spec = load_profile_file(path)
    typer.echo(f"{path}: profile {spec.name} ({spec.format}, {spec.zone}) is valid")


@profile_app.command("draft")
def draft(
    path: Annotated[Path, typer.Argument(help="The export to draft a profile for (CSV or a JSON array).")],
    output: Annotated[Path | None, typer.Option(help="Write the draft here (default: stdout).")] = None,
    name: Annotated[str, typer.Option(help="The profile's name (lower case, digits, - and _).")] = "draft",
    zone: ZoneOpt = None,
    sample: Annotated[int, typer.Option(min=10, max=100_000, help="Rows to read for the guesses.")] = 2000,
) -> None:
    """Draft a profile from the header and a sample of rows, with a comment on every guess."""
    import re

    from duban.errors import ConfigurationError
    from duban.importers.profile_spec import zone_problem
    from duban.importers.wizard import draft_profile

    with errors():
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", name):
            raise ConfigurationError(
                f"name: {name!r} must be lower case letters, digits, - and _ (at most 64)"
            )
        if zone is not None and (problem := zone_problem(zone)):
            raise ConfigurationError(f"zone: {problem}")
        writable_file(output, "output")
        text = draft_profile(path, name=name, zone=zone, sample=sample)
    if output:
        output.write_text(text, encoding="utf-8")
        typer.echo(
            f"{output}: a draft profile; check the comments, then "
            f"duban import-report {path} --profile-file {output}"
        )
    else:
        typer.echo(text, nl=False)
