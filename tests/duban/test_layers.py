"""The layering contracts (``[tool.importlinter]`` in pyproject.toml) hold, and they do catch a
back-import: a copy of the packages with one deliberate ``import duban`` in the core fails them."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from helpers.paths import REPO as ROOT

PACKAGES = ("duban", "activities", "workflows", "projections", "events")


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sysconfig.get_path("scripts")) / "lint-imports"
    env = {"PYTHONPATH": str(cwd), "PATH": str(Path(sys.executable).parent)}
    return subprocess.run([str(exe)], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def copy_of_the_packages(tmp_path: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def test_the_layers_are_kept(tmp_path: Path) -> None:
    done = lint_imports(copy_of_the_packages(tmp_path))
    assert done.returncode == 0, done.stdout[-2000:]
    assert "Contracts: 3 kept, 0 broken." in done.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        (
            "workflows/item_rules.py",
            "from duban.config import Settings",
            "workflows is not allowed to import duban",
        ),
        ("events/codec.py", "import projections.read_models", "events is not allowed to import projections"),
        ("workflows/item_model.py", "import sqlalchemy", "workflows is not allowed to import sqlalchemy"),
    ],
)
def test_a_back_import_breaks_a_contract(tmp_path: Path, module: str, line: str, broken: str) -> None:
    root = copy_of_the_packages(tmp_path)
    path = root / module
    path.write_text(path.read_text(encoding="utf-8") + f"\n{line}  # noqa\n", encoding="utf-8")
    done = lint_imports(root)
    assert done.returncode == 1, done.stdout[-2000:]
    assert broken in done.stdout, done.stdout[-2000:]
