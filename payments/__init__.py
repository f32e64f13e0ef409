"""Payments: taking money for invoices, giving it back, and following what providers report.

Use cases, one per job, each owning its transaction and returning records (`records.py`):
  charging.py         take a payment for an invoice (`take_payment`), charge an attempt
  refunds.py          refund all or part of a collected payment
  payment_methods.py  attach a tenant's provider ids (never card data)
  webhook_intake.py   verify a provider's webhook and apply its event once
  dunning_round.py    retry failed payments on the dunning schedule
  reconciliation.py   apply a bank statement's credits to open invoices
  views.py            read a payment with its attempts and refunds
They all move a payment through `settlement.py`, along the state machine of `lifecycle.py`,
given a `context.py` `PaymentContext` (database, providers, cipher, dunning schedule).

Domain, pure: lifecycle.py, dunning.py (the schedule), matching.py, amounts.py, errors.py, and
bank_statements.py (reading camt.053 and CSV).

Providers: `gateway.py` is the interface and `PaymentProvider`, what the rest of payments knows of
a provider; each adapter (stripe_gateway.py, paypal_gateway.py, wire.py, with the verifiers in
webhooks.py) declares one, and `providers.py` registers it in one line. `sandbox/` holds local
stand-ins for the providers' servers.
"""
