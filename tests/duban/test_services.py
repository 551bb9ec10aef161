"""The service layer refuses bad requests with a ``DubanError`` naming the field (found by a new user:
bare ``ValueError``s and raw SQL errors), and creates no folder for a mistyped SQLite path."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from duban import services
from duban.cli import app
from duban.errors import ConfigurationError
from events.errors import ValidationError
from projections.indicators import IndicatorOptions


def test_a_bad_level_or_rule_names_its_field(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'none.db'}"
    with pytest.raises(ValidationError) as info:
        services.rankings(url, "planet", None)
    assert info.value.field == "level" and "department" in info.value.reason
    with pytest.raises(ValidationError) as info:
        services.rankings(url, "department", None, no_deadline="maybe")
    assert (info.value.field, info.value.reason) == ("no_deadline", "must be exclude or on_time, not 'maybe'")
    with pytest.raises(ValidationError, match=r"^period: '' is not a period"):  # it meant all periods
        services.rankings(url, "department", "")
    for call in (
        lambda: services.indicator_rows(url, "planet", None, IndicatorOptions()),
        lambda: services.scores_report(url, "planet", "2022-05", None, IndicatorOptions()),
    ):
        with pytest.raises(ValidationError, match=r"^level: must be one of"):
            call()


def test_a_file_that_is_not_a_database_is_a_configuration_error(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database at all" * 100)
    with pytest.raises(ConfigurationError, match=r"^database_url: sqlite:///.*garbage\.db: .*not a database"):
        services.rankings(f"sqlite:///{garbage}", "department", None)
    with pytest.raises(ConfigurationError, match=r"not a database"):  # it leaked the raw SQL error
        services.rebuild_read_models(f"sqlite:///{garbage}")


def test_no_folder_is_created_for_a_mistyped_sqlite_path(tmp_path: Path) -> None:
    deep = tmp_path / "no" / "such" / "x.db"
    env = {
        "DUBAN_DATABASE_URL": f"sqlite:///{deep}",
        "DUBAN_DATA_DIR": str(tmp_path),
        "DUBAN_KAFKA_BOOTSTRAP": "127.0.0.1:1",
    }
    args = ["adjust", "--level", "department", "--unit", "PWDx", "--day", "2022-05-03", "--points", "1",
            "--reason", "r", "--approver", "chief:li"]  # fmt: skip
    done = CliRunner().invoke(app, args, env=env)
    assert done.exit_code == 2 and done.output.startswith(
        f"error: database_url: sqlite:///{deep}: no such folder"
    )
    assert not (tmp_path / "no").exists()
