"""Stripe, PayPal and wire transfers behind one interface; webhooks; dunning (issue 5)."""
