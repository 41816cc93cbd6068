"""A PrepaidVault with the contracts it uses and who plays which part, for tests/chain's vault
tests (`test_vault.py`, `test_vault_flows.py`).

Every refused call goes through `VaultBench.refused`, which checks the revert reason and that
the mined, reverted transaction changed nothing: no token balance, no vault balance, drawn
amount, withdrawal request, pool or epoch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.logs import DISCARD
from web3.types import TxReceipt

from cairn.chain.compiler import CompiledContract
from cairn.chain.vault import spend_tree
from cairn.core.merkle import StandardMerkleTree

from .conftest import CID, SPLIT, reverts, send

FUNDS = 10**24  # tokens each user and the gateway start with
NOTICE = 3_600  # the vault's notice period, seconds
GATEWAY_ASSET = 1  # registered by the gateway in the `vault_bench` fixture
OTHER_ASSET = 2  # also the gateway's, but not the vault's
APP = 3  # AssetRegistry's kind of an application


def deploy_contract(w3: Web3, build: CompiledContract, deployer: str, *args: Any) -> Contract:
    """Deploy `build` from `deployer`; an AssertionError if the constructor reverts."""
    factory = w3.eth.contract(abi=build.abi, bytecode=build.bytecode)
    tx_hash = factory.constructor(*args).transact({"from": deployer, "gas": 6_000_000})
    receipt = w3.eth.get_transaction_receipt(tx_hash)
    assert receipt["status"] == 1, f"deploying {build.name} failed"
    return cast(Contract, w3.eth.contract(address=receipt["contractAddress"], abi=build.abi))


def event(contract: Contract, receipt: TxReceipt, name: str) -> dict[str, Any]:
    """The args of the one `name` event of `contract` in `receipt`."""
    (log,) = getattr(contract.events, name)().process_receipt(receipt, errors=DISCARD)
    return dict(log.args)


def events(contract: Contract, receipt: TxReceipt, name: str) -> list[dict[str, Any]]:
    """The args of every `name` event of `contract` in `receipt`, in log order."""
    logs = getattr(contract.events, name)().process_receipt(receipt, errors=DISCARD)
    return [dict(log.args) for log in logs]


@dataclass
class VaultBench:
    """A PrepaidVault over the fixtures' token, ledger and distributor."""

    w3: Web3
    vault: Contract
    token: Contract
    registry: Contract
    ledger: Contract
    distributor: Contract
    gateway: str  # owns the gateway asset: anchors spend roots, draws, funds epochs
    users: list[str]
    outsider: str
    salt: int = 0  # a filler leaf that makes every anchored root new
    roots: list[bytes] = field(default_factory=list)

    @property
    def fn(self) -> Any:
        """The vault's functions."""
        return self.vault.functions

    def now(self) -> int:
        """The latest block's timestamp."""
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def travel(self, timestamp: int) -> None:
        """Mine an empty block at `timestamp`: a refused call's replay then runs after it too."""
        self.w3.provider.ethereum_tester.time_travel(timestamp)  # type: ignore[attr-defined]
        self.w3.provider.ethereum_tester.mine_blocks(1)  # type: ignore[attr-defined]

    def balance(self, account: str) -> int:
        """Token balance of `account`."""
        return int(self.token.functions.balanceOf(account).call())

    def deposit(self, user: str, amount: int) -> TxReceipt:
        """`user` deposits `amount` for itself."""
        return send(self.fn.deposit(amount), user)

    def anchor(self, spent: Mapping[str, int], asset_id: int = GATEWAY_ASSET) -> StandardMerkleTree:
        """Anchor a spend tree of `spent` (plus a filler leaf) from the gateway; return it."""
        self.salt += 1
        filler = Web3.to_checksum_address(self.salt.to_bytes(20, "big"))
        tree = spend_tree({**spent, filler: self.salt})
        root = bytes.fromhex(tree.root[2:])
        send(self.ledger.functions.anchor(asset_id, root, len(tree), CID), self.gateway)
        self.roots.append(root)
        return tree

    def draw_call(self, tree: StandardMerkleTree, user: str) -> ContractFunction:
        """The `draw` call for `user`'s leaf of `tree`."""
        index, cumulative = next((i, int(v[1])) for i, v in tree.entries() if v[0] == user)
        return self.fn.draw(tree.root, user, cumulative, tree.get_proof(index))

    def draw(self, tree: StandardMerkleTree, user: str) -> TxReceipt:
        """The gateway draws `user`'s leaf of `tree`."""
        return send(self.draw_call(tree, user), self.gateway)

    def pool(self) -> int:
        """The vault's revenue pool."""
        return int(self.fn.revenue_pool().call())

    def account(self, user: str) -> tuple[int, int, list[int]]:
        """(balance, drawn, [requested, available_at]) of `user` in the vault."""
        return (
            int(self.fn.balance_of(user).call()),
            int(self.fn.drawn(user).call()),
            list(self.fn.pending_withdrawal(user).call()),
        )

    def snapshot(self) -> dict[str, Any]:
        """What a reverted call could have touched."""
        actors = [self.vault.address, self.distributor.address, self.gateway, *self.users]
        return {
            "tokens": [self.balance(a) for a in actors],
            "accounts": [self.account(u) for u in self.users],
            "pool": self.pool(),
            "total": self.fn.total_balances().call(),
            "funded": self.fn.total_funded().call(),
            "epochs": self.distributor.functions.epoch_count().call(),
            "allowance": self.token.functions.allowance(
                self.vault.address, self.distributor.address
            ).call(),
        }

    def refused(self, fn: ContractFunction, sender: str, reason: str) -> None:
        """`fn` from `sender` reverts with `reason` and changes nothing."""
        before = self.snapshot()
        with reverts(reason):
            send(fn, sender)
        assert self.snapshot() == before

    def assert_solvent(self) -> None:
        """The vault's total of balances is the users' (the bench's only depositors), and it
        holds that plus the revenue pool."""
        held = sum(self.account(u)[0] for u in self.users)
        assert self.fn.total_balances().call() == held
        assert self.balance(self.vault.address) == held + self.pool()


@pytest.fixture
def vault_bench(
    w3: Web3,
    accounts: list[str],
    token: Contract,
    registry: Contract,
    ledger: Contract,
    distributor: Contract,
    compiled: dict[str, CompiledContract],
) -> VaultBench:
    """A vault for `accounts[1]`'s gateway asset, four funded users who approved it."""
    gateway, users, outsider = accounts[1], accounts[2:6], accounts[7]
    for _ in (GATEWAY_ASSET, OTHER_ASSET):
        send(registry.functions.register(APP, CID, "proprietary", [], SPLIT), gateway)
    vault = deploy_contract(
        w3,
        compiled["PrepaidVault"],
        accounts[0],
        token.address,
        ledger.address,
        distributor.address,
        gateway,
        GATEWAY_ASSET,
        NOTICE,
    )
    for account in (*users, gateway, outsider):
        send(token.functions.mint(account, FUNDS), accounts[0])
        send(token.functions.approve(vault.address, 2**256 - 1), account)
    return VaultBench(w3, vault, token, registry, ledger, distributor, gateway, users, outsider)
