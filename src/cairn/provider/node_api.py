"""The part of a node's public HTTP API that a provider's worker uses.

A worker needs little: the node's chain (its contracts and their ABIs), its compute settings, a
provider's stake record, and a relay for the transactions it signs with its own key.
`NodeAPI` is that much of a client; the full one (`cairn.api.client.NodeClient`) builds on it.
It loads neither web3 nor eth_account: a command that only reads pays for httpx alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

from cairn.core.errors import (
    CairnError,
    ChainError,
    ChainUnavailable,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    Unauthorized,
)

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

# A problem-details answer's status, as the error a caller catches.
ERRORS_BY_STATUS: dict[int, type[CairnError]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: ChainError,
    422: InvalidInput,
}


class NodeAPI:
    """Talks to one node over HTTP; errors come back as the matching `CairnError`."""

    def __init__(self, base_url: str, *, timeout: float = 120.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout)
        self.token: str | None = None  # a session token, once signed in
        self._chain: dict[str, Any] | None = None

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self.http.close()

    def __enter__(self) -> NodeAPI:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call the API; a problem-details answer raises the matching `CairnError`."""
        headers = kwargs.pop("headers", {})
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            reply = self.http.request(method, f"/api/v1{path}", headers=headers, **kwargs)
        except httpx.TransportError as exc:
            raise ChainUnavailable(
                f"no Cairn node answers at {self.base_url} ({exc}); start one with `cairn node start`"
            ) from exc
        if reply.status_code >= 400:
            raise problem(reply)
        if reply.status_code == 204 or not reply.content:
            return None
        if reply.headers.get("content-type", "").startswith("application/json"):
            return reply.json()
        return reply.content

    def chain(self) -> dict[str, Any]:
        """GET /chain, cached: chain id, backend, contracts with their ABIs."""
        if self._chain is None:
            self._chain = self.request("GET", "/chain")
        return self._chain

    def account(self, address: str) -> dict[str, Any]:
        """Balances and nonce of an address."""
        result: dict[str, Any] = self.request("GET", f"/accounts/{address}")
        return result

    def compute(self) -> dict[str, Any]:
        """The node's compute settings: SuperLink running, Fleet API port, escrow, minimum stake."""
        result: dict[str, Any] = self.request("GET", "/compute")
        return result

    def provider(self, address: str) -> dict[str, Any]:
        """A provider's record in JobEscrow: stake, status, unbonding, open jobs."""
        result: dict[str, Any] = self.request("GET", f"/providers/{address}")
        return result

    def transact(
        self, account: LocalAccount, contract: str, function: str, *args: Any
    ) -> dict[str, Any]:
        """Call `contract.function(*args)` from `account`: estimate, sign locally, relay."""
        # Only a write pays for the ABI codec (eth_abi) and, to sign, eth_account.
        from cairn.provider.contract_calls import encode_call

        info = self.chain()
        deployed = info["contracts"][contract]
        data = encode_call(deployed["abi"], contract, function, args)
        call = {"from": account.address, "to": deployed["address"], "data": data, "value": "0"}
        gas = int(self.request("POST", "/chain/estimate", json=call)["gas"])
        nonce = int(self.account(account.address)["nonce"])
        fees = self.request("GET", "/chain/fees")
        tx = {
            "to": deployed["address"],
            "data": data,
            "value": 0,
            "gas": gas,
            "nonce": nonce,
            "chainId": int(info["chain_id"]),
            "maxFeePerGas": int(fees["maxFeePerGas"]),
            "maxPriorityFeePerGas": int(fees["maxPriorityFeePerGas"]),
        }
        raw = account.sign_transaction(tx).raw_transaction.to_0x_hex()
        result: dict[str, Any] = self.request("POST", "/chain/transactions", json={"raw": raw})
        return result


def problem(reply: httpx.Response) -> CairnError:
    """The `CairnError` a node's error answer (problem details, or plain text) stands for."""
    try:
        body = reply.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {}
    detail = body.get("detail") or body.get("title") or reply.text
    if reply.status_code == 409 and "reason" not in body:
        return Conflict(str(detail))  # a conflict of the node's own, not a reverted transaction
    error = ERRORS_BY_STATUS.get(reply.status_code, CairnError)
    if error is ChainError:
        return ChainError(str(detail), reason=body.get("reason"))
    return error(str(detail))
