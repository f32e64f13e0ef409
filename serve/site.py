"""The browser side of the service (issue 19): the tenant portal, the finance console, their
static files and the session middleware, added to the API app in one call."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from infra.settings import ConfigurationError
from serve.access import PAGES
from serve.pages import STATIC_URL
from serve.routes import console, portal
from serve.sessions import SessionCookies

STATIC = Path(__file__).resolve().parent / "static" / "portal"


def install(app: FastAPI) -> None:
    """Call after the guards are added: middleware added later runs first, so the session
    middleware sets the pages' content policy over the guards' API one."""
    routes = [route for module in (portal, console) for route in module.router.routes]
    served = {(method, r.path_format) for r in routes if isinstance(r, APIRoute) for method in r.methods or ()}
    if served != set(PAGES):  # as for the API (serve/access.py): no page without a rule
        raise ConfigurationError(
            f"serve/access.py PAGES and the page routes differ: {sorted(served ^ set(PAGES))}"
        )
    for module in (portal, console):
        app.include_router(module.router)
    app.mount(STATIC_URL, StaticFiles(directory=STATIC), name="portal-static")
    app.add_middleware(SessionCookies)
