"""Issue 11, the leaders' dashboard in a real browser: headless Chromium (Debian's package) driven by
Playwright opens ``/dashboard`` over HTTP on a simulated database (a Boston subset through ``duban
simulate``); the cards and the ranking equal what the API says; switching period and level changes
the table; a command applied through the API shows within the refresh interval. Screenshots are
kept in ``$DUBAN_TEST_ARTIFACTS`` (default ``.test-artifacts/``)."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from helpers.gateway import RunningGateway, running_gateway, unique
from helpers.paths import DATA, REPO
from temporalio.testing import WorkflowEnvironment

from duban.config import Settings
from duban.jobs.simulate import Replay, SimulationOptions

BOSTON = DATA / "boston311_2022_sample.csv"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]  # fmt: skip
ARTIFACTS = Path(os.environ.get("DUBAN_TEST_ARTIFACTS", REPO / ".test-artifacts"))
pytestmark = [
    pytest.mark.skipif(not BOSTON.is_file(), reason=f"shared data not found at {BOSTON}"),
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (.ci/run installs it)"
    ),
]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def board(
    dev_env: WorkflowEnvironment, broker: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RunningGateway]:
    folder = tmp_path_factory.mktemp("dashboard")
    url = f"sqlite:///{folder / 'sim.db'}"
    settings = replace(Settings(), kafka_bootstrap=broker, kafka_idempotent=False, data_dir=folder)
    await Replay(
        settings, SimulationOptions("boston311", BOSTON, limit=300, database_url=url, progress=False)
    ).run()
    async with running_gateway(dev_env, broker, url) as gw:
        yield gw


BANDS_ZH = {"excellent": "优秀", "good": "良好", "pass": "合格", "fail": "不合格"}
"""The scorebook's bands as the Chinese page names them (the test compares the Chinese page)."""


def pct(value: str | None) -> str:
    return "—" if value is None else f"{Decimal(value) * 100:.2f}%"


async def api(gw: RunningGateway, key: str, path: str, **params: str) -> Any:
    async with gw.http(key) as http:
        answer = await http.get(path, params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def expected_ranking(gw: RunningGateway, key: str, level: str, period: str) -> list[list[str]]:
    """The ranking rows as the dashboard should show them, from /v1/scores and /v1/indicators."""
    scores = (await api(gw, key, "/v1/scores", level=level, period=period))["rows"]
    indicators = {
        r["unit_key"]: r["indicators"]
        for r in (await api(gw, key, "/v1/indicators", level=level, period=period))["rows"]
    }
    rows = []
    for s in scores:
        ind = indicators.get(s["unit_key"])
        if ind is None:
            continue
        rect, on_time = ind["rectification_rate"], ind["on_time_closure_rate"]
        band = BANDS_ZH.get(s["band"], s["band"] or "")
        rows.append([
            str(s["rank"]), s["unit_key"] or "(none)", s["score"] or "—", band,
            f"{rect['numerator']}/{rect['denominator']}", pct(rect["value"]),
            f"{on_time['numerator']}/{on_time['denominator']}", pct(on_time["value"]),
        ])  # fmt: skip
    return rows


async def table(page: Any) -> list[list[str]]:
    return await page.eval_on_selector_all(
        "#ranking tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent.trim()))"
    )


async def refreshed(page: Any, after: int) -> None:
    await page.wait_for_function(f"Number(document.body.dataset.refreshed || 0) > {after}", timeout=20_000)


async def test_the_dashboard_shows_what_the_api_says_and_follows_commands(board: RunningGateway) -> None:
    from playwright.async_api import async_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    key = board.key("leader", kinds="view")
    office = board.key("office")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = await browser.new_page(viewport={"width": 1400, "height": 1100})
        await page.goto(f"{board.url}/dashboard")
        assert page.url.endswith("/dashboard/login?lang=zh-CN")  # no key, no dashboard
        await page.fill("#key", board.key("hotline", kinds="register"))  # no view kind: refused
        await page.click("#signin")
        assert "view" in await page.text_content("#error")
        await page.fill("#key", key)
        await page.click("#signin")
        await refreshed(page, 0)
        assert await page.text_content("#heading") == "督办 · 领导看板"
        shown = await api(board, key, "/v1/dashboard")
        period = shown["period"]
        assert period == "2022-12"  # the newest month of the subset
        months = await api(board, key, "/v1/indicators", level="department", period=period)
        rect = [
            sum(r["indicators"]["rectification_rate"][k] for r in months["rows"])
            for k in ("numerator", "denominator")
        ]
        card = (await page.text_content("#card-rect .sub")) or ""
        assert card.startswith(f"{rect[0]}/{rect[1]}")
        assert await page.get_attribute("#card-rect .value", "data-value") == pct(
            shown["cards"]["this_month"]["rectification"]["value"]
        )
        assert await table(page) == await expected_ranking(board, key, "department", period)
        await page.screenshot(path=str(ARTIFACTS / "dashboard-zh.png"), full_page=True)

        count = int(await page.evaluate("document.body.dataset.refreshed"))
        await page.select_option("#period", "2022-09")
        await refreshed(page, count)
        count = int(await page.evaluate("document.body.dataset.refreshed"))
        await page.select_option("#level", "town")
        await refreshed(page, count)
        towns = await table(page)
        assert towns == await expected_ranking(board, key, "town", "2022-09") and len(towns) > 3
        assert towns != await expected_ranking(board, key, "department", "2022-09")

        open_before = int(await page.get_attribute("#card-open .value", "data-value") or -1)
        async with board.http(office) as http:
            item = unique("dash")
            body = {"item_id": item, "service_code": "greenery", "town": "xicheng", "actor": "wang",
                    "reported_at": datetime.now(UTC).isoformat(), "lat": 36.8, "long": 117.9}  # fmt: skip
            assert (await http.post("/v1/items", json=body)).status_code == 201
        await page.wait_for_function(
            f"document.querySelector('#card-open .value').dataset.value === '{open_before + 1}'",
            timeout=25_000,
        )  # at most the refresh interval after the projection has the item
        assert await page.locator("#map circle.point").count() == 1
        await page.select_option("#lang", "en")
        await page.wait_for_function("document.querySelector('#heading').textContent.includes('dashboard')")
        await page.screenshot(path=str(ARTIFACTS / "dashboard-en.png"), full_page=True)
        await browser.close()
