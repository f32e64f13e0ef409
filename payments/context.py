"""What every payments use case is given: the database, the providers, the field cipher for
provider ids and payer details, and the dunning schedule. Built once per process (the API's
composition root, `serve/services.py`, or a worker)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from infra.field_encryption import FieldCipher
from infra.settings import Settings
from payments.dunning import DunningSchedule
from payments.providers import Providers


@dataclass(frozen=True)
class PaymentContext:
    engine: AsyncEngine
    providers: Providers
    cipher: FieldCipher
    schedule: DunningSchedule

    @classmethod
    def of(cls, engine: AsyncEngine, settings: Settings, cipher: FieldCipher) -> PaymentContext:
        return cls(engine, Providers(settings), cipher, DunningSchedule.parse(settings.dunning_schedule))
