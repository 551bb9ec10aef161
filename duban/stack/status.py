"""What ``duban stack status`` reports: a status row per service, and the database and projection
rows (the projection's backlog against the event store)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from duban.config import Settings
from duban.errors import StackError


@dataclass(frozen=True)
class ServiceStatus:
    """One service. ``state``: running / stopped (embedded), external (configured), file (SQLite)."""

    name: str
    address: str
    state: str
    pid: int | None = None
    log: Path | None = None
    detail: str = ""


@dataclass(frozen=True)
class StackStatus:
    """Every service of the stack, and the Temporal UI URL when Temporal is embedded."""

    services: tuple[ServiceStatus, ...]
    temporal_ui: str | None = None

    def service(self, name: str) -> ServiceStatus:
        """The entry named ``name`` ("temporal", "kafka" or "database"); KeyError if absent."""
        for svc in self.services:
            if svc.name == name:
                return svc
        raise KeyError(name)


def check_database(settings: Settings, strict: bool = True) -> ServiceStatus:
    """Report the database (a SQLite file's folder is created by ``make_engine`` if its parent exists).

    Raises:
        StackError: with ``strict``, a database server that does not answer.
        ValidationError: a SQLite file in a folder whose parent is missing.
    """
    from sqlalchemy import create_engine, text

    from events.sql import make_engine

    url = make_engine(settings.database).url
    shown = url.render_as_string(hide_password=True)
    if url.get_backend_name() == "sqlite":
        path = Path(url.database) if url.database and url.database != ":memory:" else None
        detail = "exists" if path is not None and path.exists() else "created on first use"
        return ServiceStatus("database", shown, "file", detail=detail)
    args = {"connect_timeout": 5} if url.get_backend_name() == "postgresql" else {}
    engine = create_engine(url, connect_args=args)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        if strict:
            raise StackError(f"database {shown} does not answer: {exc}") from exc
        return ServiceStatus("database", shown, "external", detail=f"not answering: {exc}")
    finally:
        engine.dispose()
    return ServiceStatus("database", shown, "external", detail="answering")


def projection_status(settings: Settings) -> ServiceStatus | None:
    """The projection's backlog (stored events not yet applied to the read models), when the
    database holds an event store; ``None`` otherwise or when it cannot be read."""
    from sqlalchemy import inspect

    from events.sql import make_engine
    from projections.store_sync import backlog

    url = settings.database
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        return None
    engine = make_engine(url)
    try:
        if not inspect(engine).has_table("event_store") or not inspect(engine).has_table("applied_events"):
            return None
        behind = backlog(engine)
    except Exception:  # an unreachable or foreign database: the database row says so
        return None
    finally:
        engine.dispose()
    state = "caught up" if behind == 0 else "behind"
    return ServiceStatus("projection", "read models", state, detail=f"{behind} stored events not yet applied")
