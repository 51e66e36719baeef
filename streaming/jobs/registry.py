"""Which pipelines exist and how one plugs into the shared job.

A pipeline is a module with ``NAME: str`` and ``build(ctx: JobContext) -> None``
that adds its sources, operators and sinks to ``ctx.env``. Adding notifications,
market stats or chain reconciliation = one module + one line here; they all run
in the one job (one JVM) that ``python -m streaming.jobs`` starts.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Protocol

from streaming.jobs.runtime import JobContext

PIPELINES: dict[str, str] = {
    "card_cache": "streaming.jobs.card_cache",
    "chain_reconciliation": "streaming.jobs.chain_reconciliation",
    "market_activity": "streaming.jobs.market_activity",
    "notifications": "streaming.jobs.notifications",
    "market_stats": "streaming.jobs.market_stats",
    "market_data": "streaming.jobs.market_data",
}


class Pipeline(Protocol):
    NAME: str

    def build(self, ctx: JobContext) -> None: ...


def load(name: str) -> ModuleType:
    if name not in PIPELINES:
        raise KeyError(f"unknown pipeline {name!r}; known: {', '.join(PIPELINES)}")
    module = importlib.import_module(PIPELINES[name])
    if not callable(getattr(module, "build", None)):
        raise TypeError(f"{PIPELINES[name]} has no build(ctx)")
    return module
