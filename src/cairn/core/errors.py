"""The one Cairn error family: every failure a user can act on is a `CairnError`.

Each subclass also inherits the matching builtin (as web3.py does), so callers that only know
Python's own exceptions still catch them. Faces map `status` to an HTTP code or an exit code.
"""

from __future__ import annotations


class CairnError(Exception):
    """Root of all Cairn errors. `status` is the HTTP status a face should answer with."""

    status: int = 400
    title: str = "Bad request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(CairnError, ValueError):
    """Input that breaks a documented rule: a malformed CID, a bad split policy, a bad address."""

    status = 422
    title = "Invalid input"


class NotFound(CairnError, LookupError):
    """A named thing (asset, blob, account, deployment) does not exist."""

    status = 404
    title = "Not found"


class Unauthorized(CairnError, PermissionError):
    """The caller is not signed in, or the signature or session is not valid."""

    status = 401
    title = "Unauthorized"


class Forbidden(CairnError, PermissionError):
    """The caller is signed in but may not do this (not the owner, not a curator)."""

    status = 403
    title = "Forbidden"


class Conflict(CairnError):
    """The request clashes with current state: a replayed nonce, an existing name."""

    status = 409
    title = "Conflict"


class IntegrityError(CairnError):
    """Stored bytes do not match their content id: corruption, never data."""

    status = 500
    title = "Integrity error"


class ChainError(CairnError):
    """The chain refused or failed a call; `reason` is the contract's revert string if any."""

    status = 409
    title = "Transaction reverted"

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason


class ChainUnavailable(CairnError, ConnectionError):
    """The chain backend cannot be reached or started."""

    status = 503
    title = "Chain unavailable"


class ConfigError(CairnError):
    """The node's configuration or data folder is inconsistent."""

    status = 500
    title = "Configuration error"


class Unavailable(CairnError, ConnectionError):
    """A service Cairn needs (a node, a SuperLink, a worker) cannot be reached or started."""

    status = 503
    title = "Service unavailable"


class PaymentRequired(CairnError):
    """The account's prepaid balance does not cover the request: `available` and `needed` in
    the token's smallest unit, for a face to say in its own words (a page in CAIRN)."""

    status = 402
    title = "Payment required"

    def __init__(self, message: str, *, available: int = 0, needed: int = 0) -> None:
        super().__init__(message)
        self.available = available
        self.needed = needed


class RateLimited(CairnError):
    """The account or key made more requests, or stored more bytes, than the node allows."""

    status = 429
    title = "Too many requests"
