"""The deployed contracts of one node, each behind its typed wrapper (one module each).

PrepaidVault is per gateway, so a deployment holds one only once its node has deployed it
(`cairn.chain.vault.deploy_vault`); `Chain.vault` is None until then.
"""

from __future__ import annotations

from typing import Any

from hexbytes import HexBytes
from web3.types import TxReceipt

from cairn.chain.bounty import Bounties
from cairn.chain.client import ChainClient
from cairn.chain.deployment import Deployment
from cairn.chain.distributor import Distributor
from cairn.chain.escrow import Escrow
from cairn.chain.ledger import Ledger
from cairn.chain.licences import Licences
from cairn.chain.registry import Registry
from cairn.chain.token import Token
from cairn.chain.vault import NAME as VAULT
from cairn.chain.vault import Vault
from cairn.chain.wrapper import ContractWrapper


class Chain:
    """The deployed contracts of one node, each behind its typed wrapper."""

    def __init__(self, client: ChainClient, deployment: Deployment) -> None:
        self.client = client
        self.deployment = deployment
        self.token = Token(client, deployment)
        self.registry = Registry(client, deployment)
        self.ledger = Ledger(client, deployment)
        self.distributor = Distributor(client, deployment)
        self.escrow = Escrow(client, deployment)
        self.licences = Licences(client, deployment)
        self.bounties = Bounties(client, deployment)
        self.vault = Vault(client, deployment) if VAULT in deployment.contracts else None

    @property
    def addresses(self) -> set[str]:
        """Checksummed addresses of every Cairn contract."""
        return {c.address for c in self.deployment.contracts.values()}

    def decode_events(self, receipt: TxReceipt) -> list[dict[str, Any]]:
        """Every Cairn event in a receipt as {contract, event, args}, in log order."""
        wrappers: list[ContractWrapper] = [
            self.token,
            self.registry,
            self.ledger,
            self.distributor,
            self.escrow,
            self.licences,
            self.bounties,
        ]
        if self.vault is not None:
            wrappers.append(self.vault)
        by_address = {w.address.lower(): w for w in wrappers}
        decoded: list[tuple[int, dict[str, Any]]] = []
        for log in receipt["logs"]:
            wrapper = by_address.get(str(log["address"]).lower())
            if wrapper is None:
                continue
            for event in wrapper.contract.all_events():
                try:
                    parsed = event.process_log(log)
                except Exception:  # not this event's signature
                    continue
                args = {k: _jsonable(v) for k, v in parsed["args"].items()}
                decoded.append(
                    (
                        int(log["logIndex"]),
                        {"contract": wrapper.name, "event": parsed["event"], "args": args},
                    )
                )
                break
        return [d for _, d in sorted(decoded, key=lambda item: item[0])]


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return HexBytes(value).to_0x_hex()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**53:
        return str(value)
    return value
