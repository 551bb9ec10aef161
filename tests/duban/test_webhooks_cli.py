"""``duban webhooks``: subscriptions added, listed (never the secret), refused with the field, removed."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from duban.cli import app


def run(db: Path, *args: str) -> tuple[int, str]:
    done = CliRunner().invoke(app, ["webhooks", *args], env={"DUBAN_DATABASE_URL": f"sqlite:///{db}"})
    return done.exit_code, done.output


def with_key(db: Path, integrator: str = "hotline") -> None:
    from duban.gateway.keys import KeyStore, Scope
    from events.sql import make_engine

    KeyStore(make_engine(f"sqlite:///{db}")).create(integrator, Scope.of("*", "*", "*", "*"))


def test_add_list_remove(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    with_key(db)
    code, out = run(
        db,
        "add",
        "https://hooks.example.org/duban",
        "--integrator",
        "hotline",
        "--events",
        "ItemClosed,ItemEscalated",
        "--towns",
        "xicheng",
        "--own-items",
    )
    assert code == 0, out
    sub_id, secret = out.split()[1], out.split()[-1]
    assert secret.startswith("whsec_") and len(secret) == 6 + 43
    code, out = run(db, "list", "--json")
    [row] = [json.loads(line) for line in out.splitlines()]
    assert row["subscription_id"] == sub_id and row["event_types"] == ["ItemClosed", "ItemEscalated"]
    assert (row["towns"], row["departments"], row["own_items"]) == (["xicheng"], ["*"], True)
    assert secret not in out and "secret" not in row
    assert run(db, "remove", sub_id)[0] == 0
    assert run(db, "list")[1] == "" and sub_id in run(db, "list", "--removed")[1]
    code, out = run(db, "remove", sub_id)
    assert code == 2 and "no active subscription" in out


def test_bad_values_are_refused_with_the_field(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    with_key(db)
    cases = [
        (["ftp://example.org/hook", "--integrator", "hotline"], "url"),
        (["http://x.org/h", "--integrator", "hotline", "--events", "ItemExploded"], "event_types.0"),
        (["http://x.org/h", "--integrator", "Hot Line"], "integrator"),
        (["http://x.org/h", "--integrator", "hotline", "--towns", "Not A Code"], "towns.0"),
        (["http://x.org/h", "--integrator", "nokey"], "integrator"),  # no valid key: no webhooks
        (["http://169.254.169.254/latest", "--integrator", "hotline"], "url"),  # link-local: metadata
        (["http://x.org:0/h", "--integrator", "hotline"], "url"),
        (["http://x.org:99999/h", "--integrator", "hotline"], "url"),
        (["http://x.org/a\r\nX-Evil: 1", "--integrator", "hotline"], "url"),
    ]
    for args, field in cases:
        code, out = run(db, "add", *args)
        assert code == 2 and out.startswith(f"error: {field}:"), (args, out)
    assert run(db, "list")[1] == ""
