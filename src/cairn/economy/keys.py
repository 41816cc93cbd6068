"""API keys: an account's bearer secrets for the OpenAI-compatible gateway.

A key is shown once, at creation (`cairn-sk-` and 43 url-safe characters, 256 random bits);
the index keeps only its SHA-256, so a leaked index does not leak keys. Each key has a public id
(`key_...`) for listing and revoking; a revoked key is refused from that moment on.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import select, update

from cairn.core.errors import Forbidden, InvalidInput, NotFound, Unauthorized
from cairn.core.evm import checksum
from cairn.db.engine import Database
from cairn.economy.models import ApiKeyRow

PREFIX = "cairn-sk-"
MAX_NAME = 100
PAGES_KEY_NAME = "web playground"  # the key the node's web pages charge calls to


@dataclass(frozen=True)
class ApiKey:
    """A key as listed: never its secret."""

    key_id: str
    account: str
    name: str
    created_at: float
    revoked_at: float | None
    last_used_at: float | None


@dataclass(frozen=True)
class IssuedKey(ApiKey):
    """A key just created, with its secret: shown this once, never stored."""

    secret: str


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _public(row: ApiKeyRow) -> ApiKey:
    return ApiKey(
        key_id=row.key_id,
        account=row.account,
        name=row.name,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


class ApiKeys:
    """Create, list, revoke and check API keys."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, account: str, name: str = "") -> tuple[ApiKey, str]:
        """A new key for `account`: (its listing, the secret, shown only now)."""
        name = name.strip()
        if len(name) > MAX_NAME:
            raise InvalidInput(f"key name is {len(name)} characters; at most {MAX_NAME}")
        secret = PREFIX + secrets.token_urlsafe(32)
        row = ApiKeyRow(
            key_id="key_" + secrets.token_hex(8),
            account=checksum(account),
            name=name,
            secret_hash=_hash(secret),
            created_at=time.time(),
        )
        with self.db.session() as session:
            session.add(row)
        return _public(row), secret

    def list(self, account: str) -> list[ApiKey]:
        """`account`'s keys, newest first, revoked ones included."""
        with self.db.session() as session:
            rows = session.scalars(
                select(ApiKeyRow)
                .where(ApiKeyRow.account == checksum(account))
                .order_by(ApiKeyRow.created_at.desc())
            ).all()
        return [_public(r) for r in rows]

    def revoke(self, account: str, key_id: str) -> ApiKey:
        """Revoke one of `account`'s keys (revoking twice is harmless)."""
        with self.db.session() as session:
            row = session.get(ApiKeyRow, key_id)
            if row is None:
                raise NotFound(f"no API key {key_id!r}")
            if row.account != checksum(account):
                raise Forbidden(f"API key {key_id} belongs to another account")
            if row.revoked_at is None:
                row.revoked_at = time.time()
            return _public(row)

    def for_pages(self, account: str) -> ApiKey:
        """The key the node's web pages charge `account`'s calls to: its newest live key named
        'web playground', created on first use. Its secret is never shown: a signed-in session
        stands for it, and its receipts tell playground calls apart from API calls."""
        address = checksum(account)
        with self.db.session() as session:
            row = session.scalar(
                select(ApiKeyRow)
                .where(
                    ApiKeyRow.account == address,
                    ApiKeyRow.name == PAGES_KEY_NAME,
                    ApiKeyRow.revoked_at.is_(None),
                )
                .order_by(ApiKeyRow.created_at.desc())
            )
            if row is not None:
                return _public(row)
        key, _ = self.create(address, PAGES_KEY_NAME)
        return key

    def authenticate(self, secret: str) -> ApiKey:
        """The live key whose secret this is; `Unauthorized` for unknown or revoked keys."""
        if not secret.startswith(PREFIX):
            raise Unauthorized(
                f"that is not a Cairn API key (they start with {PREFIX!r}): "
                "create one with `cairn key create`"
            )
        digest = _hash(secret)
        with self.db.session() as session:
            row = session.scalar(select(ApiKeyRow).where(ApiKeyRow.secret_hash == digest))
            if row is None:
                raise Unauthorized("unknown API key: create one with `cairn key create`")
            if row.revoked_at is not None:
                raise Unauthorized(f"API key {row.key_id} was revoked")
            now = time.time()
            # a write per request is costly; the last use is only kept to the minute
            if row.last_used_at is None or now - row.last_used_at > 60:
                session.execute(
                    update(ApiKeyRow).where(ApiKeyRow.key_id == row.key_id).values(last_used_at=now)
                )
            return _public(row)
