"""Outbound webhooks and alerts (issue 17): tell a tenant's systems what happened, and warn before
they overspend.

Pure domain (no I/O):   events.py (event types, the body), signing.py (Standard Webhooks headers,
                        secrets), targets.py (which URLs and addresses may be called),
                        retries.py (backoff with jitter), alert_rules.py (when an alert fires),
                        records.py (the frozen records use cases return), errors.py
Use cases:              outbox.py (`record`, inside the caller's transaction), endpoints.py,
                        deliveries.py (list, replay), alerts.py (create, list, delete)
Background loops:       delivery_worker.py (claims due deliveries with a lease and POSTs them),
                        alert_evaluator.py (usage, spend, forecast and credits alerts)
Edges out:              infra/webhook_store.py, infra/alert_store.py (SQL); metrics.py
"""
