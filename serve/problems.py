"""Errors as RFC 9457 problem+json bodies that name the failing field."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

PROBLEM_TYPES = "https://billing.enis.dev/problems/"


class Problem(Exception):
    """An error the client can act on; rendered as problem+json with its status."""

    def __init__(
        self,
        status: int,
        kind: str,
        title: str,
        detail: str | None = None,
        errors: Sequence[dict[str, Any]] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.status, self.kind, self.title, self.detail = status, kind, title, detail
        self.errors, self.headers = list(errors), headers or {}

    def response(self, instance: str | None = None) -> Response:
        body: dict[str, Any] = {"type": PROBLEM_TYPES + self.kind, "title": self.title, "status": self.status}
        if self.detail:
            body["detail"] = self.detail
        if instance:
            body["instance"] = instance
        if self.errors:
            body["errors"] = self.errors
        return Response(
            orjson.dumps(body),
            status_code=self.status,
            headers=self.headers,
            media_type="application/problem+json",
        )


def field_path(loc: Iterable[str | int]) -> str:
    """('events', 3, 'usage', 'cpu_seconds') -> 'events[3].usage.cpu_seconds'."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "body"


def validation_errors(error: ValidationError | RequestValidationError) -> list[dict[str, Any]]:
    """Pydantic errors as [{field, message}]."""
    out = []
    for item in error.errors():
        loc = list(item["loc"])
        if loc and loc[0] in ("body", "query", "path", "header"):
            loc = loc[1:] if loc[0] == "body" else loc
        out.append({"field": field_path(loc), "message": item["msg"]})
    return out


MAX_LISTED_ERRORS = 100


def unprocessable(
    errors: list[dict[str, Any]], title: str = "Invalid request", detail: str | None = None
) -> Problem:
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
    if len(errors) > MAX_LISTED_ERRORS:  # a body of 5,000 identical complaints helps nobody
        summary += f" ({len(errors)} errors, the first {MAX_LISTED_ERRORS} listed)"
    return Problem(422, "validation", title, detail or summary, errors[:MAX_LISTED_ERRORS])


NOTHING_ACCEPTED = "Nothing from this request was accepted"
# A write that failed part-way: what was logged before the failure is known by its event ids.
MAYBE_PART_ACCEPTED = (
    "Some of these events may have been logged; send the same events again: those already "
    "logged are reported as duplicates"
)


def unavailable(dependency: str, retry_after: int, consequence: str = NOTHING_ACCEPTED) -> Problem:
    return Problem(
        503,
        "unavailable",
        f"{dependency} is unreachable",
        f"{consequence}; retry after {retry_after} s.",
        headers={"Retry-After": str(retry_after)},
    )


