"""Every command of the README's synopsis exists, with every option the synopsis shows.

The synopsis is what a new user types first; a command or option renamed in code and not in the
README would send them to an error. Each command is run with ``--help`` (a real run needs data or
servers; the other test modules run them for real) and its help must list each option shown.
"""

from __future__ import annotations

import itertools
import re

import pytest
from helpers.paths import REPO
from typer.testing import CliRunner

from duban.cli import app

README = REPO / "README.md"


def synopsis() -> list[tuple[list[str], set[str]]]:
    """``(command words, options)`` of each command line of the README's synopsis block."""
    text = README.read_text(encoding="utf-8")
    block = text.split("## The command line", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    lines = re.sub(r"\\\n\s*", " ", block).splitlines()  # join continued lines
    found = []
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line.startswith("duban "):
            continue
        words = line.split()[1:]
        head = list(itertools.takewhile(lambda w: re.fullmatch(r"[a-z][a-z-]*", w) is not None, words))
        options = set(re.findall(r"--[a-z][a-z-]*", line))
        rest = words[len(head) :]
        if "|" in rest:  # duban stack up [--apps] | down | status; duban calendars list | draft NAME --…
            parts = " ".join([head[-1], *rest]).split(" | ")
            for part in parts:
                sub, *tail = part.split()
                found.append(([*head[:-1], sub], set(re.findall(r"--[a-z][a-z-]*", " ".join(tail)))))
        else:
            found.append((head, options))
    return found


COMMANDS = synopsis()


def test_the_synopsis_is_read_whole() -> None:
    names = {" ".join(words) for words, _ in COMMANDS}
    assert {
        "stack up",
        "stack down",
        "stack status",
        "simulate",
        "adjust",
        "worker",
        "project",
        "serve",
    } <= names
    assert len(COMMANDS) == 45


@pytest.mark.parametrize(("words", "options"), COMMANDS, ids=[" ".join(w) for w, _ in COMMANDS])
def test_each_synopsis_command_exists_with_its_options(words: list[str], options: set[str]) -> None:
    done = CliRunner().invoke(app, [*words, "--help"], env={"COLUMNS": "200"})
    assert done.exit_code == 0, done.output
    missing = {o for o in options if o not in done.output}
    assert not missing, f"duban {' '.join(words)} --help does not list {sorted(missing)}"
