"""What the portal's and the console's page handlers share: the Jinja2 templates
(templates/portal/), the page language, the caller's session and form checks, error pages."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from serve.access import PAGES
from serve.auth import Principal
from serve.page_words import Words, choose_language
from serve.problems import Problem
from serve.rate_limits import admit
from serve.sessions import csrf_matches, session_of

TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "portal"
STATIC_URL = "/static/portal"
LANGUAGES = {"en": "English", "es": "Español", "de": "Deutsch", "fr": "Français"}
_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["j2"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def words_for(request: Request, fallback: str = "en") -> Words:
    asked = request.query_params.get("lang")
    return Words(choose_language(asked, request.headers.get("accept-language", ""), fallback))


def render(request: Request, template: str, words: Words, status: int = 200, **context: Any) -> HTMLResponse:
    session = session_of(request.scope)
    html = _env.get_template(template).render(
        _=words,
        words=words,
        lang=words.language,
        languages=LANGUAGES,
        static=STATIC_URL,
        path=request.url.path,
        csrf=session.csrf if session else "",
        session=session,
        # A fresh value per rendered form: a form posted twice (a double click, a resent request)
        # is one payment under one Idempotency-Key; a new page view is a new attempt.
        nonce=secrets.token_urlsafe(12),
        **context,
    )
    return HTMLResponse(html, status_code=status)


async def caller(request: Request, words: Words) -> Principal | HTMLResponse:
    """The signed-in principal when the role table lets it open this page; else an error page."""
    rule = PAGES[(request.method, request.scope["route"].path_format)]
    try:
        principal: Principal = request.app.state.services.auth.require(request, tuple(rule.roles))
        await admit(request, principal.subject)  # the same per-client limit as the API
        return principal
    except Problem as problem:
        return error_page(request, words, problem.status)


def error_page(request: Request, words: Words, status: int) -> HTMLResponse:
    messages = {
        401: words("Your session has ended or the sign-in link is not valid. Ask for a new link."),
        403: words("Your role may not open this page."),
        404: words("There is nothing here."),
    }
    message = messages.get(status, words("Something went wrong. Try again in a moment."))
    return render(request, "error.html.j2", words, status=status, message=message, code=status)


async def form_of(request: Request) -> dict[str, str]:
    """A urlencoded form's fields (the pages post nothing else; no multipart parser needed)."""
    body = (await request.body()).decode("utf-8", "replace")
    return {name: values[0] for name, values in parse_qs(body, keep_blank_values=True).items()}


def form_allowed(request: Request, form: dict[str, str]) -> bool:
    """Whether a posted form may act. Signed in by the session cookie (an ambient credential the
    browser sends by itself), it must carry the session's CSRF token and come from this origin;
    SameSite=Strict already keeps other sites' forms out, this is the second lock. A client that
    sent its own bearer token has no ambient credential to abuse."""
    session = session_of(request.scope)
    if session is None:
        return "authorization" in request.headers
    if not csrf_matches(session, form.get("csrf")):
        return False
    # Browsers say where a request comes from in Sec-Fetch-Site; Origin is "null" on the pages'
    # own form posts (their referrer policy is no-referrer), so it counts only without the former.
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site == "same-origin"
    origin = request.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == request.headers.get("host")
