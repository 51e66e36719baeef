"""`ece backup create|restore|list|verify`: back up everything that holds state, restore it."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from ece.settings import Settings, get_settings

backup_app = typer.Typer(no_args_is_help=True, help=(
    "Back up the databases, the lake, the chain, Arweave and the secrets; restore them."))
console = Console(stderr=True)


def _say(message: str) -> None:
    console.print(f"[cyan]•[/] {message}")


@backup_app.command()
def create(
    to: Path | None = typer.Option(  # noqa: B008 - typer's declaration style
        None, "--to", help="a new (or empty) folder; default <ECE_BACKUP_DIR>/<UTC time>"),
) -> None:
    """A consistent backup while the platform runs, with a manifest of sha256 checksums.

    Both databases, the lake's Parquet files at the catalog's snapshot, data/solana,
    data/arweave and data/secrets.
    """
    from ops.backup.create import create_backup, default_folder, remove_partial
    from ops.backup.pg import BackupError

    settings = get_settings()
    folder = to or default_folder(settings)
    fresh = not folder.exists() or not any(folder.iterdir())
    try:
        create_backup(settings, folder, _say)
    except (BackupError, OSError) as exc:
        if fresh:
            remove_partial(folder)
        console.print(f"[red]backup failed: {exc}")
        raise typer.Exit(1) from exc
    print(folder)


@backup_app.command()
def restore(
    backup: Path = typer.Argument(..., help="a backup folder (with its manifest.json)"),  # noqa: B008
    data_dir: Path | None = typer.Option(  # noqa: B008
        None, "--data-dir", help="the empty data folder to restore into (default ECE_DATA_DIR)"),
    skip_verify: bool = typer.Option(False, "--skip-verify",
                                     help="do not re-check the checksums first"),
) -> None:
    """Restore a backup into an empty data folder (a non-empty one is refused).

    Then `ece up` serves every row, balance, card, NFT and lake snapshot it held.
    """
    from ops.backup.pg import BackupError
    from ops.backup.restore import restore_backup

    settings = get_settings()
    if data_dir is not None:
        settings = Settings(**{**settings.model_dump(exclude_unset=False),
                               "data_dir": data_dir.resolve()})
    try:
        restore_backup(backup, settings, _say, check=not skip_verify)
    except (BackupError, OSError, ValueError) as exc:
        console.print(f"[red]restore failed: {exc}")
        raise typer.Exit(1) from exc


@backup_app.command("list")
def list_(
    folder: Path | None = typer.Option(  # noqa: B008
        None, "--in", help="where to look (default ECE_BACKUP_DIR, i.e. data/backups)"),
) -> None:
    """Every backup with its time, size and file count."""
    from ops.backup.manifest import list_backups

    root = folder or get_settings().backups_path
    backups = list_backups(root)
    table = Table(title=f"backups in {root}")
    for column in ("backup", "created (UTC)", "size", "files", "complete"):
        table.add_column(column)
    for info in backups:
        table.add_row(str(info.path), info.created_at.isoformat() if info.created_at else "",
                      f"{info.size / 1e6:.1f} MB", str(info.files),
                      "yes" if info.complete else "[red]no (no manifest)")
    Console().print(table)


@backup_app.command("verify")
def verify_(backup: Path = typer.Argument(..., help="a backup folder")) -> None:  # noqa: B008
    """Re-check every file of a backup against its manifest (exit 1 on a difference)."""
    from ops.backup.manifest import read_manifest, verify

    started = time.monotonic()
    try:
        files = len(read_manifest(backup)["files"])
        problems = verify(backup, _say)
    except (OSError, ValueError) as exc:
        console.print(f"[red]{exc}")
        raise typer.Exit(1) from exc
    for problem in problems:
        console.print(f"[red]{problem}")
    if problems:
        raise typer.Exit(1)
    print(f"ok: {files} files match the manifest ({time.monotonic() - started:.1f}s)")
