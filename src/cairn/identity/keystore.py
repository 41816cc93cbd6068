"""Accounts kept as keystore v3 JSON files in one folder, the way geth keeps them.

Each file is a standard keystore v3 document (any wallet or `eth_account.Account.decrypt` reads
it) with one extra top-level key, `"cairn": {"label", "dev", "created_at"}`, that keystore readers
ignore. A dev account is stored under an empty password with a cheap kdf: it is unencrypted in
effect, for local experiments only, and says so with `dev: true`.

Listing and finding accounts reads JSON only: eth_account (0.6 s to import) is loaded by the calls
that make, decrypt or encrypt a key, so `cairn earnings alice` does not pay for it.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from eth_hash.auto import keccak

from cairn.core.errors import ConfigError, Conflict, InvalidInput, NotFound, Unauthorized

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

PASSWORD_REQUIRED = "a password is required; set CAIRN_PASSWORD or type one at the prompt"
Kdf = Literal["scrypt", "pbkdf2"]
KDFS: tuple[Kdf, ...] = ("scrypt", "pbkdf2")
DEV_KDF: Kdf = "pbkdf2"
DEV_ITERATIONS = 16  # a dev key is meant to be readable without a password: cost buys nothing
# The labels of a node's own accounts: the operator deploys contracts, mints on dev chains and
# pays relayed gas; the gateway holds deposits, signs usage receipts and funds epochs.
OPERATOR = "operator"
GATEWAY = "gateway"
# eth-keyfile reports a wrong password as a MAC (v3) or checksum (v4) mismatch.
WRONG_PASSWORD_ERRORS = ("MAC mismatch", "Checksum mismatch")


@dataclass(frozen=True)
class AccountInfo:
    """What the keystore knows about one account without unlocking it."""

    address: str  # EIP-55 checksummed
    label: str
    dev: bool
    created_at: int  # unix seconds
    path: Path


class Keystore:
    """The node's accounts: one keystore v3 file per key in `folder` (0700, files 0600)."""

    def __init__(self, folder: Path, *, kdf: str = "scrypt", iterations: int | None = None) -> None:
        if kdf not in KDFS:
            raise InvalidInput(f"kdf must be one of {', '.join(KDFS)}; got {kdf!r}")
        if iterations is not None:
            # scrypt's cost n must be a power of two above 1; pbkdf2 needs at least one round.
            if kdf == "scrypt" and (iterations < 2 or iterations & (iterations - 1)):
                raise InvalidInput(f"scrypt cost must be a power of two >= 2; got {iterations}")
            if kdf == "pbkdf2" and iterations < 1:
                raise InvalidInput(f"pbkdf2 iterations must be >= 1; got {iterations}")
        self.folder = Path(folder)
        self.kdf: Kdf = "scrypt" if kdf == "scrypt" else "pbkdf2"  # checked above
        self.iterations = iterations  # None: eth-account's default cost for the kdf

    def create(self, password: str | None, *, label: str = "", dev: bool = False) -> AccountInfo:
        """Make a new random key and store it; a dev account ignores `password`."""
        from eth_account import Account

        self._check_new(password, label=label, dev=dev)
        account: LocalAccount = Account.create()
        return self._store(account, password, label=label, dev=dev)

    def import_key(
        self, private_key: str | bytes, password: str | None, *, label: str = "", dev: bool = False
    ) -> AccountInfo:
        """Store an existing private key (32 bytes, or 64 hex digits with or without 0x)."""
        account = _account_from_key(private_key)
        existing = {info.address: info for info in self.list()}
        if account.address in existing:
            raise Conflict(
                f"account {account.address} is already in the keystore "
                f"({existing[account.address].path.name})"
            )
        self._check_new(password, label=label, dev=dev)
        return self._store(account, password, label=label, dev=dev)

    def list(self) -> list[AccountInfo]:
        """Every account in the folder, oldest first (then by address)."""
        infos = [_read_keyfile(path)[0] for path in self._keyfiles()]
        seen: dict[str, Path] = {}
        for info in infos:
            if info.address in seen:
                raise ConfigError(
                    f"account {info.address} is stored twice, in {seen[info.address]} and "
                    f"{info.path}; remove one of the files"
                )
            seen[info.address] = info.path
        return sorted(infos, key=lambda info: (info.created_at, info.address))

    def get(self, address: str) -> AccountInfo:
        """The account with this address (any letter case; a mixed case must be EIP-55)."""
        wanted = checksum_address(address)
        for info in self.list():
            if info.address == wanted:
                return info
        raise NotFound(f"no account {wanted} in the keystore at {self.folder}")

    def find_by_label(self, label: str) -> AccountInfo:
        """The account whose label is exactly `label`."""
        if not label:
            raise InvalidInput("an account label must not be empty")
        for info in self.list():
            if info.label == label:
                return info
        raise NotFound(f"no account labelled {label!r} in the keystore at {self.folder}")

    def unlock(self, address: str, password: str | None) -> LocalAccount:
        """Decrypt the account's key; a dev account needs no password."""
        from eth_account import Account

        info = self.get(address)
        _, document = _read_keyfile(info.path)
        if info.dev:
            password = ""
        elif not password:
            raise InvalidInput(PASSWORD_REQUIRED)
        try:
            key = Account.decrypt(document, password)
        except ValueError as exc:
            if str(exc) not in WRONG_PASSWORD_ERRORS:
                raise ConfigError(f"keystore file {info.path} cannot be decrypted: {exc}") from None
            if info.dev:
                raise ConfigError(
                    f"keystore file {info.path} is marked dev but is not stored under an empty "
                    'password; remove its "dev" flag'
                ) from None
            raise Unauthorized(f"wrong password for account {info.address}") from None
        except (KeyError, TypeError, NotImplementedError, AssertionError) as exc:
            raise ConfigError(
                f"keystore file {info.path} cannot be decrypted: bad or missing field {exc}"
            ) from None
        account: LocalAccount = Account.from_key(key)
        if account.address != info.address:
            raise ConfigError(
                f"keystore file {info.path} says {info.address} but holds the key of "
                f"{account.address}; the file was altered"
            )
        return account

    def _check_new(self, password: str | None, *, label: str, dev: bool) -> None:
        if not dev and not password:
            raise InvalidInput(PASSWORD_REQUIRED)
        if label and any(info.label == label for info in self.list()):
            raise Conflict(f"an account labelled {label!r} already exists; choose another label")

    def _store(
        self, account: LocalAccount, password: str | None, *, label: str, dev: bool
    ) -> AccountInfo:
        from eth_account import Account

        now = datetime.now(UTC)
        if dev:
            document = Account.encrypt(account.key, "", kdf=DEV_KDF, iterations=DEV_ITERATIONS)
        else:
            assert password  # _check_new refused an empty one
            document = Account.encrypt(
                account.key,
                password,
                kdf=self.kdf,
                iterations=self.iterations,
            )
        created_at = int(now.timestamp())
        document["cairn"] = {"label": label, "dev": dev, "created_at": created_at}
        # geth's name: UTC--<ISO time, ':' as '-'>--<address, lowercase, no 0x>
        stamp = now.strftime("%Y-%m-%dT%H-%M-%S.%fZ")
        path = self.folder / f"UTC--{stamp}--{account.address[2:].lower()}.json"
        self._write_atomically(path, document)
        return AccountInfo(account.address, label, dev, created_at, path)

    def _write_atomically(self, path: Path, document: dict[str, Any]) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)  # mkdir's mode is filtered by the umask
        descriptor, temporary = tempfile.mkstemp(dir=self.folder, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                json.dump(document, handle, indent=2)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temporary, 0o600)
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise

    def _keyfiles(self) -> builtins.list[Path]:
        if not self.folder.is_dir():
            return []
        # Our files and geth's start with UTC--; a dropped-in wallet export may only end in .json.
        # Dot-files are our own half-written temporaries.
        return sorted(
            path
            for path in self.folder.iterdir()
            if path.is_file()
            and not path.name.startswith(".")
            and (path.name.startswith("UTC--") or path.suffix == ".json")
        )


