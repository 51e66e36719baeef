"""``ece warehouse``: refresh the lakehouse, query it, open a DuckDB shell on it.

Dagster, DuckDB and GE are imported inside the commands: ``ece`` mounts this app
at start-up and must stay fast for every other subcommand.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import time
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ece.settings import Settings, get_settings

warehouse_app = typer.Typer(help="Query and refresh the lakehouse (DuckLake).",
                            no_args_is_help=True)
console = Console()


def _dagster_home(settings: Settings) -> Path:
    return settings.data_dir / "dagster"


@warehouse_app.command()
def refresh(
    land_only: bool = typer.Option(False, "--land-only", help="only land new CDC events"),
    record: bool = typer.Option(
        True, "--record/--no-record",
        help="record the run in the local Dagster instance (visible in the UI) when it exists"),
) -> None:
    """Land every new change event, rebuild silver/gold and run the checks, now.

    The same job the sensor and the schedule run, executed in this process. Safe
    while the Dagster daemon runs: DuckLake takes concurrent writers and the landing
    detects a concurrent lander at commit (no event is landed twice).
    """
    from dagster import DagsterInstance

    from orchestration.definitions import build_definitions

    logging.getLogger("alembic").setLevel(logging.WARNING)  # the instance's schema stamps
    settings = get_settings()
    started = time.monotonic()
    home = _dagster_home(settings)
    if record and (home / "dagster.yaml").exists():
        os.environ.setdefault("DAGSTER_HOME", str(home))  # read by Dagster itself
        instance = DagsterInstance.from_config(str(home))
    else:
        instance = DagsterInstance.ephemeral()
    job = build_definitions().resolve_job_def("land_bronze" if land_only else "refresh")
    console.print(f"[bold]refresh[/] {job.name}: lake {settings.lake_catalog}, "
                  f"broker {settings.kafka_bootstrap}")
    with instance:
        result = job.execute_in_process(
            instance=instance, raise_on_error=False,
            run_config={"loggers": {"progress": {"config": {"log_level": "INFO"}}}},
            tags={"ece/trigger": "cli"})
    _print_summary(result, time.monotonic() - started)
    if not result.success:
        raise typer.Exit(1)


def _print_summary(result: Any, seconds: float) -> None:
    from warehouse.bronze.landing import NO_TOPIC

    table = Table(title=f"refresh {'succeeded' if result.success else 'FAILED'} "
                        f"in {seconds:.1f}s", show_lines=False)
    for col in ("asset", "result", "detail"):
        table.add_column(col)
    no_topic = []
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        meta = {k: getattr(v, "value", v) for k, v in mat.metadata.items()}
        if meta.get("skipped") == NO_TOPIC:
            no_topic.append(mat.asset_key.path[-1])
            continue
        if meta.get("skipped") not in (None, "no"):
            detail, outcome = str(meta["skipped"]), "skipped"
        elif "rows_landed" in meta:
            detail, outcome = f"+{meta['rows_landed']} rows", "landed"
        else:
            detail, outcome = f"{meta.get('rows', '?')} rows", "built"
        table.add_row(mat.asset_key.to_user_string(), outcome, detail)
    for check in result.get_asset_check_evaluations():
        meta = {k: getattr(v, "value", v) for k, v in check.metadata.items()}
        if "skipped" in meta:
            continue
        table.add_row(f"{check.asset_key.to_user_string()}:{check.check_name}",
                      "[green]pass[/]" if check.passed else "[red]FAIL[/]",
                      str(meta.get("observed_value", meta.get("duplicates", ""))))
    console.print(table)
    if no_topic:
        console.print(f"[dim]no topic yet (nothing captured): {', '.join(no_topic)}[/]")


def _cell(value: Any) -> str:
    if value is None:
        return "[dim]NULL[/]"
    if isinstance(value, datetime | date | Decimal):
        return str(value)
    return str(value)


@warehouse_app.command()
def sql(
    query: str = typer.Argument(..., help='e.g. "SELECT rarity, count(*) FROM ece.silver.cards '
                                          'GROUP BY ALL"'),
    max_rows: int = typer.Option(1000, "--max-rows", help="print at most this many rows"),
) -> None:
    """Run a read-only query against the lake and print a table (sandboxed: queries only,
    no file, database or extension outside the lake; see docs/lake.md)."""
    import duckdb

    from warehouse import sandbox

    con = sandbox.connect(get_settings())
    try:
        started = time.monotonic()
        try:
            cursor = sandbox.run(con, query)
        except (sandbox.SandboxRefused, duckdb.Error) as exc:
            console.print(f"[red]error:[/] {escape(str(exc))}")
            raise typer.Exit(1) from exc
        columns = [d[0] for d in cursor.description or []]
        rows = cursor.fetchmany(max_rows + 1)
        seconds = time.monotonic() - started
    finally:
        con.close()
    table = Table(*columns) if columns else Table("result")
    for row in rows[:max_rows]:
        table.add_row(*(_cell(v) for v in row))
    console.print(table)
    more = " (more not shown)" if len(rows) > max_rows else ""
    console.print(f"[dim]{min(len(rows), max_rows)} rows{more}, {seconds:.3f}s[/]")


@warehouse_app.command()
def attach() -> None:
    """Print the ATTACH statement for your own DuckDB (read-only; load postgres_scanner
    and ducklake first, see docs/lake.md)."""
    from warehouse.sandbox import analyst_attach_statement

    typer.echo(analyst_attach_statement(get_settings()) + ";")


def duckdb_cli_binary() -> Path:
    """The DuckDB shell from the ``duckdb-cli`` wheel (same version as the library)."""
    spec = importlib.util.find_spec("duckdb_cli")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("duckdb-cli is not installed: uv sync --locked")
    return Path(next(iter(spec.submodule_search_locations))) / "duckdb"


def write_shell_init(settings: Settings, read_only: bool) -> Path:
    """The shell's ``-init`` file: the sandbox's statements (:mod:`warehouse.sandbox`)."""
    from warehouse.sandbox import write_shell_init as write

    return write(settings, read_only)


@warehouse_app.command()
def shell(
    write: bool = typer.Option(False, "--write", help="attach read-write (default read-only)"),
) -> None:
    """Open the DuckDB shell with the lake attached as ``ece`` (read-only by default).

    Sandboxed like ``sql`` by its settings (no file outside the lake, no other database,
    no extension, configuration locked, safe mode: no ``.shell``/``.open``/``.read``).
    """
    settings = get_settings()
    binary = duckdb_cli_binary()
    init = write_shell_init(settings, read_only=not write)
    console.print(f"[dim]lake attached as ece ({'read-write' if write else 'read-only'}, "
                  f"sandboxed); init file {init}[/]")
    os.execv(binary, [str(binary), "-init", str(init)])
