"""A contract call encoded from the node's published ABI, without web3: the same calldata as
web3 makes for every function a transaction can call on Cairn's contracts, and an error that
names the function and the argument for a call the ABI does not admit."""

from __future__ import annotations

from typing import Any

import pytest
from web3 import Web3

from cairn.chain.compiler import CONTRACT_NAMES, compile_contract
from cairn.core.errors import InvalidInput
from cairn.provider.contract_calls import encode_call

ALICE = Web3.to_checksum_address("0x" + "ab" * 20)
BOB = Web3.to_checksum_address("0x" + "12" * 20)


def abi(contract: str) -> list[dict[str, Any]]:
    return compile_contract(contract).abi


def sample(abi_type: str) -> Any:
    """A value of `abi_type` as a caller passes it."""
    if abi_type.endswith("]"):
        item, _, size = abi_type[:-1].rpartition("[")
        return [sample(item)] * (int(size) if size else 2)
    if abi_type == "address":
        return ALICE
    if abi_type.startswith(("uint", "int")):
        return 7
    if abi_type == "bool":
        return True
    if abi_type == "string":
        return "bafy-metadata"
    if abi_type == "bytes":
        return b"\x01\x02"
    if abi_type.startswith("bytes"):
        return bytes([0x11]) * int(abi_type[5:])
    raise AssertionError(f"no sample for {abi_type}")


WRITES = [
    (contract, entry)
    for contract in CONTRACT_NAMES
    for entry in abi(contract)
    if entry["type"] == "function" and entry["stateMutability"] not in ("view", "pure")
]


@pytest.mark.parametrize(
    ("contract", "entry"),
    WRITES,
    ids=[f"{c}.{e['name']}/{len(e['inputs'])}" for c, e in WRITES],
)
def test_every_write_encodes_as_web3_encodes_it(contract: str, entry: dict[str, Any]) -> None:
    args = [sample(i["type"]) for i in entry["inputs"]]
    theirs = Web3().eth.contract(address=BOB, abi=abi(contract)).encode_abi(entry["name"], args)
    assert encode_call(abi(contract), contract, entry["name"], args) == theirs


def test_hex_words_and_single_case_addresses_are_taken_as_web3_takes_them() -> None:
    job = "0x" + "ab" * 32
    as_bytes = encode_call(abi("JobEscrow"), "JobEscrow", "release", [bytes.fromhex(job[2:]), BOB])
    assert encode_call(abi("JobEscrow"), "JobEscrow", "release", [job, BOB.lower()]) == as_bytes


def test_an_overload_is_chosen_by_its_number_of_arguments() -> None:
    registry = abi("AssetRegistry")
    short = encode_call(registry, "AssetRegistry", "safeTransferFrom", [ALICE, BOB, 3])
    long = encode_call(registry, "AssetRegistry", "safeTransferFrom", [ALICE, BOB, 3, b""])
    assert short[:10] == "0x42842e0e"  # safeTransferFrom(address,address,uint256)
    assert long[:10] == "0xb88d4fde"  # safeTransferFrom(address,address,uint256,bytes)
    with pytest.raises(InvalidInput, match=r"safeTransferFrom takes 3 or 4 arguments; got 2"):
        encode_call(registry, "AssetRegistry", "safeTransferFrom", [ALICE, BOB])


@pytest.mark.parametrize(
    ("function", "args", "error"),
    [
        ("burn", [1], "CairnToken has no function burn"),
        ("approve", ["0x1234", 1], "not an Ethereum address: '0x1234'"),
        ("approve", [ALICE, -1], r"CairnToken.approve: .*-1.* cannot be encoded"),
        ("approve", [ALICE, 2**256], r"CairnToken.approve: .* cannot be encoded"),
        ("approve", [ALICE, "5"], r"CairnToken.approve: .* cannot be encoded"),
    ],
)
def test_a_call_the_abi_does_not_admit_is_invalid_input(
    function: str, args: list[Any], error: str
) -> None:
    with pytest.raises(InvalidInput, match=error):
        encode_call(abi("CairnToken"), "CairnToken", function, args)


@pytest.mark.parametrize(
    ("job", "error"),
    [
        ("0x1234", r"JobEscrow.cancel_job: job_id must be 32 bytes \(bytes32\); got 2"),
        ("0xnothex", r"JobEscrow.cancel_job: job_id must be 0x-hex \(bytes32\)"),
        (b"\x00" * 33, r"must be 32 bytes \(bytes32\); got 33"),
    ],
)
def test_a_word_of_the_wrong_size_or_not_hex_is_invalid_input(job: Any, error: str) -> None:
    with pytest.raises(InvalidInput, match=error):
        encode_call(abi("JobEscrow"), "JobEscrow", "cancel_job", [job])
