"""Processes starting together on a new database (two workers and a projector, after a deploy) all
create duban's tables without failing: on PostgreSQL under an advisory lock, on SQLite by trying
again when another process created a table between a check and a create.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.paths import REPO
from sqlalchemy import create_engine, inspect, text

from events.sql import make_engine
from projections import read_models as rm

STARTUP = """
import sys
from events.sql import make_engine
from events.store import EventStore
from projections import read_models as rm
from projections.frozen_periods import create_ledger
engine = make_engine(sys.argv[1])
EventStore(engine).create()
rm.create_tables(engine)
create_ledger(engine)
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_urls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[str]]:
    """Eight new, empty databases of one kind."""
    if request.param == "sqlite":
        yield [f"sqlite:///{tmp_path / f'race-{i}.db'}" for i in range(8)]
        return
    admin_url = request.getfixturevalue("pg_url")  # the session's database: it can create others
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    names = [f"duban_race_{uuid.uuid4().hex[:10]}" for _ in range(8)]
    with admin.connect() as conn:
        for name in names:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield [admin_url.rsplit("/", 1)[0] + f"/{name}" for name in names]
    finally:
        with admin.connect() as conn:
            for name in names:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_three_processes_starting_together_on_a_new_database_all_start(fresh_urls: list[str]) -> None:
    failed = []
    for url in fresh_urls:
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", STARTUP, url], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            for _ in range(3)
        ]
        for process in processes:
            _, err = process.communicate(timeout=120)
            if process.returncode:
                failed.append(err.decode()[-300:])
        engine = make_engine(url)
        try:
            assert {t.name for t in rm.metadata.sorted_tables} <= set(inspect(engine).get_table_names())
        finally:
            engine.dispose()
    assert failed == []
