"""Chain backends: where the node's EVM lives. Each yields a connected `Web3`.

- `memory`: eth-tester/py-evm in this process; state is gone when the process ends
  (`cairn.chain.memory`, imported only by what uses it: py-evm takes most of a second to load).
- `anvil`: a managed anvil child process on 127.0.0.1, state saved in the data folder.
- `rpc`: any EVM JSON-RPC URL (an L2, a testnet, a production network).

Each also says which blocks it keeps through a crash (`durable_block`): the node credits a
deposit only once its block is kept, so a balance never outlives the transaction that paid it.
"""

from __future__ import annotations

import time
from pathlib import Path

from web3 import Web3

from cairn.chain.anvil import AnvilProcess
from cairn.core.errors import ChainUnavailable, ConfigError


class ChainBackend:
    """A connected Web3 plus what the node needs to know about where it points."""

    kind: str = ""
    rpc_url: str | None = None
    description: str = "the chain"  # for messages: which chain, and where its state lives
    # Local dev chains can mint ether for dev accounts; a real network cannot.
    can_fund: bool = False

    def __init__(self, w3: Web3) -> None:
        self.w3 = w3

    def fund(self, address: str, wei: int) -> None:
        """Give `address` `wei` of native currency (local dev chains only)."""
        raise ConfigError(
            f"the {self.kind} chain cannot mint ether: send some to {address} from a funded "
            "wallet on that network"
        )

    def durable_block(self, head: int) -> int:
        """The newest block, `head` at most, that the chain keeps if it crashes now.

        A network keeps every block it has mined (reorgs are the confirmations' business).
        """
        return head

    def wait_durable(self, block: int, timeout: float) -> int:
        """Wait up to `timeout` seconds until `block` is kept; returns the newest kept block."""
        return self.durable_block(block)

    def close(self) -> None:
        """Release the backend (stop a child process, close connections)."""


class AnvilBackend(ChainBackend):
    """A managed anvil process whose state file sits in the node's data folder."""

    kind = "anvil"
    can_fund = True

    def __init__(
        self, state_file: Path, *, port: int | None = None, lock_fd: int | None = None
    ) -> None:
        self.process = AnvilProcess(state_file, port=port, lock_fd=lock_fd)
        self.description = f"the anvil chain saved in {state_file}"
        self.process.start()
        self.rpc_url = self.process.url
        super().__init__(Web3(Web3.HTTPProvider(self.rpc_url, request_kwargs={"timeout": 30})))

    def fund(self, address: str, wei: int) -> None:
        """Raise the balance of `address` by `wei` with anvil's cheat code."""
        current = self.w3.eth.get_balance(address)  # type: ignore[arg-type]
        self.w3.provider.make_request("anvil_setBalance", [address, hex(current + wei)])  # type: ignore[arg-type]

    def durable_block(self, head: int) -> int:
        """The newest block in anvil's saved state file: what a restart brings back, even after
        kill -9 of node and anvil. Anvil saves every second: this trails `head` by a second."""
        return min(head, self.process.saved_block())

    def wait_durable(self, block: int, timeout: float) -> int:
        """Poll the state file until anvil has saved `block` (about a second) or time is up."""
        deadline = time.monotonic() + timeout
        while (saved := self.process.saved_block()) < block and time.monotonic() < deadline:
            time.sleep(0.05)
        return saved

    def close(self) -> None:
        """Stop anvil (it saves its state first)."""
        self.process.stop()


class RpcBackend(ChainBackend):
    """Any EVM JSON-RPC endpoint over HTTP(S)."""

    kind = "rpc"

    def __init__(self, url: str) -> None:
        self.rpc_url = url
        self.description = f"the chain at {url}"
        super().__init__(Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 60})))
        if not self.w3.is_connected():
            raise ChainUnavailable(f"no EVM JSON-RPC node answers at {url}")
