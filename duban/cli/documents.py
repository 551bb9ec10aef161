"""``duban report weekly|half-monthly|monthly|list|fetch``: the office's documents."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from duban.cli.common import DatabaseOpt, Lang, errors, writable_file
from duban.config import load_settings
from duban.errors import ConfigurationError

report_app = typer.Typer(
    help="The office's documents: weekly notices, half-monthly reports, monthly notices.",
    no_args_is_help=True,
)


class DocFormat(StrEnum):
    docx = "docx"
    xlsx = "xlsx"
    html = "html"
    pdf = "pdf"


PeriodOpt = Annotated[
    str, typer.Option(help="The period: 2022-W19 (weekly), 2022-05-H1 (half-monthly), 2022-05.")
]
FormatOpt = Annotated[
    DocFormat | None,
    typer.Option("--format", help="docx, xlsx, html or pdf (default: the output's suffix, else html)."),
]
LangOpt = Annotated[Lang | None, typer.Option(help="zh-CN or en (default: the documents_lang setting).")]
OutputOpt = Annotated[Path | None, typer.Option(help="Write here (html may go to stdout).")]
TemplateOpt = Annotated[
    Path | None, typer.Option(help="Document template YAML (default: the setting, or built in).")
]


def _write(
    kind: str,
    period: str,
    fmt: DocFormat | None,
    lang: Lang | None,
    output: Path | None,
    template: Path | None,
    database_url: str | None,
) -> None:
    from duban.documents.service import report

    with errors():
        settings = load_settings()  # a bad setting (DUBAN_DOCUMENTS_LANG=fr) is an error, not a traceback
        writable_file(output, "output")
        chosen = (
            fmt.value if fmt else (output.suffix.lstrip(".").lower() if output and output.suffix else "html")
        )
        if chosen not in DocFormat.__members__:
            raise ConfigurationError(
                f"format: cannot tell it from the output's suffix {output.suffix if output else ''!r}; "
                "give --format docx, xlsx, html or pdf"
            )
        if chosen != "html" and output is None:
            raise ConfigurationError(
                f"output: a {chosen} document is binary and is not written to the terminal: "
                "give --output PATH (only html goes to stdout)"
            )
        template = template or (Path(settings.documents_template) if settings.documents_template else None)
        chosen_lang = lang.value if lang else settings.documents_lang
        if chosen_lang.startswith("zh") and chosen != "html":  # html leaves the fonts to the browser
            from duban.documents.charts import cjk_font_missing

            if (missing := cjk_font_missing()) is not None:
                typer.echo(f"warning: {missing}", err=True)
        done = report(
            database_url or settings.database,
            kind,
            period,
            chosen,
            chosen_lang,
            template,
        )
        if output is None:
            typer.echo(done.content.decode("utf-8"), nl=False)
            return
        output.write_bytes(done.content)
    notice = done.notice
    state = "provisional (period open)" if notice.provisional else f"closed, events hash {notice.events_hash}"
    typer.echo(f"{output}: {kind} {notice.period}, {chosen}, {len(done.content)} bytes, {state}")


@report_app.command("weekly")
def weekly(
    period: PeriodOpt,
    output_format: FormatOpt = None,
    lang: LangOpt = None,
    output: OutputOpt = None,
    template: TemplateOpt = None,
    database_url: DatabaseOpt = None,
) -> None:
    """The weekly notice on every department (每周通报)."""
    _write("weekly", period, output_format, lang, output, template, database_url)


@report_app.command("half-monthly")
def half_monthly(
    period: PeriodOpt,
    output_format: FormatOpt = None,
    lang: LangOpt = None,
    output: OutputOpt = None,
    template: TemplateOpt = None,
    database_url: DatabaseOpt = None,
) -> None:
    """The half-monthly report to the leadership (每半月报告): progress, problems, next steps."""
    _write("half-monthly", period, output_format, lang, output, template, database_url)


@report_app.command("monthly")
def monthly(
    period: PeriodOpt,
    output_format: FormatOpt = None,
    lang: LangOpt = None,
    output: OutputOpt = None,
    template: TemplateOpt = None,
    database_url: DatabaseOpt = None,
) -> None:
    """The monthly notice (月通报): performance scores, rankings, interviews."""
    _write("monthly", period, output_format, lang, output, template, database_url)


@report_app.command("list")
def list_documents(
    period: Annotated[str | None, typer.Option(help="Only this period.")] = None,
    database_url: DatabaseOpt = None,
) -> None:
    """The documents produced when periods closed (and stored), newest first."""
    from duban.documents.service import list_documents as listed

    with errors():
        rows = listed(database_url or load_settings().database, period)
    if not rows:
        typer.echo(
            f"no documents stored{f' for {period}' if period else ''} (the scheduled period close "
            "stores them after each weekly, half-monthly and monthly close: duban schedules, run by "
            "duban worker; duban close-period stores none; duban report writes one on demand)"
        )
        return
    for d in rows:
        state = "provisional" if d.provisional else f"events {d.events_hash[:16]}…"
        typer.echo(
            f"{d.document_id:>5}  {d.made_at:%Y-%m-%d %H:%M}Z  {d.kind:<12} {d.period:<11} {d.lang:<5} "
            f"{d.format:<4} {d.size:>8} B  sha256 {d.sha256[:16]}…  {state}"
        )


@report_app.command("fetch")
def fetch(
    document_id: Annotated[int, typer.Argument(help="The id (duban report list).")],
    output: Annotated[Path, typer.Option(help="Write it here.")],
    database_url: DatabaseOpt = None,
) -> None:
    """Write a stored document to a file."""
    from duban.documents.service import fetch_document

    with errors():
        writable_file(output, "output")
        record, content = fetch_document(database_url or load_settings().database, document_id)
        output.write_bytes(content)
    typer.echo(f"{output}: {record.kind} {record.period} {record.format}, sha256 {record.sha256}")
