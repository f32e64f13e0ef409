"""What the payments layer raises. Each class is one thing the caller must do differently.

The HTTP layer and the payment state machine branch on the class, never on a message: a
`PaymentDeclined` fails the payment and tells the customer, a `ProviderUnavailable` is retried
later with the SAME idempotency key (so a retry can never charge twice), an `InvalidPaymentRequest`
is our bug or bad input and retrying it is pointless.
"""

from __future__ import annotations


class PaymentError(Exception):
    """Base of every error the payments layer raises on purpose."""


class InvalidAmount(PaymentError):
    """An amount that is not a finite, positive Decimal exact to the currency's minor unit."""


class InvalidPaymentRequest(PaymentError):
    """The provider refused the request as malformed (bad currency, amount too small, ...)."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(f"{code}: {message}" if code else message)
        self.message = message
        self.code = code


class PaymentDeclined(PaymentError):
    """The payer's bank or wallet refused the charge; `decline_code` says why (`insufficient_funds`).

    `transaction_id` is the provider's object for the failed attempt (a payment intent, an
    order), so the caller can record the failed payment against it.
    """

    def __init__(self, message: str, decline_code: str, transaction_id: str | None = None) -> None:
        super().__init__(f"{decline_code}: {message}")
        self.decline_code = decline_code
        self.transaction_id = transaction_id


class RefundRejected(PaymentError):
    """The provider refused a refund (more than what is left to refund, already refunded)."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(f"{code}: {message}" if code else message)
        self.message = message
        self.code = code


class PaymentNotFound(PaymentError):
    """The provider does not know the transaction id."""


class IdempotencyConflict(PaymentError):
    """An idempotency key was reused with different parameters: a bug in the caller, not a retry."""


class ProviderUnavailable(PaymentError):
    """The provider could not be reached or answered 5xx/429: retry later with the same key."""


class ProviderAuthenticationFailed(PaymentError):
    """Our credentials were refused: configuration, not the payer."""


class OperationNotSupported(PaymentError):
    """The payment method cannot do this through an API (a bank transfer is refunded by hand)."""


class WebhookVerificationError(PaymentError):
    """A webhook that must not be processed; answer 400 and do not record it."""


class ForgedWebhook(WebhookVerificationError):
    """The signature does not match the body (forged, tampered with, or signed with another key)."""


class StaleWebhook(WebhookVerificationError):
    """A correctly signed webhook outside the timestamp tolerance: a possible replay."""


class MalformedWebhook(WebhookVerificationError):
    """Signed correctly but not an event we can read (missing id, type or object)."""


# --- what a payments use case refuses (HTTP 409 or 422, not the provider's doing) ------------


class NotPayable(ValueError):
    """The invoice cannot take a payment now: a draft, void, paid, or nothing is due."""


class PaymentInProgress(ValueError):
    """Another payment of the invoice is still pending."""


class IdempotencyKeyReused(ValueError):
    """The Idempotency-Key was used before for another invoice or method."""


class NoPaymentMethod(ValueError):
    """The tenant has not attached a method at that provider."""


class NoSuchInvoice(LookupError):
    """No invoice has that id."""
