"""Strict reading of requests, for the gateway's routers:

- ``StrictJSONRoute``: a JSON body in which an object repeats a key is refused (422, field ``body``:
  ``the key 'actor' is given twice``), as the topic bridge and the workflows refuse it — which of
  the values would count is up to the parser, and duban does not guess;
- ``no_unknown_query``: a query parameter the route does not take is refused (``?by=town`` on a route
  that takes ``level`` is a 422 naming ``by``, not silently the default).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from events.errors import ValidationError
from events.strict_json import RepeatedKey, refuse_repeated_keys


class StrictJSONRequest(Request):
    """A request whose JSON body may not repeat a key in any object."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = json.loads(body, object_pairs_hook=refuse_repeated_keys)
            except RepeatedKey as exc:
                raise json.JSONDecodeError(
                    f"the key {exc.field!r} is given twice", body.decode(errors="replace"), 0
                ) from None
        return self._json


class StrictJSONRoute(APIRoute):
    """A route that reads its JSON body with ``StrictJSONRequest``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict


def no_unknown_query(request: Request) -> None:
    """Dependency: refuse a query parameter the matched route does not take (field named)."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    known: set[str] = set()

    def collect(dep: Any) -> None:
        known.update(p.alias for p in dep.query_params)
        for sub in dep.dependencies:
            collect(sub)

    collect(dependant)
    for name in request.query_params:
        if name not in known:
            raise ValidationError(name, f"is not a parameter of {request.method} {route.path}")  # type: ignore[union-attr]
