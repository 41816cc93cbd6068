"""The memory chain: eth-tester with py-evm in this process, for dev nodes and the test suite.

Its own module because py-evm and eth-tester take most of a second to import (py-evm's
precompiles load pairing curves): a node on anvil or a network, and every command line that
talks to a node, never loads them.
"""

from __future__ import annotations

from typing import Any, cast

from eth.abc import SignedTransactionAPI, StateAPI
from eth.estimators.gas import binary_gas_search_intrinsic_tolerance
from eth.vm.spoof import SpoofTransaction
from eth_tester import EthereumTester, PyEVMBackend
from web3 import Web3
from web3.providers.eth_tester import EthereumTesterProvider

from cairn.chain.backends import ChainBackend

BLOCK_GAS_LIMIT = 30_000_000


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
