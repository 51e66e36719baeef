"""GE Data Docs of the lake's suites, under ``<data_dir>/quality/docs/index.html``.

Validation results are stored by :func:`quality.suite.run` (with a root) under
``<root>/validations``; this builds the static site from them. Only the newest
:data:`KEEP` results per suite are kept (the latest and the one before, to see
what changed; the full history is ``ece.quality.check_results``): the sensor
refreshes every few minutes, and GE rebuilds its index from every stored result,
so its cost grows with them (~0.2 s per build with one run of every suite).
After a suite ran, only its new page and the index are rendered.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ece.settings import Settings
from quality.suite import DOCS_SITE, context_for

KEEP = 2


def root_of(settings: Settings) -> Path:
    """Where quality keeps its GE results and Data Docs."""
    return settings.data_dir / "quality"


def index_of(root: Path) -> Path:
    return root / "docs" / "index.html"


def prune(root: Path, keep: int = KEEP) -> int:
    """Drop all but the newest ``keep`` results (and their pages) per suite."""
    removed = 0
    validations = root / "validations"
    if not validations.is_dir():
        return 0
    for suite_dir in (p for p in validations.iterdir() if p.is_dir()):
        for run_name_dir in (p for p in suite_dir.iterdir() if p.is_dir()):
            runs = sorted((p for p in run_name_dir.iterdir() if p.is_dir()),
                          key=lambda p: p.name, reverse=True)
            for old in runs[keep:]:
                shutil.rmtree(old, ignore_errors=True)
                page = root / "docs" / "validations" / old.relative_to(validations)
                shutil.rmtree(page, ignore_errors=True)
                removed += 1
    return removed


def build(root: Path, suite_name: str | None = None, keep: int = KEEP) -> Path:
    """Render the Data Docs (the newest result of ``suite_name`` + the index, or all).

    Returns the site's index.html.
    """
    root.mkdir(parents=True, exist_ok=True)
    prune(root, keep)
    context = context_for(str(root))
    identifiers = None
    if suite_name is not None:
        keys = [k for k in context.validation_results_store.list_keys()
                if k.expectation_suite_identifier.name == suite_name]
        if keys:
            identifiers = [max(keys, key=lambda k: k.run_id.run_time)]
    context.build_data_docs(site_names=[DOCS_SITE], resource_identifiers=identifiers)
    return index_of(root)
