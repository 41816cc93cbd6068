"""The base of every contract wrapper: one deployed contract, the client that calls it, and
the events it emits. Each contract has its own module with one subclass of `ContractWrapper`;
`cairn.chain.contracts.Chain` holds one of each.
"""

from __future__ import annotations

from typing import Any

from web3.contract import Contract
from web3.logs import DISCARD
from web3.types import TxReceipt

from cairn.chain.client import ChainClient
from cairn.chain.deployment import Deployment
from cairn.core.errors import ChainError


class ContractWrapper:
    """A deployed Cairn contract behind typed methods; subclasses set `name` to the contract's."""

    name: str = ""

    def __init__(self, client: ChainClient, deployment: Deployment) -> None:
        self.client = client
        deployed = deployment.contracts[self.name]
        self.address = deployed.address
        self.contract: Contract = client.w3.eth.contract(address=deployed.address, abi=deployed.abi)  # type: ignore[call-overload]

    def events(self, receipt: TxReceipt, event: str) -> list[dict[str, Any]]:
        """The arguments of every `event` this contract emitted in `receipt`, in log order."""
        handler = getattr(self.contract.events, event)()
        return [dict(log["args"]) for log in handler.process_receipt(receipt, errors=DISCARD)]

    def first_event(self, receipt: TxReceipt, event: str) -> dict[str, Any]:
        """The arguments of the first `event` in `receipt`; none at all is a `ChainError`."""
        events = self.events(receipt, event)
        if not events:
            raise ChainError(f"{self.name}: the transaction succeeded but emitted no {event} event")
        return events[0]
