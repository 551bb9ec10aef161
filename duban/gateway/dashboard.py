"""The leaders' dashboard at ``/dashboard``: one read-only page over the read models
(``projections.dashboard``), in Chinese or English, refreshing itself every 10 seconds.

Sign-in: ``/dashboard/login`` takes a key whose scope has the kind ``view`` (or ``*``) and keeps it
in an HttpOnly, SameSite=Strict cookie (a key never travels in a URL, where logs would keep it);
``/dashboard/logout`` forgets it. The page fetches ``/dashboard/data`` (the same JSON as the API's
``GET /v1/dashboard``); everything it draws — cards, ranking, the lights board, the weekly trend and
the map of open items — is drawn in the page from that JSON, with no script, style, font or map tile
fetched from anywhere else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Form, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from duban import services
from duban.gateway.context import Gateway
from duban.gateway.http_api import Gw, Key, Level, Period
from duban.gateway.keys import ANY, VIEW, IntegratorKey, KeyRefused, OutOfScope
from duban.gateway.strict import StrictJSONRoute, no_unknown_query

router = APIRouter(tags=["dashboard"], route_class=StrictJSONRoute, dependencies=[Depends(no_unknown_query)])
COOKIE = "duban_view"
REFRESH_S = 10
_ENV = Environment(
    loader=FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=select_autoescape(["html", "j2"]),
)
Lang = Literal["zh-CN", "en"]


def _viewer(gw: Gateway, presented: str | None) -> IntegratorKey:
    key = gw.keys.authenticate(presented)
    if ANY not in key.scope.kinds and VIEW not in key.scope.kinds:
        raise OutOfScope("the key may not view the dashboard (its scope lacks the kind 'view')")
    return key


def data(gw: Gateway, period: str | None, level: str) -> dict[str, Any]:
    """The dashboard's JSON (``duban.services.dashboard``) on the gateway's database."""
    return services.dashboard(gw.engine, period or None, level)


@router.get("/v1/dashboard", tags=["dashboard"], summary="What the dashboard shows, as JSON")
def dashboard_json(gw: Gw, key: Key, level: Level = "department", period: Period = None) -> dict[str, Any]:
    if ANY not in key.scope.kinds and VIEW not in key.scope.kinds:
        raise OutOfScope("the key may not view the dashboard (its scope lacks the kind 'view')")
    return data(gw, period, level)


@router.get("/dashboard/login", response_class=HTMLResponse, include_in_schema=False)
def login_page(lang: Lang = "zh-CN", error: str = "") -> HTMLResponse:
    return HTMLResponse(_ENV.get_template("login.html.j2").render(lang=lang, error=error[:200]))


@router.post("/dashboard/login", include_in_schema=False)
def login(
    request: Request, key: Annotated[str, Form(max_length=200)], lang: Annotated[Lang, Form()] = "zh-CN"
) -> Response:
    gw: Gateway = request.app.state.gateway
    try:
        _viewer(gw, key.strip())
    except (KeyRefused, OutOfScope) as exc:
        return HTMLResponse(
            _ENV.get_template("login.html.j2").render(lang=lang, error=str(exc)), status_code=401
        )
    answer = RedirectResponse(f"/dashboard?lang={lang}", status_code=303)
    secure = request.url.scheme == "https"
    answer.set_cookie(COOKIE, key.strip(), httponly=True, samesite="strict", secure=secure, max_age=12 * 3600)
    return answer


@router.post("/dashboard/logout", include_in_schema=False)
def logout() -> Response:
    answer = RedirectResponse("/dashboard/login", status_code=303)
    answer.delete_cookie(COOKIE)
    return answer


@router.get("/dashboard", response_class=HTMLResponse, include_in_schema=False)
def page(request: Request, lang: Lang = "zh-CN") -> Response:
    gw: Gateway = request.app.state.gateway
    try:
        _viewer(gw, request.cookies.get(COOKIE))
    except (KeyRefused, OutOfScope):
        return RedirectResponse(f"/dashboard/login?lang={lang}", status_code=303)
    html = _ENV.get_template("dashboard.html.j2").render(lang=lang, refresh_ms=REFRESH_S * 1000)
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


@router.get("/dashboard/data", include_in_schema=False)
def page_data(
    request: Request,
    level: Level = "department",
    period: Annotated[str | None, Query(max_length=32, pattern=r"^[0-9A-Za-z-]*$")] = None,
) -> Response:
    gw: Gateway = request.app.state.gateway
    try:
        _viewer(gw, request.cookies.get(COOKIE))
    except (KeyRefused, OutOfScope) as exc:
        return JSONResponse({"error": "Unauthenticated", "reason": str(exc)}, status_code=401)
    return JSONResponse(data(gw, period, level), headers={"Cache-Control": "no-store"})
