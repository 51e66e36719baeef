"""JSON-RPC 2.0 methods of the local node, answered with solders' response types.

Why solders' types: the ``solana`` AsyncClient parses every answer with the same
classes (``GetAccountInfoResp.from_json`` ...), so serialising with their
``to_json`` guarantees the wire format the client expects, field for field.
Errors follow the validator's codes (-32002 preflight failure with the
simulation result and logs, -32003 signature failure, -32602 bad params).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import base58
from solders.account import Account
from solders.account_decoder import UiTokenAmount
from solders.message import from_bytes_versioned
from solders.pubkey import Pubkey
from solders.rpc.errors import SendTransactionPreflightFailureMessage
from solders.rpc.responses import (
    GetAccountInfoResp,
    GetBalanceResp,
    GetBlockHeightResp,
    GetFeeForMessageResp,
    GetGenesisHashResp,
    GetHealthResp,
    GetLatestBlockhashResp,
    GetMinimumBalanceForRentExemptionResp,
    GetMultipleAccountsResp,
    GetSignatureStatusesResp,
    GetSlotResp,
    GetTokenAccountsByOwnerResp,
    GetTokenLargestAccountsResp,
    GetTokenSupplyResp,
    GetTransactionCountResp,
    GetTransactionResp,
    GetVersionResp,
    RequestAirdropResp,
    RpcBlockhash,
    RpcKeyedAccount,
    RpcResponseContext,
    RpcSimulateTransactionResult,
    RpcTokenAccountBalance,
    RpcVersionInfo,
    SendTransactionResp,
    SimulateTransactionResp,
)
from solders.signature import Signature
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata
from solders.transaction_status import (
    EncodedConfirmedTransactionWithStatusMeta,
    EncodedTransactionWithStatusMeta,
    TransactionErrorFieldless,
    UiTransactionStatusMeta,
)

from ops.localchain.chain import TOKEN_PROGRAMS, LocalChain

VERSION = "2.1.0"
LAMPORTS_PER_SIGNATURE = 5000
MAX_MULTIPLE_ACCOUNTS = 100


class RpcError(Exception):
    """A JSON-RPC error answer (code, message, optional data)."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data

    def body(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            err["data"] = self.data
        return err


def invalid_params(message: str) -> RpcError:
    return RpcError(-32602, message)


def _pubkey(value: Any) -> Pubkey:
    try:
        return Pubkey.from_string(value)
    except (ValueError, TypeError) as exc:
        raise invalid_params(f"Invalid param: {value!r} is not a base58 public key") from exc


def _config(params: list[Any], index: int) -> dict[str, Any]:
    if len(params) > index and isinstance(params[index], dict):
        return params[index]
    return {}


def _arg(params: list[Any], index: int, what: str) -> Any:
    if len(params) <= index:
        raise invalid_params(f"missing parameter {index}: {what}")
    return params[index]


def _decode_bytes(value: str, encoding: str) -> bytes:
    try:
        return base64.b64decode(value) if encoding == "base64" else base58.b58decode(value)
    except ValueError as exc:
        raise invalid_params(f"invalid {encoding}: {exc}") from exc


def _decode_tx(params: list[Any]) -> VersionedTransaction:
    encoding = _config(params, 1).get("encoding", "base58")
    if encoding not in ("base58", "base64"):
        raise invalid_params(f"unsupported encoding: {encoding}")
    raw = _decode_bytes(_arg(params, 0, "transaction"), encoding)
    try:
        return VersionedTransaction.from_bytes(raw)
    except ValueError as exc:
        raise invalid_params(f"failed to deserialize transaction: {exc}") from exc


def _check_account_encoding(config: dict[str, Any]) -> None:
    encoding = config.get("encoding", "base64")
    if encoding != "base64":
        raise invalid_params(f"encoding {encoding!r} is not supported locally; use base64")


def _sliced(account: Account | None, config: dict[str, Any]) -> Account | None:
    ds = config.get("dataSlice")
    if account is None or not ds:
        return account
    start = int(ds.get("offset", 0))
    end = start + int(ds.get("length", 0))
    return Account(account.lamports, account.data[start:end], account.owner,
                   account.executable, account.rent_epoch)


def _describe(err: Any) -> str:
    """A validator-like message for a transaction error given as its JSON form."""
    if err == "BlockhashNotFound":
        return "Blockhash not found"
    if isinstance(err, dict) and "InstructionError" in err:
        index, detail = err["InstructionError"]
        if isinstance(detail, dict) and "Custom" in detail:
            detail = f"custom program error: {detail['Custom']:#x}"
        return f"Error processing Instruction {index}: {detail}"
    return json.dumps(err) if not isinstance(err, str) else err


class Methods:
    """The RPC methods; each returns a solders response object for one request."""

    def __init__(self, chain: LocalChain) -> None:
        self.chain = chain
        self.table: dict[str, Callable[[list[Any]], Any]] = {
            "getHealth": lambda p: GetHealthResp("ok"),
            "getVersion": lambda p: GetVersionResp(RpcVersionInfo(VERSION, 0)),
            "getSlot": lambda p: GetSlotResp(chain.slot),
            "getBlockHeight": lambda p: GetBlockHeightResp(chain.slot),
            "getGenesisHash": lambda p: GetGenesisHashResp(chain.genesis_hash),
            "getTransactionCount": lambda p: GetTransactionCountResp(chain.transaction_count),
            "getLatestBlockhash": self.get_latest_blockhash,
            "getMinimumBalanceForRentExemption": self.get_minimum_balance,
            "getBalance": self.get_balance,
            "getAccountInfo": self.get_account_info,
            "getMultipleAccounts": self.get_multiple_accounts,
            "requestAirdrop": self.request_airdrop,
            "sendTransaction": self.send_transaction,
            "simulateTransaction": self.simulate_transaction,
            "getSignatureStatuses": self.get_signature_statuses,
            "getTransaction": self.get_transaction,
            "getFeeForMessage": self.get_fee_for_message,
            "getTokenAccountsByOwner": self.get_token_accounts_by_owner,
            "getTokenLargestAccounts": self.get_token_largest_accounts,
            "getTokenSupply": self.get_token_supply,
        }

    def ctx(self) -> RpcResponseContext:
        return RpcResponseContext(self.chain.slot, VERSION)

    def call(self, method: str, params: list[Any]) -> Any:
        handler = self.table.get(method)
        if handler is None:
            raise RpcError(-32601, f"Method not found: {method}")
        self.chain.tick()
        return handler(params)

    # --- cluster --------------------------------------------------------

    def get_latest_blockhash(self, params: list[Any]) -> Any:
        chain = self.chain
        value = RpcBlockhash(chain.blockhash, chain.last_valid_block_height())
        return GetLatestBlockhashResp(value, self.ctx())

    def get_minimum_balance(self, params: list[Any]) -> Any:
        size = int(_arg(params, 0, "data length"))
        return GetMinimumBalanceForRentExemptionResp(
            self.chain.svm.minimum_balance_for_rent_exemption(size)
        )

    def get_fee_for_message(self, params: list[Any]) -> Any:
        raw = _decode_bytes(_arg(params, 0, "message"), "base64")
        try:
            message = from_bytes_versioned(raw)
        except ValueError as exc:
            raise invalid_params(f"failed to deserialize message: {exc}") from exc
        blockhash = message.recent_blockhash
        if not self.chain.blockhash_valid(blockhash):
            return GetFeeForMessageResp(None, self.ctx())
        signers = message.header.num_required_signatures
        return GetFeeForMessageResp(signers * LAMPORTS_PER_SIGNATURE, self.ctx())

    # --- accounts -------------------------------------------------------

    def get_balance(self, params: list[Any]) -> Any:
        key = _pubkey(_arg(params, 0, "pubkey"))
        return GetBalanceResp(self.chain.svm.get_balance(key) or 0, self.ctx())

    def get_account_info(self, params: list[Any]) -> Any:
        key = _pubkey(_arg(params, 0, "pubkey"))
        config = _config(params, 1)
        _check_account_encoding(config)
        return GetAccountInfoResp(_sliced(self.chain.get_account(key), config), self.ctx())

    def get_multiple_accounts(self, params: list[Any]) -> Any:
        keys = [_pubkey(k) for k in _arg(params, 0, "pubkeys")]
        if len(keys) > MAX_MULTIPLE_ACCOUNTS:
            raise invalid_params(f"Too many inputs provided; max {MAX_MULTIPLE_ACCOUNTS}")
        config = _config(params, 1)
        _check_account_encoding(config)
        accounts = [_sliced(self.chain.get_account(k), config) for k in keys]
        return GetMultipleAccountsResp(accounts, self.ctx())

    def request_airdrop(self, params: list[Any]) -> Any:
        key = _pubkey(_arg(params, 0, "pubkey"))
        lamports = int(_arg(params, 1, "lamports"))
        result = self.chain.airdrop(key, lamports)
        if isinstance(result, FailedTransactionMetadata):
            raise RpcError(-32600, f"airdrop failed: {result.err()}")
        return RequestAirdropResp(result.signature())

    # --- tokens ---------------------------------------------------------

    def get_token_accounts_by_owner(self, params: list[Any]) -> Any:
        owner = _pubkey(_arg(params, 0, "owner"))
        fltr = _arg(params, 1, "filter: {mint} or {programId}")
        _check_account_encoding(_config(params, 2))
        if not isinstance(fltr, dict) or not ({"mint", "programId"} & fltr.keys()):
            raise invalid_params("Invalid param: expected {mint} or {programId}")
        mint = _pubkey(fltr["mint"]) if "mint" in fltr else None
        program = _pubkey(fltr["programId"]) if "programId" in fltr else None
        if program is not None and program not in TOKEN_PROGRAMS:
            raise invalid_params("Invalid param: unrecognized Token program id")
        found: list[RpcKeyedAccount] = []
        for key in sorted(self.chain.by_owner.get(owner, ()), key=bytes):
            account = self.chain.get_account(key)
            if account is None:
                continue
            if mint is not None and account.data[0:32] != bytes(mint):
                continue
            if program is not None and account.owner != program:
                continue
            found.append(RpcKeyedAccount(key, account))
        return GetTokenAccountsByOwnerResp(found, self.ctx())

    def _mint_decimals(self, mint: Pubkey) -> int:
        account = self.chain.get_account(mint)
        if account is None or account.owner not in TOKEN_PROGRAMS or len(account.data) < 82:
            raise invalid_params("Invalid param: could not find mint")
        return account.data[44]

    @staticmethod
    def _ui_amount(amount: int, decimals: int) -> UiTokenAmount:
        ui = amount / (10**decimals)
        text = str(amount) if decimals == 0 else f"{ui:.{decimals}f}".rstrip("0").rstrip(".")
        return UiTokenAmount(ui, decimals, str(amount), text)

    def get_token_largest_accounts(self, params: list[Any]) -> Any:
        mint = _pubkey(_arg(params, 0, "mint"))
        decimals = self._mint_decimals(mint)
        holders = [(self.chain.token_amount(k), k) for k in self.chain.by_mint.get(mint, ())]
        holders.sort(key=lambda item: (-item[0], bytes(item[1])))
        value = [RpcTokenAccountBalance(k, self._ui_amount(a, decimals)) for a, k in holders[:20]]
        return GetTokenLargestAccountsResp(value, self.ctx())

    def get_token_supply(self, params: list[Any]) -> Any:
        mint = _pubkey(_arg(params, 0, "mint"))
        decimals = self._mint_decimals(mint)
        account = self.chain.get_account(mint)
        assert account is not None
        supply = int.from_bytes(account.data[36:44], "little")
        return GetTokenSupplyResp(self._ui_amount(supply, decimals), self.ctx())

    # --- transactions -----------------------------------------------------

    def send_transaction(self, params: list[Any]) -> Any:
        tx = _decode_tx(params)
        skip_preflight = bool(_config(params, 1).get("skipPreflight", False))
        signature = tx.signatures[0]
        if not self.chain.blockhash_valid(tx.message.recent_blockhash):
            if skip_preflight:
                return SendTransactionResp(signature)  # a validator drops it silently
            raise self._preflight_failure(TransactionErrorFieldless.BlockhashNotFound, [], None)
        if not skip_preflight:
            # Simulate first, as a validator's preflight does: a transaction that would
            # fail is refused without landing (no fee, no status, no history entry).
            sim = self.chain.svm.simulate_transaction(tx)
            if isinstance(sim, FailedTransactionMetadata):
                self._raise_failure(sim)
        result = self.chain.execute(tx)
        if isinstance(result, FailedTransactionMetadata) and not skip_preflight:
            self._raise_failure(result)  # only if the state changed since the simulation
        return SendTransactionResp(signature)

    def _raise_failure(self, failed: FailedTransactionMetadata) -> None:
        err = failed.err()
        if err == TransactionErrorFieldless.SignatureFailure:
            raise RpcError(-32003, "Transaction signature verification failure")
        meta = failed.meta()
        raise self._preflight_failure(err, meta.logs(), meta.compute_units_consumed())

    def _preflight_failure(self, err: Any, logs: list[str], units: int | None) -> RpcError:
        sim = RpcSimulateTransactionResult(err=err, logs=logs, units_consumed=units)
        body = json.loads(SendTransactionPreflightFailureMessage("", sim).to_json())
        message = f"Transaction simulation failed: {_describe(body['data']['err'])}"
        return RpcError(-32002, message, body["data"])

    def simulate_transaction(self, params: list[Any]) -> Any:
        tx = _decode_tx(params)
        config = _config(params, 1)
        # LiteSVM ignores the blockhash (its check is off), so "replace" only skips ours.
        if not config.get("replaceRecentBlockhash") and not self.chain.blockhash_valid(
            tx.message.recent_blockhash
        ):
            sim = RpcSimulateTransactionResult(err=TransactionErrorFieldless.BlockhashNotFound,
                                               logs=[])
            return SimulateTransactionResp(sim, self.ctx())  # type: ignore[call-arg]  # stub lacks context
        # sigVerify defaults to false, as on a validator: fee estimates use unsigned txs.
        svm = self.chain.svm
        svm.with_sigverify(bool(config.get("sigVerify", False)))
        try:
            result = svm.simulate_transaction(tx)
        finally:
            svm.with_sigverify(True)
        if isinstance(result, FailedTransactionMetadata):
            meta = result.meta()
            sim = RpcSimulateTransactionResult(err=result.err(), logs=meta.logs(),
                                               units_consumed=meta.compute_units_consumed())
        else:
            meta = result.meta()
            sim = RpcSimulateTransactionResult(err=None, logs=meta.logs(),
                                               units_consumed=meta.compute_units_consumed(),
                                               fee=meta.fee())
        return SimulateTransactionResp(sim, self.ctx())  # type: ignore[call-arg]  # stub lacks context

    def get_signature_statuses(self, params: list[Any]) -> Any:
        sigs = _arg(params, 0, "signatures")
        if len(sigs) > 256:
            raise invalid_params("Too many inputs provided; max 256")
        statuses = self.chain.statuses
        value = []
        for raw in sigs:
            try:
                sig = Signature.from_string(raw)
            except ValueError as exc:
                raise invalid_params(f"Invalid param: {raw!r} is not a signature") from exc
            value.append(statuses.get(sig))
        return GetSignatureStatusesResp(value, self.ctx())

    def get_transaction(self, params: list[Any]) -> Any:
        try:
            sig = Signature.from_string(_arg(params, 0, "signature"))
        except ValueError as exc:
            raise invalid_params("Invalid param: not a signature") from exc
        encoding = _config(params, 1).get("encoding", "json")
        if encoding not in ("json", "base64"):
            raise invalid_params(f"encoding {encoding!r} is not supported by the local node")
        done = self.chain.transactions.get(sig)
        if done is None:
            return GetTransactionResp(None)
        ui_meta = UiTransactionStatusMeta(
            done.err, done.fee, done.pre_balances, done.post_balances,
            log_messages=done.logs, compute_units_consumed=done.compute_units,
        )
        encoded = EncodedTransactionWithStatusMeta(done.tx, ui_meta, None)  # type: ignore[arg-type]
        return GetTransactionResp(
            EncodedConfirmedTransactionWithStatusMeta(done.slot, encoded, done.block_time)
        )

