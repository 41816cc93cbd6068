"""A chain client that sends every transaction the same way on every backend.

Each write is simulated first (so a revert reaches the user with its reason and changes
nothing, not even the sender's nonce), sent with explicit gas and EIP-1559 fees, and its receipt
is fetched right after sending. Reverts from eth-tester (`TransactionFailed`) and from a node
(`ContractLogicError`, or a JSON-RPC error) all surface as one `ChainError` with the reason.
eth-tester is loaded only with the memory chain (`cairn.chain.memory`), and its revert is
caught only once it is.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

import rlp
from eth_account import Account
from eth_account._utils.legacy_transactions import Transaction as LegacyTransaction
from eth_account.signers.local import LocalAccount
from eth_account.typed_transactions import TypedTransaction
from eth_utils.exceptions import ValidationError as EVMRefusal
from hexbytes import HexBytes
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.exceptions import BlockNotFound, ContractLogicError, TimeExhausted, Web3RPCError
from web3.types import FilterParams, TxParams, TxReceipt

from cairn.chain.backends import ChainBackend
from cairn.core.errors import ChainError, ChainUnavailable, InvalidInput

GWEI = 10**9
# Head-room over the estimate: storage refunds and warm/cold slots make estimates tight.
GAS_MARGIN = 1.25
GAS_PAD = 10_000

_REVERT_PREFIX = re.compile(r"^.*?execution reverted:?\s*", re.IGNORECASE | re.DOTALL)
_NODE_REVERTS: tuple[type[Exception], ...] = (ContractLogicError, Web3RPCError)


def _reverts() -> tuple[type[Exception], ...]:
    """The exceptions a revert arrives as: a node's, and eth-tester's once the memory chain has
    loaded it (nothing else raises it)."""
    tester = sys.modules.get("eth_tester.exceptions")
    return _NODE_REVERTS if tester is None else (*_NODE_REVERTS, tester.TransactionFailed)


def revert_reason(exc: BaseException) -> str | None:
    """The contract's revert string inside an exception from any backend, if it carries one."""
    if isinstance(exc, (ContractLogicError, Web3RPCError)):
        text = exc.message or str(exc)
    elif isinstance(exc, _reverts()):  # eth-tester's TransactionFailed
        text = str(exc.args[0]) if exc.args else str(exc)
    else:
        return None
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    reason = _REVERT_PREFIX.sub("", text).strip().strip("'\"")
    return reason or "execution reverted"


@contextmanager
def reverts_as_chain_errors(action: str) -> Iterator[None]:
    """Turn any backend's revert inside the block into a `ChainError` naming `action`."""
    try:
        yield
    except _reverts() as exc:
        reason = revert_reason(exc)
        raise ChainError(f"{action} reverted: {reason}", reason=reason) from exc
    except EVMRefusal as exc:  # the in-process EVM refusing a transaction before running it
        raise ChainError(f"{action} was refused by the chain: {_refusal(exc)}") from exc


def _refusal(exc: EVMRefusal) -> str:
    """py-evm's refusal in a user's words: who cannot pay, rather than the sender's raw bytes."""
    text = str(exc)
    found = re.search(r"cannot afford txn gas (\d+) with account balance (\d+)", text)
    if found is None:
        return text
    return (
        f"the sender holds {found[2]} wei and the call's gas costs up to {found[1]} wei "
        "(the memory chain charges a simulated call's gas as a transaction's; fund the account "
        "with ether first)"
    )


def decode_signed_transaction(raw: bytes) -> dict[str, Any]:
    """Fields and sender of a signed transaction, typed (EIP-2718) or legacy (EIP-155)."""
    try:
        if raw and raw[0] <= 0x7F:
            fields = dict(TypedTransaction.from_bytes(HexBytes(raw)).as_dict())
        else:
            fields = dict(rlp.decode(raw, LegacyTransaction).as_dict())
            v = int(fields["v"])
            if v < 35:  # pre-EIP-155: valid on every chain, so refuse it
                raise InvalidInput(
                    "the transaction has no chain id (EIP-155); sign it for this chain"
                )
            fields["chainId"] = (v - 35) // 2
        fields["from"] = Account.recover_transaction(raw)
    except InvalidInput:
        raise
    except Exception as exc:  # malformed RLP, bad signature, unknown type
        raise InvalidInput(f"not a signed Ethereum transaction: {exc}") from exc
    return fields


