"""The price catalog's use cases: read it as it is now, and add a version (a price change from
its effective date on). pricing/ holds the rules (pricing/catalog.py) and stays pure; storing a
change and ordering concurrent ones is a use case, and prices exist to be invoiced, so it lives
here rather than in a package of its own (design.md §8)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from infra import pricing_store
from infra.pricing_cache import PricingCache
from invoicing.errors import AlreadyExists
from pricing.catalog import Catalog, CatalogVersion
from pricing.errors import InvalidField, NoPriceInForce
from pricing.json_fields import instant_text

MAX_VERSION_ID = 64  # catalog_versions.version


@dataclass(frozen=True, slots=True)
class CatalogNow:
    catalog: Catalog
    revision: int
    in_force: str | None  # the version whose prices apply now; None before the first one


@dataclass(frozen=True, slots=True)
class VersionAdded:
    catalog: str  # the catalog's name
    revision: int  # the catalog's revision with the version
    version: CatalogVersion
    created: bool  # False: the same version again (a retry), answered as before


async def current_catalog(cache: PricingCache) -> CatalogNow:
    catalog, generation = await cache.current_catalog()
    try:
        in_force: str | None = catalog.version_at(datetime.now(UTC)).version
    except NoPriceInForce:
        in_force = None
    return CatalogNow(catalog, generation.revision, in_force)


async def add_version(engine: AsyncEngine, document: object, actor: str) -> VersionAdded:
    """Add the catalog version `document` (design.md §3). Raises InvalidField (its field), and
    AlreadyExists when its id exists with other prices: versions are never changed."""
    async with engine.begin() as conn:
        # The row lock orders concurrent price changes: each is checked against the last.
        catalog, generation = await pricing_store.load_catalog(conn, for_update=True)
        version = _parse(document, catalog)
        same_id = next((v for v in catalog.versions if v.version == version.version), None)
        if same_id is not None:
            if same_id.to_json() != version.to_json():
                raise AlreadyExists(
                    f"version: {version.version!r} exists with other prices; versions are never changed"
                )
            return VersionAdded(catalog.name, generation.revision, same_id, created=False)
        _check_not_backdated(version)
        catalog.with_version(version)  # raises InvalidField when it does not fit the others
        generation = await pricing_store.add_catalog_version(conn, version, actor)
    return VersionAdded(catalog.name, generation.revision, version, created=True)


def _parse(document: object, catalog: Catalog) -> CatalogVersion:
    version = CatalogVersion.from_json(document, "", catalog.currency)
    if len(version.version) > MAX_VERSION_ID:
        raise InvalidField("version", f"must be at most {MAX_VERSION_ID} characters")
    return version


def _check_not_backdated(version: CatalogVersion) -> None:
    """Usage is rated by the hour at the prices in force when the hour starts, so a change may take
    effect from the hour in progress on, but never reprice hours already gone."""
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    if version.effective_from < hour:
        raise InvalidField("effective_from", f"must not be before the current hour ({instant_text(hour)})")
