"""The supervisor: starts parts in dependency order, watches them, stops them all.

A part that fails to start is reported with its reason and fix and every part
already started is stopped, so nothing is left listening. Parts whose address
was pointed at an external service are only health-checked.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterable

from ece.settings import Settings
from ops.stack.base import Part, PartFailed, free_port

# name -> (module:class, environment variable that marks the part as external)
PARTS: dict[str, tuple[str, str | None]] = {
    "postgres": ("ops.stack.postgres:Postgres", "ECE_DATABASE_URL"),
    "redis": ("ops.stack.redis:Redis", "ECE_REDIS_URL"),
    "broker": ("ops.stack.broker:Broker", "ECE_KAFKA_BOOTSTRAP"),
    "migrate": ("ops.stack.migrate:Migrate", None),
    "api": ("ops.stack.api:Api", None),
    "cdc": ("ops.stack.cdc:Cdc", None),
    "flink": ("ops.stack.flink:Flink", "ECE_FLINK_REST_URL"),
    "dagster": ("ops.stack.dagster:Dagster", None),
    "solana": ("ops.stack.solana:Solana", "ECE_SOLANA_RPC_URL"),
    "arweave": ("ops.stack.arweave:Arweave", "ECE_ARWEAVE_URL"),
    "workers": ("ops.stack.workers:Workers", None),
    "chain-workers": ("ops.stack.workers:ChainWorkers", None),
    "delivery": ("ops.stack.delivery:Delivery", None),
    "oidc": ("ops.stack.oidc:Oidc", None),  # development OpenID provider; only with -p oidc
}

# The order `ece up` starts them in (and the reverse is the stop order).
DEFAULT_ORDER = (
    "postgres", "redis", "broker", "migrate", "api", "cdc", "flink", "dagster", "solana",
    "arweave", "workers", "chain-workers", "delivery",
)


def externals_from_environment(settings: Settings | None = None) -> set[str]:
    """Parts whose address the user set explicitly: use theirs, start none.

    "Set" means given to Settings (its ``model_fields_set``), not equal to a default.
    """
    given = (settings or Settings()).model_fields_set
    return {name for name, (_, var) in PARTS.items()
            if var and var.removeprefix("ECE_").lower() in given}


def free_port_environment() -> dict[str, str]:
    """``ECE_*`` addresses on free loopback ports for every local part."""
    pg = free_port()
    return {
        # The app's and the lake writers' roles; the others derive from these.
        "ECE_DATABASE_URL": f"postgresql://ece_app@127.0.0.1:{pg}/ece",
        "ECE_LAKE_CATALOG": f"dbname=ece_lake host=127.0.0.1 port={pg} user=ece_etl",
        "ECE_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "ECE_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
        "ECE_API_PORT": str(free_port()),
        "ECE_FLINK_REST_PORT": str(free_port()),
        "ECE_DAGSTER_PORT": str(free_port()),
        "ECE_ARWEAVE_URL": f"http://127.0.0.1:{free_port()}",
        "ECE_SOLANA_RPC_URL": f"http://127.0.0.1:{free_port()}",
        "ECE_OIDC_DEV_URL": f"http://127.0.0.1:{free_port()}",
    }


def _load(name: str, settings: Settings, external: bool) -> Part:
    target, _ = PARTS[name]
    module_name, class_name = target.split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(settings, external=external)  # type: ignore[no-any-return]


class Platform:
    """A set of started parts for one settings object."""

    def __init__(
        self,
        settings: Settings,
        externals: Iterable[str] = (),
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.externals = set(externals)
        self.parts: dict[str, Part] = {}
        self.started: list[Part] = []
        self._say = progress or (lambda _msg: None)

    def part(self, name: str) -> Part:
        if name not in self.parts:
            self.parts[name] = _load(name, self.settings, name in self.externals)
        return self.parts[name]

    def require(self, *names: str) -> None:
        """Start these parts (and what they depend on) unless already running."""
        for name in names:
            part = self.part(name)
            for dep in part.depends_on:
                self.require(dep)
            if part in self.started:
                continue
            self._say(f"starting {name}{' (external)' if part.external else ''} ...")
            try:
                part.start()
            except BaseException as exc:
                # Not in `started`, so `stop()` would never reach it: end what it launched
                # (a part that timed out starting, e.g. Dagster's process group, is alive).
                with contextlib.suppress(Exception):
                    part.stop()
                if isinstance(exc, PartFailed) or not isinstance(exc, Exception):
                    raise
                raise PartFailed(name, f"{type(exc).__name__}: {exc}",
                                 "see the log", part.log_path) from exc
            if part.external:
                ok, detail = part.health()
                if not ok:
                    raise PartFailed(name, f"external service unhealthy: {detail}",
                                     "check the address you configured")
            self.started.append(part)
            self._say(f"{name} ready {part.url}".rstrip())

    def start(self, names: Iterable[str] = DEFAULT_ORDER) -> None:
        try:
            for name in names:
                self.require(name)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        while self.started:
            part = self.started.pop()
            self._say(f"stopping {part.name} ...")
            try:
                part.stop()
            except Exception as exc:  # noqa: BLE001 - keep stopping the rest
                self._say(f"{part.name} did not stop cleanly: {exc}")

    def release(self, *names: str) -> list[str]:
        """Stop these parts if this platform started them (not what they depend on); a
        later :meth:`require` starts them again. Returns the ones it stopped."""
        stopped = []
        for name in names:
            part = self.parts.get(name)
            if part is None or part not in self.started:
                continue
            self._say(f"releasing {name} ...")
            self.started.remove(part)
            part.stop()
            stopped.append(name)
        return stopped

    def dead_parts(self) -> list[Part]:
        return [part for part in self.started if part.died()]

    def health(self) -> dict[str, tuple[bool, str]]:
        return {name: part.health() for name, part in self.parts.items()}
