"""Accounts as money sees them: the keys this node holds, what any address holds in the payment
token and in ether, and token transfers from an account whose key the node holds.

A face lists, reads and transfers through `Accounts`; it never opens the keystore or the chain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3.types import TxReceipt

from cairn.chain.contracts import Chain
from cairn.core.errors import Forbidden, NotFound
from cairn.core.evm import checksum
from cairn.identity.keystore import AccountInfo, Keystore
from cairn.identity.signers import Signers


@dataclass(frozen=True)
class HeldAccount:
    """An account whose key file lives in this node's data folder."""

    address: str
    label: str
    dev: bool  # a development account, funded on a dev chain
    unlocked: bool  # the node holds its key unlocked, so it can sign for it


@dataclass(frozen=True)
class PaymentToken:
    """The ERC-20 token that Cairn's contracts are paid in."""

    address: str  # the token's
    symbol: str
    decimals: int


@dataclass(frozen=True)
class TokenHolding(PaymentToken):
    """What an address holds in the payment token."""

    balance: str  # smallest units, decimal


@dataclass(frozen=True)
class Holdings:
    """An address's payment tokens and ether (wei), amounts as decimal strings."""

    address: str
    token: TokenHolding
    ether: str


@dataclass(frozen=True)
class AccountState(Holdings):
    """An address's holdings and next nonce, and what this node knows of its key."""

    nonce: int
    label: str | None
    dev: bool
    held_by_node: bool
    unlocked: bool


@dataclass(frozen=True)
class Unlocked:
    """An account whose key this node now holds unlocked."""

    address: str
    unlocked: bool


@dataclass(frozen=True)
class Transaction:
    """A mined transaction with Cairn's events decoded."""

    tx_hash: str
    block_number: int
    gas_used: int
    status: int  # 1: success
    events: tuple[dict[str, Any], ...]  # each event's name and arguments, as the chain logs them


class Accounts:
    """The node's key files and signers, and the token balances of any address."""

    def __init__(self, keystore: Keystore, signers: Signers, chain: Chain) -> None:
        self.keystore = keystore
        self.signers = signers
        self.chain = chain

    def held(self) -> list[HeldAccount]:
        """Accounts whose key files live in this node's data folder."""
        return [self._held(info) for info in self.keystore.list()]

    def held_account(self, address: str) -> HeldAccount:
        """The account `address`, whose key file lives in this node's data folder (`NotFound`
        when none does)."""
        return self._held(self.keystore.get(address))

    def _held(self, info: AccountInfo) -> HeldAccount:
        return HeldAccount(info.address, info.label, info.dev, self.signers.holds(info.address))

    def names(self) -> dict[str, str]:
        """The node's labels of the accounts it holds keys for, by lower-case address."""
        return {a.address.lower(): a.label for a in self.keystore.list() if a.label}

    def label(self, address: str) -> str | None:
        """The node's label of `address`, or None when it holds no key file for it."""
        try:
            return self.keystore.get(address).label
        except NotFound:
            return None

    def can_sign(self, address: str) -> bool:
        """Whether this node holds the key of `address` unlocked, so it can sign for it."""
        return self.signers.holds(address)

    def token_balance(self, address: str) -> int:
        """The payment tokens `address` holds, in the smallest unit."""
        return self.chain.token.balance_of(address)

    def payment_token(self) -> PaymentToken:
        """The payment token's address, symbol and decimals."""
        token = self.chain.token
        return PaymentToken(address=token.address, symbol=token.symbol(), decimals=token.decimals())

    def holdings(self, address: str) -> Holdings:
        """Payment token and ether balances of any address."""
        account = checksum(address)
        return Holdings(
            address=account,
            token=TokenHolding(
                **vars(self.payment_token()), balance=str(self.token_balance(account))
            ),
            ether=str(self.chain.client.balance(account)),
        )

    def state(self, address: str) -> AccountState:
        """Balances and the next nonce of any address; its label and lock state when this node
        holds its key."""
        holdings = self.holdings(address)
        nonce = self.chain.client.nonce(holdings.address)
        try:
            info = self.keystore.get(holdings.address)
        except NotFound:
            return AccountState(
                **vars(holdings),
                nonce=nonce,
                label=None,
                dev=False,
                held_by_node=False,
                unlocked=False,
            )
        return AccountState(
            **vars(holdings),
            nonce=nonce,
            label=info.label,
            dev=info.dev,
            held_by_node=True,
            unlocked=self.signers.holds(info.address),
        )

    def unlock(self, address: str, password: str, *, by: str) -> Unlocked:
        """Unlock the key of `address` with its password: only its own signed-in account may."""
        if checksum(address).lower() != by.lower():
            raise Forbidden(f"signed in as {by}; you may unlock only that account")
        return Unlocked(self.signers.unlock(address, password).address, True)

    def signer(self, address: str) -> LocalAccount:
        """The key of `address` this node holds unlocked (`Forbidden` when it holds none)."""
        return self.signers.get(address)

    def transfer(self, sender: LocalAccount, to: str, amount: int) -> Transaction:
        """Send `amount` (smallest units) of the payment token from `sender` to `to`."""
        receipt = self.chain.token.transfer(sender, checksum(to), amount)
        return self.transaction(receipt)

    def transaction(self, receipt: TxReceipt) -> Transaction:
        """A mined transaction's receipt with Cairn's events decoded."""
        return Transaction(
            tx_hash=HexBytes(receipt["transactionHash"]).to_0x_hex(),
            block_number=int(receipt["blockNumber"]),
            gas_used=int(receipt["gasUsed"]),
            status=int(receipt["status"]),
            events=tuple(self.chain.decode_events(receipt)),
        )
