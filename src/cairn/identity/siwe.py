"""Sign-In with Ethereum (EIP-4361): nonces, signed-message checks and bearer sessions.

A wallet asks for a nonce, signs an EIP-4361 message that carries it (EIP-191 personal_sign),
and trades message and signature for a session token. The `siwe` package parses the message;
the checks are ours, so each failure names what the user can fix, and so the signature is
checked over the exact text that was signed rather than over `siwe`'s re-rendering of it.
A nonce is spent by the first valid sign-in only, in one conditional UPDATE, so a replay loses
even when it races the original.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import urlsplit

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_keys.exceptions import BadSignature
from eth_utils import ValidationError as EthValidationError
from pydantic import ValidationError
from sqlalchemy import CursorResult, delete, update
from sqlalchemy.orm import Session

from cairn.core.errors import ConfigError, InvalidInput, Unauthorized
from cairn.db.engine import Database
from cairn.identity.models import SessionRow, SiweNonce

with warnings.catch_warnings():
    # siwe's grammar restates RFC 5234's core rules, which abnf reports as a warning on import.
    warnings.simplefilter("ignore")
    from siwe import SiweMessage, defs
    from siwe.siwe import datetime_from_iso8601_string

NONCE_LENGTH = 24  # EIP-4361: at least 8 alphanumerics; 24 give ~142 bits
NONCE_ALPHABET = string.ascii_letters + string.digits
CLOCK_SKEW = 60  # seconds a wallet's clock may run ahead of ours
# The ABNF parser is quadratic in line length: bound the work one request can cause.
# Real messages are a few hundred characters; long ReCap resources still fit.
MAX_MESSAGE_CHARS = 4096
MAX_LINE_CHARS = 1024
MAX_FIRST_LINE_CHARS = 320  # a DNS name is at most 253 characters; the parser is slowest here
SIGNATURE_HEX_DIGITS = 130  # 65 bytes: r, s, v
MESSAGE_PARTS = (
    (
        "the first line, '<domain> wants you to sign in with your Ethereum account:'",
        defs.SCHEME + defs.DOMAIN,
    ),
    ("the address line (an EIP-55 address, then a blank line)", defs.ADDRESS),
    ("the statement (one line, then a blank line)", defs.STATEMENT),
    ("the 'URI: ' line", defs.URI_LINE),
    ("the 'Version: 1' line", defs.VERSION),
    ("the 'Chain ID: ' line", defs.CHAIN_ID),
    ("the 'Nonce: ' line (at least 8 letters and digits)", defs.NONCE),
    ("the 'Issued At: ' line (an RFC 3339 time)", defs.ISSUED_AT),
    ("the 'Expiration Time: ' line", defs.EXPIRATION_TIME),
    ("the 'Not Before: ' line", defs.NOT_BEFORE),
    ("the 'Request ID: ' line", defs.REQUEST_ID),
    ("the 'Resources:' list", defs.RESOURCES),
)


@dataclass(frozen=True)
class SignedIn:
    """A new session: the bearer token (shown once), who it is for, and when it ends."""

    token: str
    address: str
    expires_at: int


class SiweAuth:
    """Sign-in for one node: the domains it answers on and the chain it runs."""

    def __init__(
        self,
        db: Database,
        *,
        domains: set[str],
        chain_id: int,
        nonce_ttl: int = 600,
        session_ttl: int = 86400,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not domains:
            raise ConfigError("sign-in needs at least one domain (host[:port]) to accept")
        self._db = db
        self._domains = frozenset(domains)
        self._chain_id = chain_id
        self._nonce_ttl = nonce_ttl
        self._session_ttl = session_ttl
        self._clock = clock

    def issue_nonce(self) -> str:
        """A fresh nonce for one sign-in, valid for `nonce_ttl` seconds."""
        now = int(self._clock())
        nonce = "".join(secrets.choice(NONCE_ALPHABET) for _ in range(NONCE_LENGTH))
        with self._db.session() as session:
            # Forget nonces long dead: a replay of one then fails as "unknown", still a failure.
            session.execute(delete(SiweNonce).where(SiweNonce.expires_at < now - self._nonce_ttl))
            session.add(SiweNonce(nonce=nonce, issued_at=now, expires_at=now + self._nonce_ttl))
        return nonce

    def sign_in(self, message: str, signature: str) -> SignedIn:
        """Check a signed EIP-4361 message and open a session for its address."""
        now = self._clock()
        parsed = parse_message(message)
        if parsed.domain not in self._domains:
            raise Unauthorized(
                f"the message signs in to '{parsed.domain}', but this node answers on "
                f"{', '.join(sorted(self._domains))}; sign in from this node's own page"
            )
        _check_uri(parsed)
        if parsed.chain_id != self._chain_id:
            raise Unauthorized(
                f"the message is for chain id {parsed.chain_id}, but this node runs on chain id "
                f"{self._chain_id}; switch the wallet's network and sign again"
            )
        issued_at = _timestamp(parsed.issued_at)
        if issued_at > now + CLOCK_SKEW:
            raise Unauthorized(
                f"the message was issued at {parsed.issued_at}, in the future; "
                "check your computer's clock"
            )
        expires_at = _timestamp(parsed.expiration_time) if parsed.expiration_time else None
        if expires_at is not None and expires_at <= now:
            raise Unauthorized(f"the message expired at {parsed.expiration_time}; sign a new one")
        if parsed.not_before and _timestamp(parsed.not_before) > now + CLOCK_SKEW:
            raise Unauthorized(
                f"the message is not valid before {parsed.not_before}; wait, or sign a new one"
            )
        signer = recover_signer(message, signature)
        if signer != parsed.address:
            raise Unauthorized(
                f"the signature was not made by {parsed.address} over this exact message; "
                "sign the message text unchanged with that account"
            )
        address = str(parsed.address)
        token = secrets.token_urlsafe(32)
        session_end = int(now) + self._session_ttl
        if expires_at is not None:
            session_end = min(session_end, int(expires_at))  # the wallet asked for no longer
        with self._db.session() as session:
            self._spend_nonce(session, parsed.nonce, address, int(now))
            session.execute(
                delete(SessionRow).where(SessionRow.expires_at < int(now) - self._session_ttl)
            )
            session.add(
                SessionRow(
                    token_hash=token_hash(token),
                    address=address,
                    issued_at=int(now),
                    expires_at=session_end,
                    revoked=False,
                )
            )
        return SignedIn(token=token, address=address, expires_at=session_end)

    def resolve(self, token: str) -> str:
        """The address signed in with `token`; Unauthorized unless the session is live."""
        if not isinstance(token, str) or not token:
            raise Unauthorized("not signed in: no session token was sent")
        now = self._clock()
        with self._db.session() as session:
            row = session.get(SessionRow, token_hash(token))
            if row is None:
                raise Unauthorized("the session token is not valid; sign in again")
            if row.revoked:
                raise Unauthorized("this session was signed out; sign in again")
            if row.expires_at <= now:
                raise Unauthorized(f"the session expired at {_iso(row.expires_at)}; sign in again")
            return row.address

    def sign_out(self, token: str) -> None:
        """End the session of `token`; signing out twice, or with an unknown token, is a no-op."""
        if not isinstance(token, str) or not token:
            return
        with self._db.session() as session:
            session.execute(
                update(SessionRow)
                .where(SessionRow.token_hash == token_hash(token))
                .values(revoked=True)
            )

    def _spend_nonce(self, session: Session, nonce: str, address: str, now: int) -> None:
        row = session.get(SiweNonce, nonce)
        if row is None:
            raise Unauthorized(
                f"nonce {nonce} was not issued by this node (or is long expired); "
                "ask for a new nonce and sign again"
            )
        if row.used_by is not None:
            raise Unauthorized(
                f"nonce {nonce} was already used to sign in; ask for a new nonce and sign again"
            )
        if row.expires_at <= now:
            raise Unauthorized(
                f"nonce {nonce} expired at {_iso(row.expires_at)}; "
                "ask for a new nonce and sign again"
            )
        # The check above is for the message; this conditional UPDATE is the guard: of two
        # racing sign-ins with one nonce, exactly one sees a row to change.
        result = cast(
            CursorResult[Any],
            session.execute(
                update(SiweNonce)
                .where(
                    SiweNonce.nonce == nonce,
                    SiweNonce.used_by.is_(None),
                    SiweNonce.expires_at > now,
                )
                .values(used_by=address)
                .execution_options(synchronize_session=False)
            ),
        )
        if result.rowcount != 1:
            raise Unauthorized(
                f"nonce {nonce} was already used to sign in; ask for a new nonce and sign again"
            )


def parse_message(message: str) -> SiweMessage:
    """Parse EIP-4361 text; InvalidInput with the parser's reason if it is not one."""
    if not isinstance(message, str):
        raise InvalidInput("the sign-in message must be text")
    if len(message) > MAX_MESSAGE_CHARS:
        raise InvalidInput(
            f"the sign-in message has {len(message)} characters; at most "
            f"{MAX_MESSAGE_CHARS} are accepted"
        )
    first, *_ = message.split("\n", 1)
    if len(first) > MAX_FIRST_LINE_CHARS:
        raise InvalidInput(
            f"the first line of the sign-in message has {len(first)} characters; at most "
            f"{MAX_FIRST_LINE_CHARS} are accepted"
        )
    longest = max(len(line) for line in message.split("\n"))
    if longest > MAX_LINE_CHARS:
        raise InvalidInput(
            f"the sign-in message has a line of {longest} characters; at most "
            f"{MAX_LINE_CHARS} are accepted"
        )
    try:
        return SiweMessage.from_message(message)
    except ValidationError as exc:  # the text has the right shape, a field's value is wrong
        reasons = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors()
        )
        raise InvalidInput(f"not a valid EIP-4361 sign-in message: {reasons}") from None
    except ValueError:  # the ABNF grammar did not match
        raise InvalidInput(
            f"not a valid EIP-4361 sign-in message: check {_first_bad_part(message)}"
        ) from None