HEX_ADDRESS = re.compile(r"(0[xX])?[0-9a-fA-F]{40}")


def is_hex_address(value: str) -> bool:
    """40 hex digits, 0x optional (eth_utils' `is_hex_address`, without importing eth_utils)."""
    return HEX_ADDRESS.fullmatch(value) is not None


def to_checksum_address(address: str) -> str:
    """The EIP-55 form of a hex address (eth_utils' `to_checksum_address`)."""
    digits = address[2:].lower() if address[:2] in ("0x", "0X") else address.lower()
    digest = keccak(digits.encode("ascii")).hex()
    return "0x" + "".join(
        c.upper() if int(d, 16) >= 8 else c for c, d in zip(digits, digest, strict=False)
    )


def is_checksum_address(address: str) -> bool:
    """Whether `address` is a hex address written in its EIP-55 form (eth_utils' own check)."""
    return is_hex_address(address) and address == to_checksum_address(address)


def checksum_address(address: str) -> str:
    """The EIP-55 form of `address`; InvalidInput if it is not one."""
    if not isinstance(address, str) or not is_hex_address(address):
        raise InvalidInput(f"{address!r} is not an Ethereum address: expected 0x and 40 hex digits")
    digits = address[2:]
    if digits != digits.lower() and digits != digits.upper() and not is_checksum_address(address):
        raise InvalidInput(f"{address} has a wrong EIP-55 checksum (letter case); check for typos")
    return to_checksum_address(address)


