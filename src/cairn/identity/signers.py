"""Keys the node holds unlocked, so that its API can act for accounts kept in its data folder.

A dev account unlocks without a password; another account unlocks with the node's password
(CAIRN_PASSWORD) or with its own, given once through the API. An account whose key the node
does not hold signs its own transactions and relays them (POST /api/v1/chain/transactions).
"""

from __future__ import annotations

import threading

from eth_account.signers.local import LocalAccount

from cairn.core.errors import CairnError, Forbidden, NotFound
from cairn.identity.keystore import Keystore


class Signers:
    """Unlocked accounts of this node's keystore, unlocked lazily and kept in memory."""

    def __init__(self, keystore: Keystore, node_password: str | None) -> None:
        self.keystore = keystore
        self._password = node_password
        self._unlocked: dict[str, LocalAccount] = {}
        self._lock = threading.Lock()

    def get(self, address: str) -> LocalAccount:
        """The unlocked key of `address`, or `Forbidden` saying how to get it unlocked."""
        key = address.lower()
        with self._lock:
            if key in self._unlocked:
                return self._unlocked[key]
        try:
            info = self.keystore.get(address)
        except NotFound:
            raise Forbidden(
                f"this node does not hold the key of {address}: sign the transaction in your "
                "wallet and send it to POST /api/v1/chain/transactions"
            ) from None
        password = None if info.dev else self._password
        if not info.dev and password is None:
            raise Forbidden(
                f"account {info.address} is locked on this node: POST its password to "
                f"/api/v1/accounts/{info.address}/unlock, or start the node with CAIRN_PASSWORD"
            )
        try:
            account = self.keystore.unlock(info.address, password)
        except CairnError:
            raise Forbidden(
                f"account {info.address} does not open with the node's password: POST its own "
                f"password to /api/v1/accounts/{info.address}/unlock"
            ) from None
        return self.hold(account)

    def unlock(self, address: str, password: str) -> LocalAccount:
        """Unlock `address` with its own password and keep it unlocked."""
        return self.hold(self.keystore.unlock(address, password))

    def hold(self, account: LocalAccount) -> LocalAccount:
        """Keep an already unlocked account."""
        with self._lock:
            self._unlocked[account.address.lower()] = account
        return account

    def holds(self, address: str) -> bool:
        """Whether the key of `address` is unlocked here now."""
        with self._lock:
            return address.lower() in self._unlocked

    def find(self, address: str) -> LocalAccount | None:
        """The key of `address` if this node can use it (as `get`), else None."""
        try:
            return self.get(address)
        except CairnError:
            return None
