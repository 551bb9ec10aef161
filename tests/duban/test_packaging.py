"""The installed package (what the Docker image runs: ``pip install .``, not editable) carries every
data file the code reads: the rulebook, the scorebook and the calendars. The scorebook was missing
from the wheel, so an image's projector and worker could not load it."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from helpers.paths import REPO

from events.working_calendar import CALENDAR_DIR, CALENDARS
from projections.scorebook import DEFAULT_SCOREBOOK_PATH
from workflows.rulebook import DEFAULT_RULEBOOK_PATH


def test_the_wheel_carries_every_data_file_the_code_reads(tmp_path: Path) -> None:
    args = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    [wheel] = tmp_path.glob("duban-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    wanted = [DEFAULT_RULEBOOK_PATH, DEFAULT_SCOREBOOK_PATH, *(CALENDAR_DIR / f"{n}.yaml" for n in CALENDARS)]
    assert {p.relative_to(REPO).as_posix() for p in wanted} <= names
    # and every other data file in the packages (import profiles, catalogues, templates), as git has them
    listed = subprocess.run(
        ["git", "ls-files", "duban", "workflows", "events", "projections", "activities"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    data = {name for name in listed if not name.endswith(".py")}
    assert "duban/importers/builtin/open311.yaml" in data or not (REPO / ".git").exists()
    assert data <= names, sorted(data - names)
