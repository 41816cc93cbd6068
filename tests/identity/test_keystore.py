"""The keystore: keystore v3 files any wallet reads, 0600 in a 0700 folder, clear errors."""

from __future__ import annotations

import importlib
import json
import re
import stat
import sys
from pathlib import Path

import eth_utils
import pytest
from eth_account import Account
from eth_keyfile.keyfile import get_default_work_factor_for_kdf
from hypothesis import given
from hypothesis import strategies as st

import cairn.identity
from cairn.core.errors import ConfigError, Conflict, InvalidInput, NotFound, Unauthorized
from cairn.identity import keystore as keystore_module
from cairn.identity.keystore import PASSWORD_REQUIRED, AccountInfo, Keystore

PASSWORD = "correct horse battery staple"
FAST_SCRYPT = 2**4  # tests only: the real default is eth-account's 2**18
FILE_NAME = re.compile(r"UTC--\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.\d{6}Z--[0-9a-f]{40}\.json")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Where the node keeps accounts: <data-dir>/accounts, not created yet."""
    return tmp_path / "data" / "accounts"


@pytest.fixture
def keystore(folder: Path) -> Keystore:
    """A keystore with a cheap scrypt cost, so that each test stays fast."""
    return Keystore(folder, iterations=FAST_SCRYPT)


def read_json(info: AccountInfo) -> dict[str, object]:
    document: dict[str, object] = json.loads(info.path.read_text())
    return document


def test_create_then_unlock_gives_the_same_key(keystore: Keystore) -> None:
    info = keystore.create(PASSWORD, label="alice")
    account = keystore.unlock(info.address, PASSWORD)
    assert account.address == info.address
    assert info.label == "alice" and info.dev is False
    assert keystore.get(info.address) == info
    assert keystore.list() == [info]


def test_file_is_keystore_v3_named_like_geth_and_eth_account_decrypts_it(
    keystore: Keystore,
) -> None:
    info = keystore.create(PASSWORD, label="alice")
    assert FILE_NAME.fullmatch(info.path.name), info.path.name
    assert info.path.name.endswith(f"--{info.address[2:].lower()}.json")
    document = read_json(info)
    assert document["version"] == 3
    assert str(document["address"]).lower() == info.address[2:].lower()
    assert document["cairn"] == {"label": "alice", "dev": False, "created_at": info.created_at}
    key = Account.decrypt(document, PASSWORD)  # the extra "cairn" key does not disturb it
    assert Account.from_key(key).address == info.address


def test_files_are_0600_in_a_0700_folder_and_no_temporary_is_left(
    keystore: Keystore, folder: Path
) -> None:
    info = keystore.create(PASSWORD)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(info.path.stat().st_mode) == 0o600
    assert [path.name for path in folder.iterdir()] == [info.path.name]


@pytest.mark.parametrize("password", [None, ""])
def test_an_account_that_is_not_dev_needs_a_password(
    keystore: Keystore, folder: Path, password: str | None
) -> None:
    with pytest.raises(InvalidInput) as caught:
        keystore.create(password)
    assert caught.value.message == PASSWORD_REQUIRED
    assert "CAIRN_PASSWORD" in PASSWORD_REQUIRED
    with pytest.raises(InvalidInput):
        keystore.import_key("0x" + "11" * 32, password)
    assert not folder.exists() or list(folder.iterdir()) == []


def test_a_dev_account_is_stored_cheaply_under_an_empty_password(keystore: Keystore) -> None:
    info = keystore.create(None, label="dev", dev=True)
    document = read_json(info)
    crypto = document["crypto"]
    assert isinstance(crypto, dict)
    assert crypto["kdf"] == "pbkdf2" and crypto["kdfparams"]["c"] <= 100
    assert document["cairn"] == {"label": "dev", "dev": True, "created_at": info.created_at}
    assert Account.from_key(Account.decrypt(document, "")).address == info.address
    assert keystore.unlock(info.address, None).address == info.address
    # A password typed out of habit does not lock anyone out of a dev account.
    assert keystore.unlock(info.address, "anything").address == info.address


def test_a_wrong_password_is_unauthorized_and_names_the_account(keystore: Keystore) -> None:
    info = keystore.create(PASSWORD)
    with pytest.raises(Unauthorized) as caught:
        keystore.unlock(info.address, "wrong")
    assert caught.value.message == f"wrong password for account {info.address}"


def test_unlocking_an_encrypted_account_without_a_password_asks_for_one(
    keystore: Keystore,
) -> None:
    info = keystore.create(PASSWORD)
    with pytest.raises(InvalidInput, match="CAIRN_PASSWORD"):
        keystore.unlock(info.address, None)


@pytest.mark.parametrize("as_bytes", [False, True])
def test_import_key_keeps_the_given_key(keystore: Keystore, as_bytes: bool) -> None:
    original = Account.create()
    key: str | bytes = bytes(original.key) if as_bytes else original.key.hex()
    info = keystore.import_key(key, PASSWORD, label="imported")
    assert info.address == original.address
    assert keystore.unlock(original.address, PASSWORD).key == original.key


def test_importing_an_address_that_is_already_there_conflicts(keystore: Keystore) -> None:
    original = Account.create()
    keystore.import_key("0x" + bytes(original.key).hex(), PASSWORD)
    with pytest.raises(Conflict, match=original.address):
        keystore.import_key(bytes(original.key), None, dev=True)
    assert len(keystore.list()) == 1


@pytest.mark.parametrize(
    "key",
    [
        "0x1234",
        "zz" * 32,
        b"\x01" * 31,
        b"\x00" * 32,  # zero is not a key
        "0x" + "ff" * 32,  # above the secp256k1 group order
    ],
)
def test_import_rejects_a_bad_key_without_echoing_it(keystore: Keystore, key: str | bytes) -> None:
    with pytest.raises(InvalidInput) as caught:
        keystore.import_key(key, PASSWORD)
    text = key if isinstance(key, str) else key.hex()
    assert text.removeprefix("0x") not in caught.value.message


def test_list_is_sorted_by_created_at_then_address(keystore: Keystore) -> None:
    infos = [keystore.create(None, dev=True) for _ in range(3)]
    # Rewrite the times: one account is the newest, two share the oldest second.
    newest, *same_second = infos
    for info, created_at in [(newest, 300), (same_second[0], 100), (same_second[1], 100)]:
        document = read_json(info)
        document["cairn"] = {"label": "", "dev": True, "created_at": created_at}
        info.path.write_text(json.dumps(document))
    listed = keystore.list()
    assert [info.address for info in listed] == [
        *sorted(info.address for info in same_second),
        newest.address,
    ]
    assert [info.created_at for info in listed] == [100, 100, 300]


def test_get_accepts_any_letter_case_of_the_address(keystore: Keystore) -> None:
    info = keystore.create(None, dev=True)
    assert keystore.get(info.address.lower()) == info
    assert keystore.get("0x" + info.address[2:].upper()) == info


@pytest.mark.parametrize(
    "address",
    ["0x1234", "not an address", "0x" + "g" * 40, "0xFB6916095ca1df60bB79Ce92cE3Ea74c37c5d359"],
)
def test_a_malformed_address_is_invalid_input(keystore: Keystore, address: str) -> None:
    with pytest.raises(InvalidInput):
        keystore.get(address)
    with pytest.raises(InvalidInput):
        keystore.unlock(address, PASSWORD)


def test_an_unknown_address_is_not_found_and_named(keystore: Keystore) -> None:
    keystore.create(None, dev=True)
    missing = Account.create().address
    with pytest.raises(NotFound, match=missing):
        keystore.get(missing)


def test_find_by_label(keystore: Keystore) -> None:
    alice = keystore.create(None, label="alice", dev=True)
    keystore.create(None, label="bob", dev=True)
    assert keystore.find_by_label("alice") == alice
    with pytest.raises(NotFound, match="carol"):
        keystore.find_by_label("carol")
    with pytest.raises(InvalidInput):
        keystore.find_by_label("")


def test_a_label_names_one_account_only(keystore: Keystore) -> None:
    keystore.create(None, label="alice", dev=True)
    with pytest.raises(Conflict, match="alice"):
        keystore.create(None, label="alice", dev=True)
    keystore.create(None, dev=True)
    keystore.create(None, dev=True)  # unlabelled accounts are many
    assert len(keystore.list()) == 3


def test_an_empty_or_missing_folder_lists_nothing(keystore: Keystore) -> None:
    assert keystore.list() == []


@pytest.mark.parametrize(
    "content",
    ["{not json", "[1, 2]", '{"address": "xyz", "crypto": {}}', '{"address": "' + "ab" * 20 + '"}'],
)
def test_a_corrupt_file_is_a_config_error_naming_it(
    keystore: Keystore, folder: Path, content: str
) -> None:
    keystore.create(None, dev=True)
    broken = folder / "UTC--2024-01-01T00-00-00.000000Z--broken.json"
    broken.write_text(content)
    with pytest.raises(ConfigError, match=re.escape(str(broken))):
        keystore.list()


def test_a_wallet_export_without_cairn_fields_is_listed_and_unlocks(
    keystore: Keystore, folder: Path
) -> None:
    keystore.create(None, dev=True)  # makes the folder
    original = Account.create()
    exported = Account.encrypt(original.key, PASSWORD, kdf="pbkdf2", iterations=10)
    path = folder / f"UTC--2020-01-01T00-00-00.000000000Z--{original.address[2:].lower()}"
    path.write_text(json.dumps(exported))
    info = keystore.get(original.address)
    assert (info.label, info.dev, info.path) == ("", False, path)
    assert keystore.unlock(original.address, PASSWORD).address == original.address


def test_a_file_whose_address_was_altered_is_a_config_error(keystore: Keystore) -> None:
    info = keystore.create(PASSWORD)
    document = read_json(info)
    other = Account.create().address
    document["address"] = other[2:].lower()
    info.path.write_text(json.dumps(document))
    with pytest.raises(ConfigError, match="altered"):
        keystore.unlock(other, PASSWORD)


@pytest.mark.parametrize(
    ("kdf", "iterations"), [("argon2", None), ("scrypt", 1000), ("scrypt", 1), ("pbkdf2", 0)]
)
def test_the_constructor_refuses_a_bad_kdf(tmp_path: Path, kdf: str, iterations: int) -> None:
    with pytest.raises(InvalidInput):
        Keystore(tmp_path, kdf=kdf, iterations=iterations)


def test_the_default_kdf_is_scrypt_at_eth_accounts_default_cost(folder: Path) -> None:
    keystore = Keystore(folder)
    info = keystore.create(PASSWORD)
    crypto = read_json(info)["crypto"]
    assert isinstance(crypto, dict)
    assert crypto["kdf"] == "scrypt"
    assert crypto["kdfparams"]["n"] == get_default_work_factor_for_kdf("scrypt") == 2**18
    assert keystore.unlock(info.address, PASSWORD).address == info.address


def test_one_address_in_two_files_is_a_config_error(keystore: Keystore, folder: Path) -> None:
    info = keystore.create(None, dev=True)
    copy = folder / "UTC--2030-01-01T00-00-00.000000Z--copy.json"
    copy.write_text(info.path.read_text())
    with pytest.raises(ConfigError, match="stored twice"):
        keystore.get(info.address)


def test_accounts_are_listed_and_found_without_importing_eth_account(
    keystore: Keystore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `cairn earnings alice` only looks a label up: importing eth_account cost it 0.6 s of 1.1.
    alice = keystore.create(None, label="alice", dev=True)
    for name in ("eth_account", "eth_utils"):  # `import` of either now raises ImportError
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "cairn.identity.keystore")  # imported afresh, as by the CLI
    monkeypatch.setattr(cairn.identity, "keystore", keystore_module)  # put back afterwards
    fresh = importlib.import_module("cairn.identity.keystore").Keystore(keystore.folder)
    for found in (fresh.list()[0], fresh.find_by_label("alice"), fresh.get(alice.address.lower())):
        assert (found.address, found.label, found.path) == (alice.address, "alice", alice.path)


@given(st.binary(min_size=20, max_size=20), st.sampled_from(["0x", "0X", ""]), st.booleans())
def test_address_checks_agree_with_eth_utils(raw: bytes, prefix: str, upper: bool) -> None:
    digits = raw.hex().upper() if upper else raw.hex()
    address = prefix + digits
    assert keystore_module.is_hex_address(address) == eth_utils.is_hex_address(address)
    assert keystore_module.to_checksum_address(address) == eth_utils.to_checksum_address(address)
    checksummed = eth_utils.to_checksum_address(address)
    for candidate in (address, checksummed, checksummed.lower(), checksummed[:-1]):
        assert keystore_module.is_checksum_address(candidate) == eth_utils.is_checksum_address(
            candidate
        )
        assert keystore_module.is_hex_address(candidate) == eth_utils.is_hex_address(candidate)
