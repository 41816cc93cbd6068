"""Typed wrapper for ContributionLedger: Merkle roots of accepted contribution batches per
asset, against which any record's inclusion can be proven."""

from __future__ import annotations

from eth_account.signers.local import LocalAccount
from web3.types import TxReceipt

from cairn.chain.wrapper import ContractWrapper
from cairn.core.evm import to_bytes32


class Ledger(ContractWrapper):
    """ContributionLedger: Merkle roots of accepted contribution batches per asset."""

    name = "ContributionLedger"

    def anchor(
        self, curator: LocalAccount, asset_id: int, root: str | bytes, count: int, batch_cid: str
    ) -> tuple[int, TxReceipt]:
        """Anchor a batch root for the asset; returns the batch index and the receipt."""
        fn = self.contract.functions.anchor(asset_id, to_bytes32(root), count, batch_cid)
        receipt = self.client.transact(curator, fn)
        return int(self.first_event(receipt, "Anchored")["batch_index"]), receipt

    def verify(self, asset_id: int, root: str | bytes, leaf: str | bytes, proof: list[str]) -> bool:
        """Whether `leaf` is in the anchored batch with `root`, by `proof`."""
        fn = self.contract.functions.verify(
            asset_id, to_bytes32(root), to_bytes32(leaf), [to_bytes32(p) for p in proof]
        )
        return bool(self.client.call(fn))

    def batch_count(self, asset_id: int) -> int:
        """Batches anchored for the asset."""
        return int(self.client.call(self.contract.functions.batch_count(asset_id)))

    def total_contributions(self, asset_id: int) -> int:
        """Records anchored for the asset over all batches."""
        return int(self.client.call(self.contract.functions.total_contributions(asset_id)))

    def batch_of(self, asset_id: int, root: str | bytes) -> tuple[int, int, int]:
        """(batch index, record count, anchored-at timestamp) of an anchored root."""
        raw = self.client.call(self.contract.functions.batch_of(asset_id, to_bytes32(root)))
        index, count, anchored_at = raw
        return int(index), int(count), int(anchored_at)

    def is_anchored(self, asset_id: int, root: str | bytes) -> bool:
        """Whether `root` is anchored for the asset."""
        return bool(
            self.client.call(self.contract.functions.is_anchored(asset_id, to_bytes32(root)))
        )