def _account_from_key(private_key: str | bytes) -> LocalAccount:
    from eth_account import Account

    # Never echo the key itself in an error: it may land in a log.
    if isinstance(private_key, str):
        digits = private_key.strip()
        digits = digits[2:] if digits[:2].lower() == "0x" else digits
        try:
            raw = bytes.fromhex(digits)
        except ValueError:
            raise InvalidInput("a private key must be 64 hex digits (0x optional)") from None
    elif isinstance(private_key, bytes):
        raw = private_key
    else:
        raise InvalidInput("a private key must be hex text or 32 bytes")
    if len(raw) != 32:
        raise InvalidInput(f"a private key must be 32 bytes; got {len(raw)}")
    try:
        account: LocalAccount = Account.from_key(raw)
    except ValueError:  # zero, or not below the curve order
        raise InvalidInput("not a valid secp256k1 private key: out of range") from None
    return account


def _read_keyfile(path: Path) -> tuple[AccountInfo, dict[str, Any]]:
    """Parse one keystore file; ConfigError naming the file if it is not one."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"keystore file {path} cannot be read: {exc.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"keystore file {path} is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"keystore file {path} is not a keystore v3 file: not a JSON object")
    address = document.get("address")
    if not isinstance(address, str) or not is_hex_address(
        address if address.startswith("0x") else f"0x{address}"
    ):
        raise ConfigError(f"keystore file {path} is not a keystore v3 file: bad 'address'")
    if not isinstance(document.get("crypto"), dict):
        raise ConfigError(f"keystore file {path} is not a keystore v3 file: missing 'crypto'")
    meta = document.get("cairn", {})
    if not isinstance(meta, dict):
        raise ConfigError(f"keystore file {path}: 'cairn' must be an object")
    label = meta.get("label", "")
    dev = meta.get("dev", False)
    # A key from geth or a wallet has no cairn block: it was created when the file was.
    created_at = meta.get("created_at", int(path.stat().st_mtime))
    if not isinstance(label, str):
        raise ConfigError(f"keystore file {path}: 'cairn.label' must be text")
    if not isinstance(dev, bool):
        raise ConfigError(f"keystore file {path}: 'cairn.dev' must be true or false")
    if not isinstance(created_at, int) or isinstance(created_at, bool):
        raise ConfigError(f"keystore file {path}: 'cairn.created_at' must be unix seconds")
    checksummed = to_checksum_address(address if address.startswith("0x") else f"0x{address}")
    return AccountInfo(checksummed, label, dev, created_at, path), document