def install(app: FastAPI) -> None:
    document(app)

    @app.exception_handler(Problem)
    async def _problem(request: Request, error: Problem) -> Response:
        return error.response(request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> Response:
        return unprocessable(validation_errors(error)).response(request.url.path)

    async def _dependency_down(request: Request, error: Exception) -> Response:
        dependency = "Redis" if isinstance(error, RedisError) else "PostgreSQL"
        logging.getLogger("billing.api").warning(
            "%s unreachable on %s: %s", dependency, request.url.path, error
        )
        return unavailable(dependency, 5).response(request.url.path)

    # A dependency that is down is the client's cue to retry, not a bug: 503, never 500.
    for kind in (OperationalError, InterfaceError, RedisError, ConnectionError, TimeoutError):
        app.add_exception_handler(kind, _dependency_down)

    @app.exception_handler(DBAPIError)
    async def _refused_by_database(request: Request, error: DBAPIError) -> Response:
        if getattr(error.orig, "sqlstate", None) != NO_NUL_IN_TEXT:
            raise error  # a bug of ours: the 500 below
        return unprocessable(nul_fields(request)).response(request.url.path)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> Response:
        # Still a 500 (a bug of ours), but in the same shape as every other error.
        logging.getLogger("billing.api").exception("unhandled error on %s", request.url.path)
        return Problem(500, "internal", "Internal error", type(error).__name__).response(request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> Response:
        kind = {404: "not-found", 405: "method-not-allowed", 401: "unauthorized", 403: "forbidden"}
        headers = dict(error.headers or {})
        if error.status_code == 405:
            headers["Allow"] = allowed_methods(request, headers.get("Allow", ""))
        return Problem(
            error.status_code,
            kind.get(error.status_code, "http"),
            str(error.detail),
            headers=headers,
        ).response(request.url.path)


# PostgreSQL's character_not_in_repertoire: its text cannot hold U+0000, whichever column or
# parameter it was bound for (found by tests/test_fuzz_api.py).
NO_NUL_IN_TEXT = "22021"


def nul_fields(request: Request) -> list[dict[str, Any]]:
    """The path and query parameters that carry U+0000; else the body, which is gone by now."""
    named = [name for name, value in request.path_params.items() if "\x00" in str(value)]
    named += [name for name, value in request.query_params.multi_items() if "\x00" in value]
    message = "must not contain the NUL character (U+0000)"
    return [{"field": name, "message": message} for name in dict.fromkeys(named or ["body"])]


def allowed_methods(request: Request, fallback: str) -> str:
    """Every method of the path that answered 405. Starlette's Allow names only those of the one
    route it matched, and GET and POST of one path are two routes here."""
    route = request.scope.get("route")  # the route whose path matched
    documented = request.app.openapi()["paths"].get(getattr(route, "path", None), {})
    return ", ".join(sorted(method.upper() for method in documented)) or fallback


# ---- the OpenAPI document: every operation declares the problem+json answers it can give -----

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details; a 422 lists every failing field in `errors`.",
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}
_MEANINGS = {
    400: "The body cannot be read, or a webhook's signature headers are missing or wrong",
    401: "No valid bearer token",
    403: "The token's role or tenant may not do this",
    404: "No such resource",
    409: "The resource's state does not allow this",
    413: "The body or the batch is too large",
    415: "The body is not of the declared media type",
    422: "Invalid input: `errors` names each failing field",
    429: "Over this client's rate limit; see Retry-After",
    502: "The payment provider failed",
    503: "A dependency is unreachable; see Retry-After",
}
# Answers only some modules give.
_MODULE_ANSWERS = {"serve.routes.payments": {502}, "serve.routes.webhooks": {400}}


def document(app: FastAPI) -> None:
    """Wrap app.openapi so that the document, generated once, declares on every operation the
    problem+json answers it can give (FastAPI declares only a 422 in its own shape), so clients
    and schemathesis's conformance checks know them (issue 15)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            declare_problems(generate(), app.routes)
        return generate()  # FastAPI's cached document, now declared

    app.openapi = openapi  # type: ignore[method-assign]


def _api_routes(routes: Iterable[Any]) -> Iterator[Any]:
    """Every APIRoute, also those inside included routers (FastAPI >= 0.16x keeps them there)."""
    from fastapi.routing import APIRoute

    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):
            yield from _api_routes(route.original_router.routes)


def declare_problems(schema: dict[str, Any], routes: Iterable[Any]) -> None:
    from serve.access import PUBLIC  # imports this module

    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    for unused in ("HTTPValidationError", "ValidationError"):  # FastAPI's 422 shape, not ours
        schemas.pop(unused, None)
    content = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for route in _api_routes(routes):
        if not route.include_in_schema:
            continue
        for method in route.methods:
            operation = schema["paths"].get(route.path_format, {}).get(method.lower())
            if operation is None:
                continue
            answers = {503} | _MODULE_ANSWERS.get(route.endpoint.__module__, set())
            if (method, route.path_format) not in PUBLIC:
                # 404 and 409 too: an id in the body or query may name nothing, or a state that
                # does not allow the request (a report's missing FX rate, a run's closed month).
                answers |= {401, 403, 404, 409, 429}
            if operation.get("parameters") or operation.get("requestBody"):
                answers.add(422)
            if operation.get("requestBody"):
                answers |= {400, 413, 415}  # 400: a JSON body that does not parse (FastAPI's)
            responses = operation.setdefault("responses", {})
            for status in sorted(answers):
                responses[str(status)] = {"description": _MEANINGS[status], "content": content}
