"""Typed wrapper for LicenseToken: licence offers on assets, purchases, transfers, validity."""

from __future__ import annotations

from eth_account.signers.local import LocalAccount
from web3.types import TxReceipt

from cairn.chain.token import Token
from cairn.chain.wrapper import ContractWrapper
from cairn.core.errors import InvalidInput
from cairn.core.evm import checksum
from cairn.core.licensing import Offer, Terms


class Licences(ContractWrapper):
    """LicenseToken: ERC-1155 licences, one token id per offer."""

    name = "LicenseToken"

    def offer(
        self,
        owner: LocalAccount,
        asset_id: int,
        *,
        price: int,
        terms: Terms,
        max_copies: int = 0,
        duration: int = 0,
        transferable: bool = False,
    ) -> tuple[int, TxReceipt]:
        """Offer licences to an asset `owner` owns; returns the offer id and the receipt."""
        if price < 0 or max_copies < 0 or duration < 0:
            raise InvalidInput("price, copies and duration cannot be negative")
        fn = self.contract.functions.offer(
            asset_id, price, int(terms), max_copies, duration, transferable
        )
        receipt = self.client.transact(owner, fn)
        return int(self.first_event(receipt, "OfferCreated")["offer_id"]), receipt

    def set_active(self, owner: LocalAccount, offer_id: int, active: bool) -> TxReceipt:
        """Withdraw an offer from sale, or offer it again."""
        fn = self.contract.functions.set_offer_active(offer_id, active)
        return self.client.transact(owner, fn)

    def buy(
        self,
        buyer: LocalAccount,
        token: Token,
        offer_id: int,
        *,
        holder: str | None = None,
        copies: int = 1,
    ) -> tuple[int, TxReceipt]:
        """Approve the price and buy `copies` for `holder` (the buyer by default).

        Returns the holder's expiry (0 for perpetual licences) and the receipt.
        """
        offer = self.get(offer_id)
        token.approve_if_short(buyer, self.address, offer.price * copies)
        fn = self.contract.functions.buy(offer_id, checksum(holder or buyer.address), copies)
        receipt = self.client.transact(buyer, fn)
        return int(self.first_event(receipt, "LicenceBought")["expires"]), receipt

    def transfer(self, holder: LocalAccount, to: str, offer_id: int, copies: int = 1) -> TxReceipt:
        """Move `copies` of a transferable licence from `holder` to `to`."""
        fn = self.contract.functions.safeTransferFrom(
            holder.address, checksum(to), offer_id, copies, b""
        )
        return self.client.transact(holder, fn)

    def get(self, offer_id: int) -> Offer:
        """An offer; an unknown id is a `ChainError`."""
        raw = self.client.call(self.contract.functions.get_offer(offer_id))
        asset_id, price, terms, max_copies, duration, transferable, active, sold = raw
        return Offer(
            offer_id=offer_id,
            asset_id=int(asset_id),
            price=int(price),
            terms=Terms(int(terms)),
            max_copies=int(max_copies),
            duration=int(duration),
            transferable=bool(transferable),
            active=bool(active),
            sold=int(sold),
        )

    def offers_of(self, asset_id: int) -> list[Offer]:
        """Every offer made for an asset, oldest first."""
        ids = self.client.call(self.contract.functions.offers_of(asset_id))
        return [self.get(int(i)) for i in ids]

    def count(self) -> int:
        """Offers made so far."""
        return int(self.client.call(self.contract.functions.offer_count()))

    def balance_of(self, account: str, offer_id: int) -> int:
        """Copies of a licence `account` holds."""
        fn = self.contract.functions.balanceOf(checksum(account), offer_id)
        return int(self.client.call(fn))

    def has_licence(self, account: str, offer_id: int) -> bool:
        """Whether `account` holds an unexpired copy."""
        fn = self.contract.functions.has_licence(checksum(account), offer_id)
        return bool(self.client.call(fn))

    def expires_at(self, offer_id: int, account: str) -> int:
        """When `account`'s time-limited licence ends (0: perpetual or not held)."""
        fn = self.contract.functions.expires_at(offer_id, checksum(account))
        return int(self.client.call(fn))

    def treasury(self) -> str:
        """Where licence payments go."""
        return str(self.client.call(self.contract.functions.treasury()))

    def owner(self) -> str:
        """Who may name the treasury."""
        return str(self.client.call(self.contract.functions.owner()))

    def set_treasury(self, owner: LocalAccount, treasury: str) -> TxReceipt:
        """Send future licence payments to `treasury` (the contract's owner only)."""
        fn = self.contract.functions.set_treasury(checksum(treasury))
        return self.client.transact(owner, fn)
