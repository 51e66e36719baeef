"""Minting, moving and reading Token-2022 NFTs, against any Solana RPC.

Idempotence: the mint address is derived from (secret, nft_id), so a retried
saga step computes the same address; ``find_mint`` tells it whether the mint
already exists (and who holds it) before it sends anything, and a duplicate
create fails with ``TransactionFailed.account_in_use`` rather than minting twice.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

import structlog
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed
from solders.account import Account
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.rpc.responses import GetMultipleAccountsResp
from solders.signature import Signature
from solders.system_program import CreateAccountParams, create_account

from api.integrations.solana import token2022 as t22
from api.integrations.solana.layouts import (
    TokenMetadata,
    decode_mint,
    decode_token_account,
    is_token_account,
    mint_metadata,
)
from api.integrations.solana.transport import call, send_and_confirm

log = structlog.get_logger("api.integrations.solana")
MAX_ACCOUNTS_PER_CALL = 100  # getMultipleAccounts limit on every public RPC
NFT_DECIMALS = 0


@dataclass(frozen=True)
class MintState:
    """What the chain says about one NFT mint."""

    address: Pubkey
    program: Pubkey
    supply: int
    decimals: int
    mint_authority: Pubkey | None
    freeze_authority: Pubkey | None
    metadata: TokenMetadata | None
    holder: Pubkey | None  # wallet owning the token account that holds the token
    token_account: Pubkey | None

    @property
    def is_nft(self) -> bool:
        """Supply 1, indivisible, and nobody can mint more."""
        return self.supply == 1 and self.decimals == 0 and self.mint_authority is None


def deterministic_mint_keypair(secret: bytes, nft_id: UUID) -> Keypair:
    """The mint keypair of an NFT: HMAC-SHA256(secret, nft id) as an ed25519 seed.

    Every retry of the mint step gets the same address without storing a key; the
    secret keeps others from predicting (and squatting) future mint addresses.
    """
    seed = hmac.new(secret, b"ece:nft-mint:" + nft_id.bytes, hashlib.sha256).digest()
    return Keypair.from_seed(seed)


_rent_cache: dict[int, int] = {}


async def _rent(client: AsyncClient, size: int) -> int:
    """Rent-exempt minimum; cached, rent parameters are a cluster constant."""
    if size not in _rent_cache:
        resp = await call(
            "getMinimumBalanceForRentExemption",
            lambda: client.get_minimum_balance_for_rent_exemption(size),
        )
        _rent_cache[size] = resp.value
    return _rent_cache[size]


async def mint_nft(
    client: AsyncClient,
    payer: Keypair,
    mint: Keypair,
    owner: Pubkey,
    name: str,
    symbol: str,
    uri: str,
) -> Signature:
    """Create a supply-1 Token-2022 NFT with on-mint metadata, held by ``owner``. One transaction.

    Steps: create the mint account (rent prepaid for the final size including the
    metadata, which Token-2022 reallocates into), MetadataPointer -> the mint
    itself, InitializeMint2 (0 decimals, payer as temporary mint authority),
    TokenMetadata Initialize (payer = update authority), the owner's ATA, mint 1,
    then remove the mint authority so the supply is fixed forever.
    All in one transaction so a crash can never leave a half-built NFT.
    """
    lamports = await mint_lamports(client, name, symbol, uri)
    instructions = mint_instructions(payer.pubkey(), mint.pubkey(), owner, name, symbol, uri,
                                     lamports)
    signature = await send_and_confirm(client, payer, instructions, [mint])
    log.info("nft_minted", mint=str(mint.pubkey()), owner=str(owner), signature=str(signature))
    return signature


async def mint_lamports(client: AsyncClient, name: str, symbol: str, uri: str) -> int:
    """Rent for the mint account at its final size (with the metadata it grows into)."""
    space = t22.mint_space_with_pointer()
    return await _rent(client, space + t22.token_metadata_len(name, symbol, uri))


def mint_instructions(
    payer_key: Pubkey, mint_key: Pubkey, owner: Pubkey, name: str, symbol: str, uri: str,
    lamports: int,
) -> list[Instruction]:
    """The instructions of one NFT mint (see :func:`mint_nft`), for callers that sign and
    send many mints themselves (the batched saga). About 900 bytes with its two
    signatures: one mint per transaction, so batches are pipelined, not packed."""
    ata = t22.associated_token_address(owner, mint_key)
    return [
        create_account(
            CreateAccountParams(
                from_pubkey=payer_key,
                to_pubkey=mint_key,
                lamports=lamports,
                space=t22.mint_space_with_pointer(),
                owner=t22.TOKEN_2022_PROGRAM_ID,
            )
        ),
        t22.initialize_metadata_pointer(mint_key, payer_key, mint_key),
        t22.initialize_mint2(mint_key, NFT_DECIMALS, payer_key),
        t22.initialize_token_metadata(mint_key, payer_key, payer_key, name, symbol, uri),
        t22.create_associated_token_account_idempotent(payer_key, owner, mint_key),
        t22.mint_to_checked(mint_key, ata, payer_key, 1, NFT_DECIMALS),
        t22.set_authority(mint_key, payer_key, t22.AUTHORITY_MINT_TOKENS, None),
    ]


async def transfer_nft(
    client: AsyncClient,
    payer: Keypair,
    from_owner: Keypair,
    to_owner: Pubkey,
    mint: Pubkey,
) -> Signature:
    """Move the NFT to ``to_owner``'s ATA (created if missing; payer pays its rent)."""
    source = t22.associated_token_address(from_owner.pubkey(), mint)
    destination = t22.associated_token_address(to_owner, mint)
    instructions = [
        t22.create_associated_token_account_idempotent(payer.pubkey(), to_owner, mint),
        t22.transfer_checked(source, mint, destination, from_owner.pubkey(), 1, NFT_DECIMALS),
    ]
    signature = await send_and_confirm(client, payer, instructions, [from_owner])
    log.info("nft_transferred", mint=str(mint), to=str(to_owner), signature=str(signature))
    return signature


