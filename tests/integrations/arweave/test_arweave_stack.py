"""The arweave stack part on its own: binding, persistence, clean stop, clear failures.

Uses a private gateway (own port and data folder) rather than the session one,
because these tests stop and restart it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

import ops.stack.arweave as arweave_module
from api.integrations.arweave import ArweaveClient, Wallet
from ece.settings import Settings
from ops.stack.arweave import Arweave
from ops.stack.base import PartFailed, free_port, port_open


def _listeners(port: int) -> set[str]:
    """Local addresses (hex, as the kernel prints them) listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as handle:
            for line in handle.readlines()[1:]:
                fields = line.split()
                address, hex_port = fields[1].rsplit(":", 1)
                if int(hex_port, 16) == port and fields[3] == "0A":  # 0A = LISTEN
                    found.add(address)
    return found


@pytest.fixture
def part(tmp_path: Path) -> Iterator[Arweave]:
    settings = Settings(data_dir=tmp_path, arweave_url=f"http://127.0.0.1:{free_port()}")
    gateway = Arweave(settings)
    yield gateway
    gateway.stop()


async def test_listens_on_loopback_only_and_survives_a_restart(part: Arweave) -> None:
    part.start()
    assert part.health()[0]
    assert _listeners(part.port) == {"0100007F"}  # 127.0.0.1, nothing on 0.0.0.0 or ::
    wallet = Wallet.generate()
    async with ArweaveClient(part.url) as client:
        await client.ensure_funded(wallet, 10**12)
        tx_id = await client.upload(b'{"kept": true}', {"Content-Type": "application/json"}, wallet)
        await client.wait_confirmed(tx_id, within=30, poll=0.2)
    assert (part.folder / "db" / "db.sqlite").exists()
    assert (part.folder / "logs").exists(), "arlocal's request log belongs in the data folder"

    pid = part.process.proc.pid if part.process and part.process.proc else -1
    part.stop()
    assert not port_open("127.0.0.1", part.port)
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # the whole process group is gone

    part.start()  # same data folder: blocks and data are still there
    async with ArweaveClient(part.url) as client:
        assert await client.get_data(tx_id) == b'{"kept": true}'
        assert (await client.status(tx_id)).confirmed
        assert await client.balance(wallet.address) > 0
        assert (await client.info())["height"] >= 1


def test_missing_node_modules_names_the_fix(part: Arweave, monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    monkeypatch.setattr(arweave_module, "NODE_MODULES", tmp_path / "node_modules")
    with pytest.raises(PartFailed) as caught:
        part.start()
    assert "npm ci" in str(caught.value) and caught.value.part == "arweave"
    assert part.process is None


def test_port_in_use_is_reported(part: Arweave) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", part.port))
        busy.listen()
        with pytest.raises(PartFailed, match="already in use"):
            part.start()


def test_external_gateway_is_not_started(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, arweave_url=f"http://127.0.0.1:{free_port()}")
    gateway = Arweave(settings, external=True)
    gateway.start()
    assert gateway.process is None
    healthy, detail = gateway.health()
    assert not healthy and gateway.url in detail
