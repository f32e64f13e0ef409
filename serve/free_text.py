"""Free text from clients is refused when it holds a card number (issue 15): a tenant's name or a
credit note's reason is printed, stored and copied to the audit log, so card data must not get in.

    reason: Annotated[str, Field(max_length=500), NO_CARD_NUMBERS]

A 422 then names the field, like any other validation error.
"""

from __future__ import annotations

from pydantic import AfterValidator

from infra.card_numbers import card_numbers


def _no_card_number(value: str | None) -> str | None:
    if value is not None and card_numbers(value):
        raise ValueError(
            "looks like a payment card number; card data is never stored: remove it from this text"
        )
    return value


NO_CARD_NUMBERS = AfterValidator(_no_card_number)
