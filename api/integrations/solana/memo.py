"""Memo transactions: a short UTF-8 text signed onto the chain (SPL Memo v2).

The SPL Memo program (``MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr``) is one of
the programs every cluster has; LiteSVM (the local node) ships it too, so the
same transaction lands locally and on a real network. Memo v2 checks that every
account passed to it signed: we pass the payer, so the memo proves who wrote it.
"""

from __future__ import annotations

from dataclasses import dataclass

from solana.rpc.async_api import AsyncClient
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from api.integrations.solana.transport import call, send_and_confirm

MEMO_PROGRAM_ID = Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr")


@dataclass(frozen=True)
class Memo:
    signature: str
    slot: int
    text: str
    signers: tuple[str, ...]


def memo_instruction(text: str, signer: Pubkey) -> Instruction:
    return Instruction(MEMO_PROGRAM_ID, text.encode(), [AccountMeta(signer, True, False)])


async def send_memo(client: AsyncClient, payer: Keypair, text: str) -> tuple[str, int]:
    """Land ``text`` signed by ``payer``; (signature, slot) once confirmed."""
    signature = await send_and_confirm(client, payer, [memo_instruction(text, payer.pubkey())])
    status = (
        await call("getSignatureStatuses", lambda: client.get_signature_statuses([signature]))
    ).value[0]
    return str(signature), int(status.slot) if status is not None else 0


async def read_memo(client: AsyncClient, signature: str) -> Memo | None:
    """The memo text of a landed, successful transaction, or None (unknown / failed / none)."""
    sig = Signature.from_string(signature)
    resp = await call(
        "getTransaction",
        lambda: client.get_transaction(sig, encoding="base64", max_supported_transaction_version=0),
    )
    value = resp.value
    if value is None:
        return None
    meta = value.transaction.meta
    if meta is not None and meta.err is not None:
        return None
    tx = value.transaction.transaction
    if not isinstance(tx, VersionedTransaction):
        return None
    if not all(tx.verify_with_results()):
        return None
    message = tx.message
    keys = list(message.account_keys)
    signers = tuple(str(k) for k in keys[: message.header.num_required_signatures])
    for ix in message.instructions:
        if keys[ix.program_id_index] == MEMO_PROGRAM_ID:
            return Memo(signature, int(value.slot), bytes(ix.data).decode(), signers)
    return None
