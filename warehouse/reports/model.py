"""What a report is made of: sections of figures, each naming its source, and charts.

The HTML page and its CSV twin are both written from one :class:`Report`, so the
two can never disagree; a section whose source could not be read carries the
reason instead of rows, and the page says so for those figures only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from uuid import UUID

if TYPE_CHECKING:
    import duckdb

    from ece.settings import Settings


@dataclass(frozen=True)
class Section:
    """One block of figures: a gold mart's rows for the date, or one live source.

    ``key`` names the block in the CSV (``gold.daily_market_summary``); the first
    ``key_columns`` columns label each row there. ``unavailable`` says why the
    source could not be read; ``empty`` why it has no rows for the date.
    """

    key: str
    title: str
    source: str
    columns: list[str] = field(default_factory=list)
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    key_columns: int = 1
    unavailable: str | None = None
    empty: str | None = None
    shown: int = 25  # rows on the page; the CSV has every row

    @property
    def has_rows(self) -> bool:
        return self.unavailable is None and bool(self.rows)

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


@dataclass(frozen=True)
class Chart:
    """A PNG chart and the sections its bars come from."""

    title: str
    png: bytes
    source: str


@dataclass
class Report:
    """One report for one UTC date."""

    name: str
    title: str
    day: date
    generated_at: datetime
    sections: list[Section] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Set when the date has no data at all: the page says so instead of showing charts.
    no_data: str | None = None

    def section(self, key: str) -> Section:
        for s in self.sections:
            if s.key == key:
                return s
        raise KeyError(key)


def cell(value: Any) -> str:
    """A value as the page and the CSV both print it (so the two match)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal | UUID):
        return str(value)
    return str(value)


@dataclass(frozen=True)
class Inputs:
    """What every report builder reads: the lake (None when it could not be opened), its
    tables, the date, the settings (live sources' addresses) and the build time."""

    con: duckdb.DuckDBPyConnection | None
    tables: set[tuple[str, str]]
    day: date
    settings: Settings
    now: datetime
