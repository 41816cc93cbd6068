"""Typed wrapper for RevenueDistributor: funded Merkle distributions per epoch, claimed with
proofs, never paid twice."""

from __future__ import annotations

from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3.types import TxReceipt

from cairn.chain.token import Token
from cairn.chain.wrapper import ContractWrapper
from cairn.core.evm import checksum, to_bytes32


class Distributor(ContractWrapper):
    """RevenueDistributor: funded Merkle distributions per epoch, claimed with proofs."""

    name = "RevenueDistributor"

    def fund_epoch(
        self, funder: LocalAccount, token: Token, root: str | bytes, amount: int, tree_cid: str
    ) -> tuple[int, TxReceipt]:
        """Approve and fund a new epoch; returns the epoch number and the receipt."""
        token.approve_if_short(funder, self.address, amount)
        fn = self.contract.functions.fund_epoch(to_bytes32(root), amount, tree_cid)
        receipt = self.client.transact(funder, fn)
        return int(self.first_event(receipt, "EpochFunded")["epoch"]), receipt

    def claim(
        self, sender: LocalAccount, epoch: int, account: str, amount: int, proof: list[str]
    ) -> TxReceipt:
        """Pay `account` its `amount` for `epoch` (anyone may send the claim)."""
        fn = self.contract.functions.claim(
            epoch, checksum(account), amount, [to_bytes32(p) for p in proof]
        )
        return self.client.transact(sender, fn)

    def is_claimed(self, epoch: int, account: str) -> bool:
        """Whether `account` already claimed `epoch`."""
        return bool(self.client.call(self.contract.functions.is_claimed(epoch, checksum(account))))

    def epoch_count(self) -> int:
        """Epochs funded so far."""
        return int(self.client.call(self.contract.functions.epoch_count()))

    def epoch_root(self, epoch: int) -> str:
        """The Merkle root an epoch pays out by."""
        return HexBytes(self.client.call(self.contract.functions.epoch_root(epoch))).to_0x_hex()

    def epoch_funded(self, epoch: int) -> int:
        """Tokens the epoch was funded with."""
        return int(self.client.call(self.contract.functions.epoch_funded(epoch)))

    def epoch_claimed(self, epoch: int) -> int:
        """Tokens claimed from the epoch so far."""
        return int(self.client.call(self.contract.functions.epoch_claimed(epoch)))