def _mint_state(
    address: Pubkey, account: Account, holder: Pubkey | None, token_account: Pubkey | None
) -> MintState:
    info = decode_mint(account.data)
    return MintState(
        address,
        account.owner,
        info.supply,
        info.decimals,
        info.mint_authority,
        info.freeze_authority,
        mint_metadata(account.data),
        holder,
        token_account,
    )


def _holds(account: Account | None, mint: Pubkey) -> Pubkey | None:
    """The wallet owning ``account`` if it is a token account holding >= 1 of ``mint``."""
    if account is None or not is_token_account(account.data):
        return None
    info = decode_token_account(account.data)
    return info.owner if info.mint == mint and info.amount > 0 else None


async def _multiple(client: AsyncClient, keys: Sequence[Pubkey]) -> list[Account | None]:
    out: list[Account | None] = []
    for start in range(0, len(keys), MAX_ACCOUNTS_PER_CALL):
        chunk = list(keys[start : start + MAX_ACCOUNTS_PER_CALL])

        async def fetch(chunk: list[Pubkey] = chunk) -> GetMultipleAccountsResp:
            return await client.get_multiple_accounts(chunk, Confirmed)

        out.extend((await call("getMultipleAccounts", fetch)).value)
    return out


async def _largest_holder(client: AsyncClient, mint: Pubkey) -> tuple[Pubkey | None, Pubkey | None]:
    """(wallet, token account) holding the mint, found without getProgramAccounts."""
    resp = await call(
        "getTokenLargestAccounts", lambda: client.get_token_largest_accounts(mint, Confirmed)
    )
    candidates = [b.address for b in resp.value if int(b.amount.amount) > 0]
    if not candidates:
        return None, None
    accounts = await _multiple(client, candidates[:1])
    wallet = _holds(accounts[0], mint)
    return (wallet, candidates[0]) if wallet is not None else (None, None)


async def find_mint(
    client: AsyncClient, mint: Pubkey, *expected_owners: Pubkey
) -> MintState | None:
    """The mint's on-chain state, or None when it does not exist (not minted yet).

    With ``expected_owners`` the holder is looked for with a single getMultipleAccounts
    (the mint plus each candidate's ATA: a transfer passes the recipient *and* the
    sender, so either answer costs one call); otherwise, or when the token is
    elsewhere, the holder is found with getTokenLargestAccounts (on every RPC).
    """
    atas = [t22.associated_token_address(owner, mint) for owner in expected_owners]
    accounts = await _multiple(client, [mint, *atas])
    if accounts[0] is None:
        return None
    for ata, account in zip(atas, accounts[1:], strict=True):
        holder = _holds(account, mint)
        if holder is not None:
            return _mint_state(mint, accounts[0], holder, ata)
    holder, token_account = await _largest_holder(client, mint)
    return _mint_state(mint, accounts[0], holder, token_account)


async def onchain_owner(
    client: AsyncClient, mint: Pubkey, *expected_owners: Pubkey
) -> tuple[Pubkey | None, int]:
    """(wallet holding the NFT or None, supply) for reconciliation; (None, 0) if no mint.
    ``expected_owners`` are checked first, as in :func:`find_mint`."""
    state = await find_mint(client, mint, *expected_owners)
    return (None, 0) if state is None else (state.holder, state.supply)


async def onchain_owners(
    client: AsyncClient, expected: Sequence[tuple[Pubkey, Pubkey | None]]
) -> dict[Pubkey, tuple[Pubkey | None, int]]:
    """Batched ``onchain_owner`` for many (mint, expected owner) pairs.

    The common case (the database is right) costs one getMultipleAccounts per 50
    NFTs: each mint plus its expected owner's ATA. Only disagreements cost an
    extra getTokenLargestAccounts to find where the token actually is.
    """
    keys: list[Pubkey] = []
    for mint, owner in expected:
        keys.append(mint)
        keys.append(t22.associated_token_address(owner, mint) if owner is not None else mint)
    accounts = await _multiple(client, keys)
    result: dict[Pubkey, tuple[Pubkey | None, int]] = {}
    for index, (mint, owner) in enumerate(expected):
        mint_account, ata_account = accounts[2 * index], accounts[2 * index + 1]
        if mint_account is None:
            result[mint] = (None, 0)
            continue
        supply = decode_mint(mint_account.data).supply
        holder = _holds(ata_account, mint) if owner is not None else None
        if holder is None and supply > 0:
            holder, _ = await _largest_holder(client, mint)
        result[mint] = (holder, supply)
    return result
