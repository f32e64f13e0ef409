"""Trained models on disk (data_dir/models/<version>/) and their row in forecast_models."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import joblib  # type: ignore[import-untyped]
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from forecasting.tables import forecast_models
from infra.settings import Settings


def new_version(kind: str) -> str:
    """Sortable by time, unique across processes: usage-20261125T020102-1a2b3c."""
    return f"{kind}-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def model_dir(settings: Settings, version: str) -> Path:
    return Path(settings.data_dir) / "models" / version


def save(settings: Settings, version: str, model: Any, meta: dict[str, Any]) -> Path:
    directory = model_dir(settings, version)
    directory.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, directory / "model.joblib")
    (directory / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
    return directory


def load(settings: Settings, version: str) -> tuple[Any, dict[str, Any]]:
    """The model saved under `version`, and its metadata."""
    directory = model_dir(settings, version)
    if not directory.is_dir():
        raise FileNotFoundError(f"no model {version!r} under {directory.parent}")
    meta = json.loads((directory / "meta.json").read_text())
    return joblib.load(directory / "model.joblib"), meta


async def record(
    conn: AsyncConnection,
    version: str,
    kind: str,
    model: str,
    trained_through: date,
    params: dict[str, Any],
    metrics: dict[str, Any],
    path: Path,
) -> None:
    await conn.execute(
        insert(forecast_models).values(
            version=version,
            kind=kind,
            model=model,
            trained_through=trained_through,
            params=_json(params),
            metrics=_json(metrics),
            path=str(path),
        )
    )


async def latest(conn: AsyncConnection, kind: str) -> str | None:
    query = (
        select(forecast_models.c.version)
        .where(forecast_models.c.kind == kind)
        .order_by(forecast_models.c.created_at.desc(), forecast_models.c.version.desc())
        .limit(1)
    )
    return (await conn.execute(query)).scalar()


def _json(document: dict[str, Any]) -> dict[str, Any]:
    """NaN is not JSON: stored as null."""
    stored: dict[str, Any] = json.loads(json.dumps(document, default=str).replace("NaN", "null"))
    return stored
