"""The pricing domain: money, price specs, tier rules, contracts, credits. Pure Python, no I/O.

Where things are, one idea per module:
- money: `Currency`, `Money` (minor units, unrounded), the one rounding rule, `ARITHMETIC`.
- price_spec: Stripe-shaped JSON -> a price model: per_unit, package (transform_quantity),
  graduated, volume; all behind `price.Price`. quote: what `billing price quote` prints.
- catalog (+ plans, billing_units, default_catalog.json): the five tiers as versioned data.
- contracts (enterprise), airgapped (licence and support), spot (hourly prices), credits.
- tenant_pricing: a tenant's tier and terms. usage: one `usage_hourly` row.
- rating: `rate_period(usage, tenant, catalog, period)` -> rated lines (terms, usage_lines).
"""
