"""Run a great-expectations suite on a pandas dataframe and report plain outcomes.

GE 1.24 is used through an ephemeral context on pandas only: its SQL data source
over duckdb-engine reads results after the connection went back to the pool, so
each checked asset is read into a dataframe first. The outcomes are plain
dataclasses so that Dagster asset checks and ``ece.quality.check_results`` share
them without depending on GE's result classes. GE is imported lazily: its import
takes ~10 s, which Dagster's code location load and the CLI must not pay.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

# GE logs every function it registers at INFO while importing: noise in run logs.
logging.getLogger("great_expectations").setLevel(logging.WARNING)
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
DOCS_SITE = "ece"


@dataclass(frozen=True)
class Check:
    """One named expectation; ``build`` creates the GE expectation when GE is loaded."""

    name: str
    description: str
    build: Callable[[Any], Any]  # gx.expectations module -> Expectation


@dataclass
class CheckOutcome:
    """The result of one check, as stored in ``ece.quality.check_results``."""

    check: str
    success: bool
    observed_value: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def details_json(self) -> str:
        return json.dumps(self.details, default=str, sort_keys=True)


@lru_cache(maxsize=8)
def context_for(root: str | None = None) -> Any:
    """GE's context: ephemeral, plus (with ``root``) results and Data Docs on disk.

    Suites and validation definitions stay in memory (they are rebuilt from the
    registry every run); only validation results go to ``<root>/validations`` so
    that Data Docs (``<root>/docs``) list every suite's runs across processes.
    """
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    if root is None:
        context = gx.get_context(mode="ephemeral")
    else:
        config = DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
            progress_bars=ProgressBarsConfig(globally=False))
        config.stores["validation_results_store"] = {
            "class_name": "ValidationResultsStore",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                              "base_directory": f"{root}/validations"}}
        config.data_docs_sites = {DOCS_SITE: {
            "class_name": "SiteBuilder", "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                              "base_directory": f"{root}/docs"},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"}}}
        context = gx.get_context(mode="ephemeral", project_config=config)
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def _observed(result: dict[str, Any]) -> str:
    if "observed_value" in result:
        return str(result["observed_value"])
    if "unexpected_count" in result:
        return f"{result['unexpected_count']} unexpected of {result.get('element_count', '?')}"
    return ""


def run(suite_name: str, df: pd.DataFrame, checks: Sequence[Check],
        root: Path | None = None) -> list[CheckOutcome]:
    """Validate ``df`` against ``checks``; one outcome per check, in order.

    With ``root`` the result is also stored for Data Docs (:mod:`quality.docs`).
    """
    import great_expectations as gx

    context = context_for(str(root) if root is not None else None)
    # A fresh data source/suite per call keeps runs independent in the shared context.
    with contextlib.suppress(Exception):  # absent on the first run
        context.data_sources.delete(suite_name)
    source = context.data_sources.add_pandas(suite_name)
    batch_def = source.add_dataframe_asset(name=suite_name) \
        .add_batch_definition_whole_dataframe("whole")
    suite = gx.ExpectationSuite(name=suite_name)
    for check in checks:
        suite.add_expectation(check.build(gx.expectations))
    if root is None:
        result = batch_def.get_batch(batch_parameters={"dataframe": df}).validate(suite)
    else:
        for store in (context.validation_definitions, context.suites):
            with contextlib.suppress(Exception):  # absent on the first run
                store.delete(suite_name)
        suite = context.suites.add(suite)
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=suite_name, data=batch_def, suite=suite))
        result = definition.run(batch_parameters={"dataframe": df})
    outcomes = []
    for check, item in zip(checks, result.results, strict=True):
        details = {k: v for k, v in dict(item.result).items()
                   if k in ("element_count", "unexpected_count", "unexpected_percent",
                            "partial_unexpected_list", "missing_count", "observed_value")}
        details["expectation"] = item.expectation_config.type
        if item.exception_info and item.exception_info.get("raised_exception"):
            details["exception"] = item.exception_info.get("exception_message")
        outcomes.append(CheckOutcome(check.name, bool(item.success),
                                     _observed(dict(item.result)), details))
    return outcomes
