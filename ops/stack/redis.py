"""Redis: the card cache, rate limits and the auction timer."""

from __future__ import annotations

import redis as redis_lib

from ops.stack.base import ManagedProcess, Part, require_binary, wait_until


class Redis(Part):
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
