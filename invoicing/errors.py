"""Errors the invoicing use cases raise about what they were asked for; the edges turn them into
problem+json (serve/routes/pricing_support.py) or an exit code."""

from __future__ import annotations


class TenantNotFound(LookupError):
    """No tenant with that id."""


class AlreadyExists(ValueError):
    """The id is taken by something with other terms: a retry must repeat the request exactly."""


class DraftInvoice(ValueError):
    """The invoice is still a draft: it has no number yet, so no e-invoice (finalize it first)."""
