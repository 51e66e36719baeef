"""Daily lakehouse reports: ``market``, ``user_activity``, ``financial``, ``system_health``.

Each report is one HTML page with its charts embedded as PNG, and a CSV twin of
the same figures, at ``<data dir>/reports/<report>/<date>.html`` / ``.csv``. The
gold reports' figures are the gold marts' rows of that date; the system health
report reads the lake and the running platform, and every figure names its source
(docs/reports.md). One module per report; ``model`` (sections, charts), ``charts``
(matplotlib, Agg), ``render`` (HTML, CSV), ``gold`` (a mart's partition),
``probes`` (live sources) and ``builder`` (what the CLI and Dagster call) are shared.
"""
