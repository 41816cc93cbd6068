"""Typed wrapper for CairnToken: the ERC-20 payment token."""

from __future__ import annotations

from eth_account.signers.local import LocalAccount
from web3.types import TxReceipt

from cairn.chain.wrapper import ContractWrapper
from cairn.core.evm import checksum


class Token(ContractWrapper):
    """CairnToken: the ERC-20 payment token."""

    name = "CairnToken"
    _symbol: str | None = None
    _decimals: int | None = None

    def balance_of(self, account: str) -> int:
        """Token balance in the smallest unit."""
        return int(self.client.call(self.contract.functions.balanceOf(checksum(account))))

    def total_supply(self) -> int:
        """All tokens in existence."""
        return int(self.client.call(self.contract.functions.totalSupply()))

    def allowance(self, owner: str, spender: str) -> int:
        """What `spender` may still move from `owner`."""
        fn = self.contract.functions.allowance(checksum(owner), checksum(spender))
        return int(self.client.call(fn))

    def symbol(self) -> str:
        """The token's ticker (immutable in the contract: asked of the chain once)."""
        if self._symbol is None:
            self._symbol = str(self.client.call(self.contract.functions.symbol()))
        return self._symbol

    def decimals(self) -> int:
        """Decimal places of one whole token (a constant of the contract: asked once)."""
        if self._decimals is None:
            self._decimals = int(self.client.call(self.contract.functions.decimals()))
        return self._decimals

    def transfer(self, sender: LocalAccount, to: str, amount: int) -> TxReceipt:
        """Send `amount` from `sender` to `to`."""
        return self.client.transact(sender, self.contract.functions.transfer(checksum(to), amount))

    def approve(self, sender: LocalAccount, spender: str, amount: int) -> TxReceipt:
        """Let `spender` move up to `amount` of `sender`'s tokens."""
        fn = self.contract.functions.approve(checksum(spender), amount)
        return self.client.transact(sender, fn)

    def mint(self, minter: LocalAccount, to: str, amount: int) -> TxReceipt:
        """Create `amount` new tokens for `to` (minters only)."""
        return self.client.transact(minter, self.contract.functions.mint(checksum(to), amount))

    def is_minter(self, account: str) -> bool:
        """Whether `account` may mint."""
        return bool(self.client.call(self.contract.functions.is_minter(checksum(account))))

    def transfer_from(self, spender: LocalAccount, owner: str, to: str, amount: int) -> TxReceipt:
        """Move `amount` of `owner`'s tokens to `to` under `spender`'s allowance."""
        fn = self.contract.functions.transferFrom(checksum(owner), checksum(to), amount)
        return self.client.transact(spender, fn)

    def set_minter(self, owner: LocalAccount, account: str, allowed: bool) -> TxReceipt:
        """Grant or revoke the minter role (token owner only)."""
        fn = self.contract.functions.set_minter(checksum(account), allowed)
        return self.client.transact(owner, fn)

    def owner(self) -> str:
        """The token's owner, who names minters."""
        return str(self.client.call(self.contract.functions.owner()))

    def transfer_ownership(self, owner: LocalAccount, new_owner: str) -> TxReceipt:
        """Hand the token's ownership to `new_owner`."""
        fn = self.contract.functions.transfer_ownership(checksum(new_owner))
        return self.client.transact(owner, fn)

    def approve_if_short(self, owner: LocalAccount, spender: str, amount: int) -> None:
        """Approve `spender` for `amount` of `owner`'s tokens unless its allowance covers it."""
        if amount and self.allowance(owner.address, spender) < amount:
            self.approve(owner, spender, amount)
