"""A tenant's pricing settings: its tier, and its contracts (enterprise) or licence (airgapped)."""

from __future__ import annotations

from dataclasses import dataclass

from pricing.airgapped import Licence
from pricing.contracts import Contract, check_no_overlap
from pricing.errors import InvalidSettings
from pricing.json_fields import (
    as_list,
    as_object,
    as_string,
    child,
    reject_unknown_keys,
)
from pricing.plans import Tier, parse_tier

_KEYS = frozenset({"tenant_id", "tier", "contracts", "licence"})


@dataclass(frozen=True)
class TenantPricing:
    tenant_id: str
    tier: Tier
    # Enterprise only; at most one in force at any instant.
    contracts: tuple[Contract, ...] = ()
    licence: Licence | None = None  # airgapped only, and required there

    def __post_init__(self) -> None:
        if self.contracts and self.tier is not Tier.ENTERPRISE:
            raise InvalidSettings("contracts", "only enterprise tenants have contracts")
        check_no_overlap(self.contracts, "contracts")
        if (self.licence is not None) != (self.tier is Tier.AIRGAPPED):
            raise InvalidSettings("licence", "is required for airgapped tenants and only for them")

    def to_json(self) -> dict[str, object]:
        return {
            "tenant_id": self.tenant_id,
            "tier": self.tier.value,
            "contracts": [contract.to_json() for contract in self.contracts],
            "licence": None if self.licence is None else self.licence.to_json(),
        }

    @classmethod
    def from_json(cls, document: object) -> TenantPricing:
        settings = as_object(document, "", InvalidSettings)
        reject_unknown_keys(settings, _KEYS, "", InvalidSettings)
        contracts = as_list(settings.get("contracts", []), "contracts", InvalidSettings)
        licence = settings.get("licence")
        return cls(
            tenant_id=as_string(settings.get("tenant_id"), "tenant_id", InvalidSettings),
            tier=parse_tier(settings.get("tier"), "tier", InvalidSettings),
            contracts=tuple(
                Contract.from_json(raw, child("contracts", index)) for index, raw in enumerate(contracts)
            ),
            licence=None if licence is None else Licence.from_json(licence, "licence"),
        )
