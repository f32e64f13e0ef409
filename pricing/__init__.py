"""The pricing domain: money, price specs, tier rules, contracts, credits. Pure Python, no I/O."""
