"""The FastAPI application. Runs under Ray Serve (serve/deployment.py) or plain uvicorn."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from infra.settings import Settings
from serve import docs, problems, site
from serve.access import check_complete
from serve.guards import Guards
from serve.routes import (
    alerts,
    audit,
    health,
    invoice_runs,
    invoices,
    payments,
    pricing_catalog,
    pricing_credits,
    pricing_quotes,
    pricing_settings,
    reports,
    tenants,
    usage,
    webhook_endpoints,
    webhooks,
)
from serve.services import Services


def build_app(settings: Settings) -> FastAPI:
    """The API for fully resolved settings (every URL filled in; see infra.embedded.resolve)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = Services.open(settings)
        services.start()
        app.state.services = services
        try:
            yield
        finally:
            await services.close()

    app = FastAPI(
        title="billing-service",
        version="0.1.0",
        summary="Metering, pricing, invoicing and payments for ENIS v3.0",
        lifespan=lifespan,
        docs_url=None,  # served from an installed package by serve/docs.py, not from a CDN
        redoc_url=None,
    )
    docs.install(app)
    problems.install(app)
    app.add_middleware(Guards)
    site.install(app)  # the tenant portal and finance console (issue 19): pages, sessions, static files
    modules = (
        health,
        usage,
        tenants,
        pricing_catalog,
        pricing_settings,
        pricing_credits,
        pricing_quotes,
        invoices,
        invoice_runs,
        payments,
        webhooks,
        reports,
        audit,
        webhook_endpoints,
        alerts,
    )
    check_complete(route for module in modules for route in module.router.routes)
    for module in modules:
        app.include_router(module.router)
    return app
