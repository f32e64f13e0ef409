"""What the notifications use cases raise; the HTTP edge turns them into problem+json."""

from __future__ import annotations

from pricing.errors import InvalidField

__all__ = ["Forbidden", "InvalidField", "NotFound"]


class NotFound(LookupError):
    """No such endpoint, delivery or alert (or not one the caller may see)."""

    def __init__(self, what: str, identifier: str) -> None:
        super().__init__(f"{what} {identifier!r} does not exist")
        self.what, self.identifier = what, identifier


class Forbidden(PermissionError):
    """The object belongs to another tenant."""
