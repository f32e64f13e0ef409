"""What the service hands to Ray: Ray keeps an actor's and a task's arguments (in its object store,
and for an actor as long as it may restart it), so they carry what the actor or task uses and
none of the payment provider or signing secrets the settings hold (issue 16)."""

from __future__ import annotations

import inspect
import pickle
from pathlib import Path

from actors.usage_shard import ShardConfig, UsageShard
from forecasting.usage_run import forecast_batch
from infra.settings import Settings
from invoicing.config import InvoicingConfig
from invoicing.run import invoice_batch

SECRETS = {
    "stripe_api_key": "sk_test_not-for-ray",
    "stripe_webhook_secret": "whsec_not-for-ray",
    "paypal_client_secret": "paypal-secret-not-for-ray",
    "jwt_secret": "jwt-secret-not-for-ray",
}
SETTINGS = Settings(database_url="postgresql://db/billing", redis_url="redis://r:6379/3", **SECRETS)


def test_a_shard_and_an_invoice_batch_get_no_secret():
    for config in (ShardConfig.of(SETTINGS), InvoicingConfig.of(SETTINGS)):
        carried = pickle.dumps(config)
        assert b"postgresql://db/billing" in carried  # the scan sees what is there
        for name, secret in SECRETS.items():
            assert secret.encode() not in carried, f"{type(config).__name__} carries {name}"


def test_no_actor_or_task_takes_the_whole_settings():
    bodies = {
        "UsageShard": UsageShard.__ray_metadata__.modified_class.__init__,  # type: ignore[attr-defined]
        "invoice_batch": invoice_batch._function,
        "forecast_batch": forecast_batch,
    }
    for name, body in bodies.items():
        annotations = [str(p.annotation) for p in inspect.signature(body).parameters.values()]
        assert annotations and not any("Settings" in a for a in annotations), (name, annotations)


def test_the_configs_follow_the_settings():
    config = InvoicingConfig.of(SETTINGS.with_(data_dir=Path("/srv/billing"), issuer="ACME"))
    assert (config.data_dir, config.issuer, config.redis.url) == (Path("/srv/billing"), "ACME", "redis://r:6379/3")
    assert ShardConfig.of(SETTINGS.with_(flush_interval_s=0.2)).flush_interval_s == 0.2
