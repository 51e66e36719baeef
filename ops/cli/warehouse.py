"""``ece warehouse``: refresh and backfill the lakehouse, query it, open a DuckDB shell on it.

Dagster, DuckDB and GE are imported inside the commands: ``ece`` mounts this app
at start-up and must stay fast for every other subcommand.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
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


def _instance(settings: Settings, record: bool) -> Any:
    """The local Dagster instance when it exists (runs show in the UI), else an ephemeral one."""
    from dagster import DagsterInstance

    logging.getLogger("alembic").setLevel(logging.WARNING)  # the instance's schema stamps
    home = _dagster_home(settings)
    if record and (home / "dagster.yaml").exists():
        os.environ.setdefault("DAGSTER_HOME", str(home))  # read by Dagster itself
        return DagsterInstance.from_config(str(home))
    return DagsterInstance.ephemeral()


_PROGRESS = {"loggers": {"progress": {"config": {"log_level": "INFO"}}}}


@warehouse_app.command()
def refresh(
    land_only: bool = typer.Option(False, "--land-only", help="only land new CDC events"),
    checks: bool = typer.Option(
        False, "--checks/--no-checks",
        help="also run every quality suite (as the sensor's runs do; slower)"),
    record: bool = typer.Option(
        True, "--record/--no-record",
        help="record the run in the local Dagster instance (visible in the UI) when it exists"),
) -> None:
    """Land every new change event, rebuild silver and today's gold partitions, now.

    The same steps as the assets the sensor and the schedule run, in this process on
    one lake connection (orchestration/quick.py), each recorded in the Dagster
    instance; silver tables whose bronze inputs did not change are kept. The quality
    suites run in the daemon's refresh runs, or here with ``--checks`` (which runs
    the Dagster refresh job itself). Safe while the Dagster daemon runs: DuckLake
    takes concurrent writers, the landing detects a concurrent lander at commit (no
    event is landed twice) and a gold partition is replaced under the mart's lock.
    """
    from orchestration.assets.gold_partitions import today

    settings = get_settings()
    started = time.monotonic()
    day = today()
    console.print(f"[bold]refresh[/]{'' if land_only else f' (gold partition {day})'}: "
                  f"lake {settings.lake_catalog}, broker {settings.kafka_bootstrap}")
    if checks:
        from orchestration.definitions import build_definitions

        job = build_definitions().resolve_job_def("land_bronze" if land_only else "refresh")
        with _instance(settings, record) as instance:
            result = job.execute_in_process(
                instance=instance, raise_on_error=False, run_config=_PROGRESS,
                partition_key=None if land_only else day.isoformat(),
                tags={"ece/trigger": "cli"})
            _print_summary(result, time.monotonic() - started)
        if not result.success:
            raise typer.Exit(1)
        return
    from orchestration import quick

    def say(message: str) -> None:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()

    refreshed = quick.refresh(settings, day, say, land_only=land_only)
    if record and (_dagster_home(settings) / "dagster.yaml").exists():
        with _instance(settings, record) as instance:
            quick.record(instance, refreshed)
    _print_table("refresh succeeded", time.monotonic() - started,
                 [(s.key.to_user_string(), s.metadata) for s in refreshed.steps], [])


def _day(value: str, flag: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        console.print(f"[red]error:[/] {flag} {escape(value)} is not a date (YYYY-MM-DD)")
        raise typer.Exit(2) from None


@warehouse_app.command()
def backfill(
    from_: str = typer.Option(..., "--from", help="first UTC date to rebuild (YYYY-MM-DD)"),
    to: str = typer.Option(..., "--to", help="last UTC date to rebuild, at most today"),
    record: bool = typer.Option(
        True, "--record/--no-record",
        help="record the run in the local Dagster instance (visible in the UI) when it exists"),
) -> None:
    """Rebuild the gold marts' daily partitions from --from to --to, one line per date and mart.

    One Dagster run over the partition range (what a backfill from the UI runs):
    each date of each mart is replaced in its own lake transaction, so it can run
    beside the daemon, a killed backfill keeps the dates it finished, and a rerun
    gives the same rows. Exit 2 for a reversed range, one in the future or one over
    two years.
    """
    from orchestration.assets.gold_partitions import today
    from orchestration.backfill import BadRange, check_range, range_tags

    start, end = _day(from_, "--from"), _day(to, "--to")
    try:
        count = check_range(start, end, today())
    except BadRange as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None
    from orchestration.definitions import build_definitions

    settings = get_settings()
    started = time.monotonic()
    job = build_definitions().resolve_job_def("gold_daily")
    console.print(f"[bold]backfill[/] gold {start} .. {end} ({count} days): "
                  f"lake {settings.lake_catalog}")
    with _instance(settings, record) as instance:
        result = job.execute_in_process(
            instance=instance, raise_on_error=False, run_config=_PROGRESS,
            tags={**range_tags(start, end), "ece/trigger": "cli-backfill"})
        _print_summary(result, time.monotonic() - started, what="backfill")
    if not result.success:
        raise typer.Exit(1)


@warehouse_app.command()
def report(
    date_: str = typer.Option(None, "--date", help="UTC date to report (YYYY-MM-DD, at most "
                                                   "today; default yesterday)"),
    record: bool = typer.Option(
        True, "--record/--no-record",
        help="record each report in the local Dagster instance (visible in the UI) when it exists"),
) -> None:
    """Write the market, user_activity, financial and system_health reports of a date.

    Each is data/reports/<report>/<date>.html (charts embedded) with its CSV twin
    <date>.csv; the figures are the gold marts' rows of that date (docs/reports.md).
    Exit 2 for a --date that is not a date or is in the future.
    """
    from datetime import UTC, timedelta

    from warehouse.reports.builder import BadDate, build_reports, check_day, reports_root

    today = datetime.now(UTC).date()
    try:
        day = check_day(date_, today) if date_ is not None else today - timedelta(days=1)
    except BadDate as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None
    settings = get_settings()
    started = time.monotonic()
    console.print(f"[bold]report[/] {day}: lake {settings.lake_catalog} -> "
                  f"{reports_root(settings)}")

    def say(message: str) -> None:  # progress on stderr, as `refresh` prints it
        sys.stderr.write(message + "\n")
        sys.stderr.flush()

    written = build_reports(settings, day, say)
    if record and (_dagster_home(settings) / "dagster.yaml").exists():
        from dagster import AssetMaterialization

        from orchestration.assets.reports import report_key, report_metadata

        with _instance(settings, record) as instance:
            for w in written:
                instance.report_runless_asset_event(AssetMaterialization(
                    report_key(w.report.name), partition=day.isoformat(),
                    metadata={**report_metadata(w), "trigger": "ece warehouse report"}))
    table = Table(title=f"reports of {day} in {time.monotonic() - started:.1f}s")
    for col in ("report", "data", "charts", "not available", "page"):
        table.add_column(col)
    for w in written:
        missing = ", ".join(s.key for s in w.report.sections if s.unavailable)
        table.add_row(w.report.name, "none" if w.report.no_data else "yes",
                      str(len(w.report.charts)), missing, str(w.html_path))
    console.print(table)


def _meta(metadata: Any) -> dict[str, Any]:
    return {k: getattr(v, "value", v) for k, v in metadata.items()}


def _print_summary(result: Any, seconds: float, what: str = "refresh") -> None:
    """The table of a Dagster run's materializations and check outcomes."""
    materialized = []
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        materialized.append((mat.asset_key.to_user_string(), _meta(mat.metadata)))
    checks = [(f"{c.asset_key.to_user_string()}:{c.check_name}", c.passed, _meta(c.metadata))
              for c in result.get_asset_check_evaluations()]
    _print_table(f"{what} {'succeeded' if result.success else 'FAILED'}", seconds,
                 materialized, checks)


