"""Chain backends: where the node's EVM lives. Each yields a connected `Web3`.

- `memory`: eth-tester/py-evm in this process; state is gone when the process ends.
- `anvil`: a managed anvil child process on 127.0.0.1, state saved in the data folder.
- `rpc`: any EVM JSON-RPC URL (an L2, a testnet, a production network).

Each also says which blocks it keeps through a crash (`durable_block`): the node credits a
deposit only once its block is kept, so a balance never outlives the transaction that paid it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, cast

from eth.abc import SignedTransactionAPI, StateAPI
from eth.estimators.gas import binary_gas_search_intrinsic_tolerance
from eth.vm.spoof import SpoofTransaction
from eth_tester import EthereumTester, PyEVMBackend
from web3 import Web3
from web3.providers.eth_tester import EthereumTesterProvider

from cairn.chain.anvil import AnvilProcess
from cairn.core.errors import ChainUnavailable, ConfigError

BLOCK_GAS_LIMIT = 30_000_000


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


class MemoryBackend(ChainBackend):
    """eth-tester with the py-evm backend, in process.

    Nothing about it outlives the process, and nothing needs to: a node on the memory chain
    starts a new chain and a new index each time, so a block is kept for as long as anything
    can see it, and a deposit is credited at once.
    """

    kind = "memory"
    can_fund = True
    description = "the memory chain"

    def __init__(self) -> None:
        params = PyEVMBackend.generate_genesis_params(overrides={"gas_limit": BLOCK_GAS_LIMIT})
        backend = PyEVMBackend(genesis_parameters=params)
        # the chain's class is this tester's own, and the instance holds the estimator it was
        # built with; the class's serves the instances eth-tester builds on reverting to genesis
        type(backend.chain).gas_estimator = staticmethod(estimate_gas)
        backend.chain.gas_estimator = estimate_gas
        self.tester = EthereumTester(backend)
        super().__init__(Web3(EthereumTesterProvider(self.tester)))
        self._bank = self.tester.get_accounts()[0]
        # eth-tester wants a sender even for a call, and its provider's middleware names the
        # first account by asking for all of them (three requests a call without one): naming it
        # the default account fills in the same sender with none. Web3's validation middleware
        # checks each call's chain id against one more request; this chain's id never changes
        # and no caller here names one. A view call costs about half of what it did.
        self.w3.eth.default_account = self._bank
        self.w3.middleware_onion.remove("validation")

    def fund(self, address: str, wei: int) -> None:
        """Send `wei` from eth-tester's pre-funded account."""
        tx: dict[str, Any] = {"from": self._bank, "to": address, "value": wei, "gas": 21_000}
        tx_hash = self.w3.eth.send_transaction(tx)  # type: ignore[arg-type]
        self.w3.eth.get_transaction_receipt(tx_hash)


def estimate_gas(state: StateAPI, transaction: SignedTransactionAPI) -> int:
    """A gas limit that runs `transaction`, found in two runs rather than py-evm's dozen or so.

    py-evm's default estimator bisects between the intrinsic gas and the block's limit, running
    the transaction each time: most of the memory chain's cost of a transaction. This runs it
    once at the block's limit (a revert there is the transaction's error, as before), then
    checks that the gas it used, plus the 1/64 that each call holds back (EIP-150), is enough;
    only if it is not does it bisect. The estimate is an upper bound like anvil's, never one
    too low: the second run proves it.
    """
    snapshot = state.snapshot()
    try:
        ran = state.apply_transaction(_with_gas(transaction, state.gas_limit))
    finally:
        state.revert(snapshot)
    if ran.is_error:
        raise ran.error
    guess = min(state.gas_limit, transaction.intrinsic_gas + ran.get_gas_used() * 64 // 63 + 5_000)
    snapshot = state.snapshot()
    try:
        enough = not state.apply_transaction(_with_gas(transaction, guess)).is_error
    finally:
        state.revert(snapshot)
    return guess if enough else binary_gas_search_intrinsic_tolerance(state, transaction)


def _with_gas(transaction: SignedTransactionAPI, gas: int) -> SignedTransactionAPI:
    """`transaction` with another gas limit and no gas price (how py-evm's estimators run it)."""
    return cast(SignedTransactionAPI, SpoofTransaction(transaction, gas=gas, gas_price=0))


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


def open_backend(
    spec: str, data_dir: Path, *, anvil_port: int | None = None, lock_fd: int | None = None
) -> ChainBackend:
    """Open the backend named by `--chain`: `memory`, `anvil` or an http(s):// URL.

    `lock_fd` is the data folder's lock, which a managed anvil holds until it has exited.
    """
    if spec == "memory":
        return MemoryBackend()
    if spec == "anvil":
        return AnvilBackend(
            data_dir / "chain" / "anvil-state.json", port=anvil_port, lock_fd=lock_fd
        )
    if spec.startswith(("http://", "https://")):
        return RpcBackend(spec)
    raise ConfigError(f"unknown chain {spec!r}: use memory, anvil or an http(s):// JSON-RPC URL")
