"""Fixtures of the command-line tests (``duban.cli.app`` through typer's CliRunner)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def no_ambient_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No ambient duban configuration: no DUBAN_* variables, no ./duban.toml."""
    for name in list(os.environ):
        if name.startswith("DUBAN_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DUBAN_DATA_DIR", str(tmp_path / "data"))
