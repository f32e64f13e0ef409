"""Invoices per period: rating, tax, FX, credits, PDFs, cluster-wide runs (issue 4).
- composition: `compose_invoice(rating, ...)` -> `InvoiceDraft` + debited ledger; pure, no I/O.
"""
