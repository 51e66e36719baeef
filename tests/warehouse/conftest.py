"""Warehouse fixtures: the real PostgreSQL (DuckLake catalog) and the real broker.

Every test gets a fresh lake (its own catalog database and data folder) and its
own topic prefix, so tests are independent while sharing one platform.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from cdcfeed import Feed

from ece.settings import Settings, get_settings
from ops.stack.supervisor import Platform
from warehouse.bronze import LandingConfig


@pytest.fixture(scope="session")
def stack_settings(platform: Platform) -> Settings:
    platform.require("postgres", "broker")
    get_settings.cache_clear()
    return get_settings()


@pytest.fixture
def lake_settings(stack_settings: Settings, tmp_path: Path,
                  monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings pointing at a brand-new lake and topic prefix (also exported as ECE_*)."""
    tag = uuid.uuid4().hex[:10]
    dbname = f"ece_lake_{tag}"
    with psycopg.connect(stack_settings.database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    # model_copy runs no validators: the catalog gets its role's passfile here.
    catalog = stack_settings.with_passfile(
        f"dbname={dbname} host={stack_settings.db_host} port={stack_settings.db_port} "
        f"user={stack_settings.db_user}")
    settings = stack_settings.model_copy(update={
        "lake_catalog": catalog, "lake_data_path": tmp_path / "lake",
        "topic_prefix": f"t{tag}", "data_dir": tmp_path})
    for var, value in {"ECE_LAKE_CATALOG": catalog, "ECE_LAKE_DATA_PATH": str(tmp_path / "lake"),
                       "ECE_TOPIC_PREFIX": f"t{tag}", "ECE_DATA_DIR": str(tmp_path)}.items():
        monkeypatch.setenv(var, value)
    get_settings.cache_clear()
    yield settings
    get_settings.cache_clear()
    with psycopg.connect(stack_settings.database_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


@pytest.fixture
def feed(lake_settings: Settings) -> Feed:
    return Feed(lake_settings, lake_settings.kafka_bootstrap)


@pytest.fixture
def landing(lake_settings: Settings) -> LandingConfig:
    return LandingConfig(bootstrap=lake_settings.kafka_bootstrap, batch_size=50,
                         poll_timeout_s=0.5, prefix=lake_settings.topic_prefix)
