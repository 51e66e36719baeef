"""The table ``ece chaos`` ends with: one row per kill, then one per verdict."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from ops.chaos.heal import Healed
from ops.chaos.verify import Verdict


def render(healed: list[Healed], verdicts: list[Verdict], console: Console) -> None:
    kills = Table(title="ece chaos: kills")
    for column in ("part", "pid killed", "killed at (UTC)", "healed after (s)", "restarts",
                   "new pid", "states seen"):
        kills.add_column(column, justify="left" if column == "part" else "right")
    for h in healed:
        kills.add_row(
            h.kill.part, str(h.kill.pid), h.kill.wall,
            f"{h.seconds:.1f}" if h.ok else f"[red]not healed after {h.seconds:.0f}",
            str(h.restarts), str(h.new_pid or ""), " > ".join(h.seen_states))
    console.print(kills)
    for h in healed:
        for name, detail in h.unhealthy.items():
            console.print(f"[red]{h.kill.part}: still unhealthy: {name}: {detail}")
    checks = Table(title="ece chaos: after the kills")
    for column in ("check", "verdict", "detail"):
        checks.add_column(column)
    for v in verdicts:
        checks.add_row(v.what, "[green]ok" if v.ok else "[red]FAILED", v.detail)
    console.print(checks)


def all_ok(healed: list[Healed], verdicts: list[Verdict]) -> bool:
    return bool(healed) and all(h.ok for h in healed) and all(v.ok for v in verdicts)