def _print_table(title: str, seconds: float, materialized: list[tuple[str, dict[str, Any]]],
                 checks: list[tuple[str, bool, dict[str, Any]]]) -> None:
    from warehouse.bronze.landing import NO_TOPIC

    table = Table(title=f"{title} in {seconds:.1f}s", show_lines=False)
    for col in ("asset", "result", "detail"):
        table.add_column(col)
    no_topic = []
    for key, meta in materialized:
        if meta.get("skipped") == NO_TOPIC:
            no_topic.append(key.split("/")[-1])
            continue
        if meta.get("skipped") not in (None, "no"):
            detail, outcome = str(meta["skipped"]), "skipped"
        elif "rows_landed" in meta:
            detail, outcome = f"+{meta['rows_landed']} rows", "landed"
        elif "days" in meta:
            detail, outcome = (f"{meta.get('rows', '?')} rows, {meta['days']} days "
                               f"({meta.get('first_day')} .. {meta.get('last_day')})", "built")
        elif meta.get("inputs_unchanged"):
            detail, outcome = f"{meta.get('rows', '?')} rows", "unchanged"
        else:
            detail, outcome = f"{meta.get('rows', '?')} rows", "built"
        table.add_row(key, outcome, detail)
    for name, passed, meta in checks:
        if "skipped" in meta:
            continue
        table.add_row(name, "[green]pass[/]" if passed else "[red]FAIL[/]",
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
