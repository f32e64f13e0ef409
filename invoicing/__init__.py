"""Invoices per period: rating, tax, FX, credits, PDFs, cluster-wide runs (issue 4)."""