def _check_uri(parsed: SiweMessage) -> None:
    """The URI line must name the origin the message signs in to: the domain line's host and
    port (and its scheme, when the first line gives one), over http or https."""
    uri = urlsplit(parsed.uri)
    scheme_ok = uri.scheme in ("http", "https") and parsed.scheme in (None, "", uri.scheme)
    if not scheme_ok or uri.netloc.lower() != str(parsed.domain).lower():
        origin = f"{parsed.scheme or 'http(s)'}://{parsed.domain}"
        raise Unauthorized(
            f"the message's URI {parsed.uri} is not on {origin}, the origin it signs in to; "
            "sign in from this node's own page"
        )


def recover_signer(message: str, signature: str) -> str:
    """The address whose EIP-191 personal_sign of `message` is `signature` (65 bytes, hex)."""
    if not isinstance(signature, str):
        raise Unauthorized("the signature must be hex text")
    digits = signature[2:] if signature[:2].lower() == "0x" else signature
    if len(digits) != SIGNATURE_HEX_DIGITS or any(c not in string.hexdigits for c in digits):
        raise Unauthorized(
            "the signature must be 65 bytes as hex (0x and 130 hex digits), "
            "as personal_sign returns it"
        )
    try:
        signer: str = Account.recover_message(
            encode_defunct(text=message), signature=bytes.fromhex(digits)
        )
    except (ValueError, BadSignature, EthValidationError):
        raise Unauthorized("the signature is not a valid secp256k1 signature") from None
    return signer


def token_hash(token: str) -> str:
    """What the index keeps of a session token: its sha256, in hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _timestamp(value: str) -> float:
    # The parser has already checked the text: every value here is a valid RFC 3339 time.
    return datetime_from_iso8601_string(value).timestamp()


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def _first_bad_part(message: str) -> str:
    # abnf says only "no match": match siwe's own per-line patterns in order to say where.
    # They are looser than the grammar (a URI may run on past a line break), so this is a hint.
    if message.endswith("\n"):
        return "the end of the message: remove the line break after the last line"
    pattern = "^"
    end = 0
    for name, part in MESSAGE_PARTS:
        pattern += part
        found = re.match(pattern, message)
        if found is None:
            return name
        end = found.end()
    if end < len(message):  # the optional fields matched up to here; what follows is none
        rest = message[end:]
        line = message.count("\n", 0, end) + 1
        if rest.startswith("\n"):
            rest, line = rest[1:], line + 1
        text = rest.split("\n", 1)[0][:40]
        return (
            f"line {line} ({text!r}): after Issued At come only "
            "Expiration Time, Not Before, Request ID and Resources, in that order, "
            "with no blank line"
        )
    return "the values: the URI and each resource must be RFC 3986 URIs"
