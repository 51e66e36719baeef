"""Redis: the card cache, rate limits and the auction timer."""

from __future__ import annotations

import redis as redis_lib

from ops.stack.base import ManagedProcess, Part, require_binary, wait_until


class Redis(Part):
    """The local Redis keeps nothing on disk (``--save ""``): a restarted one is empty.

    The card cache and rate limits refill by themselves; the market hot set is derived
    by the stream job, which would resume from its checkpoint and leave it empty (not
    ready: the API answers from Postgres). So after a restart the job is restarted on a
    new market_data generation, exactly what ``ece rebuild-cache`` does, and re-reads
    its topics into the new Redis.
    """

    name = "redis"

    @property
    def url(self) -> str:
        return self.settings.redis_url

    def start(self) -> None:
        if self.external:
            return
        binary = require_binary(self.name, "redis-server", "apt-get install -y redis-server")
        folder = self.settings.data_dir / "redis"
        folder.mkdir(parents=True, exist_ok=True)
        argv = [binary, "--port", str(self.settings.redis_port), "--bind", "127.0.0.1",
                "--dir", str(folder), "--save", "", "--appendonly", "no",
                "--protected-mode", "yes", "--daemonize", "no"]
        self.process = ManagedProcess(self.name, argv, self.log_path)
        proc = self.process.start()
        wait_until(lambda: self.health()[0], 20, "answering PING", self.name, proc,
                   self.log_path)

    def health(self) -> tuple[bool, str]:
        try:
            client = redis_lib.Redis.from_url(self.settings.redis_url, socket_timeout=1)
            client.ping()
            client.close()
            return True, self.url
        except redis_lib.RedisError as exc:
            return False, str(exc)

    def after_restart(self) -> None:
        if self.external:
            return
        from streaming.jobs.market_data import bump_generation

        bump_generation(self.settings)  # the job's next start re-reads every topic
