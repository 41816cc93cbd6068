"""Fixtures for the contract tests: a fresh in-process chain per test and the four contracts.

eth-tester mines a transaction that was sent with an explicit gas limit even when it reverts:
`transact` returns, and the receipt has status 0 and no reason. `send` turns that into the
`TransactionFailed` (with the revert string) that `eth_call` raises, by replaying the call on
the state just before the failed transaction's block; so a test sees the real revert reason
and can still check that the mined, reverted transaction changed nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

import pytest
from eth_tester.exceptions import TransactionFailed
from web3 import EthereumTesterProvider, Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.types import TxReceipt

from cairn.chain.compiler import CONTRACT_NAMES, CompiledContract, compile_contract

GAS = 3_000_000  # ample for every call here; explicit so that web3 never estimates
SPLIT = [7_000, 1_000, 1_000, 1_000]  # owner, data, compute, upstream basis points
CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"  # 59 characters
MINTED = 10**24  # tokens the deployer mints for itself in the `token` fixture

Send = Callable[..., TxReceipt]
Deploy = Callable[..., Contract]


@contextmanager
def reverts(match: str) -> Iterator[None]:
    """Expect a revert whose reason contains `match` (a literal, not a pattern)."""
    with pytest.raises(TransactionFailed, match=re.escape(match)):
        yield


def send(fn: ContractFunction, sender: str, value: int = 0) -> TxReceipt:
    """Mine `fn` from `sender` and return its receipt; raise `TransactionFailed` if it reverted."""
    tx: dict[str, Any] = {"from": sender, "gas": GAS, "value": value}
    receipt = fn.w3.eth.get_transaction_receipt(fn.transact(tx))  # type: ignore[arg-type]
    if receipt["status"] != 1:
        fn.call(tx, block_identifier=receipt["blockNumber"] - 1)  # type: ignore[arg-type]
        raise TransactionFailed("execution reverted without a reason")
    return receipt


@pytest.fixture(scope="session")
def compiled() -> dict[str, CompiledContract]:
    """Every bundled contract, compiled once per test session."""
    return {name: compile_contract(name) for name in CONTRACT_NAMES}


@pytest.fixture
def w3() -> Web3:
    """A fresh in-process chain whose accounts hold ether; calls come from `accounts[0]`.

    eth-tester's middleware would name that sender anyway, by asking for every account twice
    per call: naming it the default saves the requests (a third of a contract call's cost).
    """
    w3 = Web3(EthereumTesterProvider())
    w3.eth.default_account = w3.eth.accounts[0]
    return w3


@pytest.fixture
def accounts(w3: Web3) -> list[str]:
    """The chain's funded accounts; `accounts[0]` deploys everything."""
    return list(w3.eth.accounts)


@pytest.fixture
def deploy(w3: Web3, accounts: list[str], compiled: dict[str, CompiledContract]) -> Deploy:
    """Deploy a bundled contract from `accounts[0]` and return it."""

    def deploy_(name: str, *args: Any) -> Contract:
        build = compiled[name]
        factory = w3.eth.contract(abi=build.abi, bytecode=build.bytecode)
        tx_hash = factory.constructor(*args).transact({"from": accounts[0], "gas": 6_000_000})
        receipt = w3.eth.get_transaction_receipt(tx_hash)
        assert receipt["status"] == 1, f"deploying {name} failed"
        return cast(Contract, w3.eth.contract(address=receipt["contractAddress"], abi=build.abi))

    return deploy_


@pytest.fixture
def token(deploy: Deploy, accounts: list[str]) -> Contract:
    """A CairnToken; the deployer holds `MINTED` tokens."""
    contract = deploy("CairnToken", "Cairn", "CAIRN")
    send(contract.functions.mint(accounts[0], MINTED), accounts[0])
    return contract


@pytest.fixture
def registry(deploy: Deploy) -> Contract:
    """An empty AssetRegistry."""
    return deploy("AssetRegistry")


@pytest.fixture
def ledger(deploy: Deploy, registry: Contract) -> Contract:
    """A ContributionLedger over `registry`."""
    return deploy("ContributionLedger", registry.address)


@pytest.fixture
def distributor(deploy: Deploy, token: Contract) -> Contract:
    """A RevenueDistributor paying in `token`."""
    return deploy("RevenueDistributor", token.address)


@pytest.fixture
def dataset(registry: Contract, accounts: list[str]) -> int:
    """Asset 1, a dataset owned by `accounts[1]`."""
    send(registry.functions.register(1, CID, "CC-BY-4.0", [], SPLIT), accounts[1])
    return 1
