"""`cairn.core.merkle` and the contracts agree: every proof the Python tree gives verifies on chain
(in the ledger and as a distributor claim), and a changed amount, account or proof node fails."""

from __future__ import annotations

from typing import Any

from eth_utils import to_checksum_address
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3.contract import Contract

from cairn.core.merkle import StandardMerkleTree

from .conftest import CID, reverts, send

LEAF = ["address", "uint256"]
SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

addresses = (
    st.binary(min_size=20, max_size=20)
    .filter(lambda raw: any(raw))
    .map(lambda raw: to_checksum_address(raw))
)
# one leaf per account: the distributor pays an account once per epoch
distributions = st.lists(
    st.tuples(addresses, st.integers(min_value=0, max_value=10**24)),
    min_size=1,
    max_size=12,
    unique_by=lambda leaf: leaf[0],
).map(lambda leaves: [list(leaf) for leaf in leaves])


def fund(token: Contract, distributor: Contract, funder: str, tree: StandardMerkleTree) -> int:
    """Mint and fund an epoch with the tree's total (at least 1); return the epoch."""
    total = max(1, sum(amount for _, (_, amount) in tree.entries()))
    send(token.functions.mint(funder, total), funder)
    send(token.functions.approve(distributor.address, total), funder)
    send(distributor.functions.fund_epoch(tree.root, total, CID), funder)
    return distributor.functions.epoch_count().call()


def anchor(ledger: Contract, asset: int, owner: str, tree: StandardMerkleTree) -> None:
    """Anchor the tree's root for `asset` (hypothesis may replay a tree already anchored)."""
    if not ledger.functions.is_anchored(asset, tree.root).call():
        send(ledger.functions.anchor(asset, tree.root, len(tree), CID), owner)


@SETTINGS
@given(values=distributions)
def test_every_proof_verifies_in_python_and_on_chain(
    token: Contract,
    distributor: Contract,
    ledger: Contract,
    dataset: int,
    accounts: list[str],
    values: list[list[Any]],
) -> None:
    tree = StandardMerkleTree.of(values, LEAF)
    anchor(ledger, dataset, accounts[1], tree)
    epoch = fund(token, distributor, accounts[0], tree)
    held = token.functions.balanceOf(distributor.address).call()
    for i, (account, amount) in tree.entries():
        proof = tree.get_proof(i)
        assert StandardMerkleTree.verify(tree.root, LEAF, [account, amount], proof)
        leaf = tree.leaf_hash([account, amount])
        assert ledger.functions.verify(dataset, tree.root, leaf, proof).call()
        before = token.functions.balanceOf(account).call()
        send(distributor.functions.claim(epoch, account, amount, proof), accounts[2])
        assert token.functions.balanceOf(account).call() == before + amount
        assert distributor.functions.is_claimed(epoch, account).call()
    total = sum(amount for _, amount in values)
    assert distributor.functions.epoch_claimed(epoch).call() == total
    assert token.functions.balanceOf(distributor.address).call() == held - total


@SETTINGS
@given(values=distributions, data=st.data())
def test_changed_amount_account_or_proof_fails_on_chain(
    token: Contract,
    distributor: Contract,
    ledger: Contract,
    dataset: int,
    accounts: list[str],
    values: list[list[Any]],
    data: st.DataObject,
) -> None:
    tree = StandardMerkleTree.of(values, LEAF)
    anchor(ledger, dataset, accounts[1], tree)
    epoch = fund(token, distributor, accounts[0], tree)
    i = data.draw(st.integers(0, len(tree) - 1), label="leaf")
    account, amount = values[i]
    proof = tree.get_proof(i)

    other_amount = data.draw(st.integers(0, 10**24).filter(lambda n: n != amount), label="amount")
    other_account = data.draw(addresses.filter(lambda a: a != account), label="account")
    tampered: list[tuple[str, int, list[Any]]] = [
        (account, other_amount, proof),
        (other_account, amount, proof),
    ]
    if proof:
        j = data.draw(st.integers(0, len(proof) - 1), label="node")
        bit = data.draw(st.integers(0, 255), label="bit")
        node = int(proof[j], 16) ^ (1 << bit)
        tampered.append((account, amount, [*proof[:j], f"0x{node:064x}", *proof[j + 1 :]]))
    else:  # a one-leaf tree: its proof is empty, so add a node instead
        tampered.append((account, amount, ["0x" + "00" * 31 + "01"]))

    for bad_account, bad_amount, bad_proof in tampered:
        assert not StandardMerkleTree.verify(tree.root, LEAF, [bad_account, bad_amount], bad_proof)
        leaf = tree.leaf_hash([bad_account, bad_amount])
        assert not ledger.functions.verify(dataset, tree.root, leaf, bad_proof).call()
        with reverts("cairn_distributor: invalid proof"):
            distributor.functions.claim(epoch, bad_account, bad_amount, bad_proof).call()

    # none of that used up the claim
    assert not distributor.functions.is_claimed(epoch, account).call()
    send(distributor.functions.claim(epoch, account, amount, proof), accounts[2])
    with reverts("cairn_distributor: already claimed"):
        distributor.functions.claim(epoch, account, amount, proof).call()