class ChainClient:
    """Calls, gas estimates and signed transactions against one backend."""

    def __init__(
        self, backend: ChainBackend, *, on_receipt: Callable[[TxReceipt], None] | None = None
    ) -> None:
        self.backend = backend
        self.on_receipt = on_receipt  # told of each successful receipt (the index records it)
        self.w3: Web3 = backend.w3
        try:
            self.chain_id: int = self.w3.eth.chain_id
        except Exception as exc:  # connection errors differ per provider
            raise ChainUnavailable(
                f"cannot read the chain id from the {backend.kind} chain: {exc}"
            ) from exc
        # eth-tester is not thread-safe, and one nonce sequence per sender needs one writer.
        self._lock = threading.RLock()

    # -- reads ---------------------------------------------------------------------------

    def call(self, fn: ContractFunction, *, sender: str | None = None) -> Any:
        """Run a view function; a revert becomes a `ChainError`."""
        with self._lock, reverts_as_chain_errors(fn.fn_name):
            params = cast(TxParams, {"from": sender} if sender else {})
            return fn.call(params)

    def logs(
        self, event: Any, from_block: int, to_block: int, filters: dict[str, Any] | None = None
    ) -> list[Any]:
        """Decoded logs of a contract event over a block range, optionally by indexed args."""
        with self._lock:
            return list(
                event.get_logs(argument_filters=filters, from_block=from_block, to_block=to_block)
            )

    def contract_logs(self, events: Sequence[Any], from_block: int, to_block: int) -> list[Any]:
        """Decoded logs of several events of one contract over a block range, in chain order.

        One eth_getLogs request (the events' topics as alternatives) rather than one per event.
        """
        by_topic = {str(event.topic).lower(): event() for event in events}
        params = cast(
            FilterParams,
            {
                "address": events[0].address,
                "fromBlock": from_block,
                "toBlock": to_block,
                "topics": [list(by_topic)],
            },
        )
        with self._lock:
            raw = self.w3.eth.get_logs(params)
        decoded = [
            by_topic[topic].process_log(log)
            for log in raw
            if (topic := HexBytes(log["topics"][0]).to_0x_hex() if log["topics"] else "")
            in by_topic
        ]
        return sorted(decoded, key=lambda log: (log["blockNumber"], log["logIndex"]))

    def block_number(self) -> int:
        """The newest block."""
        with self._lock:
            return int(self.w3.eth.block_number)

    def block_hash(self, number: int) -> str | None:
        """The hash of block `number` as 0x-hex, or None if the chain has no such block."""
        with self._lock:
            try:
                block = self.w3.eth.get_block(number)
            except BlockNotFound:
                return None
        return HexBytes(block["hash"]).to_0x_hex()

    def block_time(self) -> int:
        """The newest block's timestamp: the chain's clock, which time locks are checked by."""
        with self._lock:
            return int(self.w3.eth.get_block("latest")["timestamp"])

    def next_block_time(self) -> int:
        """About when a transaction sent now is mined: the pending block's time where the chain
        has one (anvil mines on demand, so an idle chain's newest block is old), else the
        newest block's. Time locks a transaction meets are checked against this."""
        with self._lock:
            latest = int(self.w3.eth.get_block("latest")["timestamp"])
            try:
                pending = int(self.w3.eth.get_block("pending")["timestamp"])
            except (BlockNotFound, ValueError, Web3RPCError):  # a node without a pending block
                pending = latest
        return max(latest, pending)

    def balance(self, address: str) -> int:
        """Native currency balance in wei."""
        with self._lock:
            return int(self.w3.eth.get_balance(Web3.to_checksum_address(address)))

    def nonce(self, address: str) -> int:
        """The next nonce for `address`, counting pending transactions."""
        with self._lock:
            return int(
                self.w3.eth.get_transaction_count(Web3.to_checksum_address(address), "pending")
            )

    def await_mined(self, addresses: Sequence[str], timeout: float, poll: float = 1.0) -> None:
        """Wait until every transaction these accounts sent is mined (or dropped): the chain
        counts none of theirs pending.

        A node killed after broadcasting a payment and before its mining must not decide again
        what to pay from a chain that does not show the payment yet: it would pay twice. Raises
        `ChainUnavailable` naming the account after `timeout` seconds.
        """
        deadline = time.monotonic() + timeout
        for address in addresses:
            account = Web3.to_checksum_address(address)
            while True:
                with self._lock:
                    pending = int(self.w3.eth.get_transaction_count(account, "pending"))
                    mined = int(self.w3.eth.get_transaction_count(account, "latest"))
                if pending <= mined:
                    break
                if time.monotonic() >= deadline:
                    raise ChainUnavailable(
                        f"{account} has {pending - mined} transaction(s) sent before and not "
                        f"mined after {timeout:.0f} s; the node decides what to pay from what the "
                        "chain shows, so it waits for them: start it again once they are mined "
                        "(or replaced)"
                    )
                time.sleep(poll)

    def fee_params(self) -> dict[str, int]:
        """EIP-1559 fees that get a transaction into the next block."""
        with self._lock:
            block = self.w3.eth.get_block("latest")
            base = int(block.get("baseFeePerGas", 0) or 0)
            if self.backend.can_fund:
                tip = GWEI
            else:
                try:
                    tip = int(self.w3.eth.max_priority_fee)
                except Exception:  # some nodes lack eth_maxPriorityFeePerGas
                    tip = GWEI
        return {"maxFeePerGas": 2 * base + tip, "maxPriorityFeePerGas": tip}

    # -- writes --------------------------------------------------------------------------

    def simulate(self, tx: dict[str, Any], action: str) -> int:
        """Dry-run `tx` and return a gas limit for it; a revert raises `ChainError`.

        The estimate runs the transaction, and a revert fails it as it fails a call, with the
        same reason on each backend: a transaction that goes through is run by the estimate
        alone (a call ran it once more before). Only a failed estimate is run again as a call,
        whose error (a revert's reason, the memory chain's refusal of a sender without ether)
        is the one raised, as it was.
        """
        probe = cast(
            TxParams, {k: v for k, v in tx.items() if k in ("from", "to", "data", "value")}
        )
        # In the block it would be mined in, at this time: anvil mines on demand, so an idle
        # chain's newest block is old (the memory chain's clock moves only when told to).
        block: Any = None if self.backend.kind == "memory" else "pending"
        with self._lock:
            try:
                estimate = self.w3.eth.estimate_gas(probe, block)
            except Exception:  # a revert, or anything else: the call words it
                with reverts_as_chain_errors(action):
                    self.w3.eth.call(probe, block)
                    raise  # the call went through: the estimate's own error stands
        return int(estimate * GAS_MARGIN) + GAS_PAD

    def transact(
        self,
        account: LocalAccount,
        fn: ContractFunction,
        *,
        value: int = 0,
        gas: int | None = None,
    ) -> TxReceipt:
        """Sign and send a call of `fn` from `account`; return its successful receipt."""
        to = fn.address
        data = fn._encode_transaction_data()
        return self.send(account, to=to, data=data, value=value, gas=gas, action=fn.fn_name)

    def send(
        self,
        account: LocalAccount,
        *,
        to: str | None,
        data: str | bytes,
        value: int = 0,
        gas: int | None = None,
        action: str = "transaction",
    ) -> TxReceipt:
        """Sign and send a transaction from `account` with explicit gas and fees."""
        with self._lock:
            tx: dict[str, Any] = {
                "from": account.address,
                "data": HexBytes(data).to_0x_hex(),
                "value": value,
                "chainId": self.chain_id,
            }
            if to is not None:
                tx["to"] = Web3.to_checksum_address(to)
            tx["gas"] = gas or self.simulate(tx, action)
            tx["nonce"] = self.nonce(account.address)
            tx.update(self.fee_params())
            del tx["from"]
            signed = account.sign_transaction(tx)
            return self._send_signed(signed.raw_transaction, account.address, action)

    def send_raw(self, raw: str | bytes, *, allowed_targets: set[str] | None = None) -> TxReceipt:
        """Relay a transaction signed elsewhere; simulate it first so a revert costs nothing."""
        raw_bytes = HexBytes(raw)
        fields = decode_signed_transaction(raw_bytes)
        sender = fields["from"]
        if fields.get("chainId") != self.chain_id:
            raise InvalidInput(
                f"transaction is for chain {fields.get('chainId')}, this node is on {self.chain_id}"
            )
        to = fields.get("to")
        to_hex = Web3.to_checksum_address(to) if to else None
        if allowed_targets is not None and (to_hex is None or to_hex not in allowed_targets):
            raise InvalidInput("this node relays only calls to Cairn's own contracts")
        with self._lock:
            if to_hex is not None:
                tx = {
                    "from": sender,
                    "to": to_hex,
                    "data": HexBytes(fields.get("data", b"")).to_0x_hex(),
                    "value": int(fields.get("value", 0)),
                }
                self.simulate(tx, "transaction")
            expected = self.nonce(sender)
            if int(fields["nonce"]) != expected:
                raise InvalidInput(
                    f"nonce {fields['nonce']} for {sender} is stale or early; use {expected}"
                )
            return self._send_signed(raw_bytes, sender, "transaction")

    def deploy(
        self, account: LocalAccount, abi: list[dict[str, Any]], bytecode: str, *args: Any
    ) -> str:
        """Deploy a contract from `account` and return its address."""
        factory = self.w3.eth.contract(abi=abi, bytecode=bytecode)
        data = factory.constructor(*args).data_in_transaction
        receipt = self.send(account, to=None, data=data, action="deploy")
        address = receipt.get("contractAddress")
        if not address:
            raise ChainError("deployment produced no contract address")
        return str(address)

    def _send_signed(self, raw: bytes, sender: str, action: str) -> TxReceipt:
        try:
            tx_hash = self.w3.eth.send_raw_transaction(raw)
        except _reverts() as exc:
            reason = revert_reason(exc)
            raise ChainError(f"{action} rejected by the chain: {reason}", reason=reason) from exc
        try:
            receipt = self.w3.eth.wait_for_transaction_receipt(
                tx_hash, timeout=120, poll_latency=0.05
            )
        except TimeExhausted as exc:
            raise ChainUnavailable(
                f"{action} {tx_hash.to_0x_hex()} was not mined within 120 s"
            ) from exc
        if receipt["status"] != 1:
            reason = self._replay_reason(tx_hash, sender, receipt["blockNumber"])
            raise ChainError(f"{action} reverted: {reason}", reason=reason)
        if self.on_receipt is not None:
            self.on_receipt(receipt)
        return receipt

    def _replay_reason(self, tx_hash: HexBytes, sender: str, block: int) -> str:
        """Re-run a failed transaction as a call to recover its revert string."""
        tx = self.w3.eth.get_transaction(tx_hash)
        try:
            self.w3.eth.call(
                cast(
                    TxParams,
                    {"from": sender, "to": tx["to"], "data": tx["input"], "value": tx["value"]},
                ),
                block,
            )
        except _reverts() as exc:
            return revert_reason(exc) or "execution reverted"
        return "out of gas or reverted without a reason"
