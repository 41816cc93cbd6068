"""A Python client for a Cairn node's API, used by the CLI and handy in scripts.

Writes are non-custodial: the client signs in with Sign-In with Ethereum and signs each
transaction with the caller's own key, and the node only relays it to Cairn's contracts. It
builds on the provider's `NodeAPI` (requests, errors, relayed transactions); what only signing
needs (eth_account) is loaded by the calls that sign, so a read stays light.

Over 400 lines because it has one short method per route a user's command calls (about forty),
each a request and a typed answer; grouping them by domain would split one client into many.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import urlparse

from cairn.assets.metadata import asset_metadata, validate_parents
from cairn.core.cid import canonical_json, cid_of, cid_of_stream
from cairn.core.errors import ChainUnavailable, InvalidInput, Unauthorized
from cairn.core.policy import (
    DEFAULT_DATASET_SPLIT,
    AssetKind,
    RevenueSplit,
    refuse_bare_dataset,
)
from cairn.identity.siwe_message import siwe_message
from cairn.provider.node_api import NodeAPI, problem

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

UPLOAD_CHUNK = 16 * 2**20  # bytes per chunk of a large upload: a node's default chunk size
RESUME_TRIES = 5  # times a chunked upload picks up again after its connection dropped
Progress = Callable[[int], None]  # told of each batch of bytes the node has acknowledged


class NodeClient(NodeAPI):
    """Talks to one node over HTTP; errors come back as the matching `CairnError`."""

    def __init__(
        self, base_url: str, *, timeout: float = 120.0, chunk_size: int = UPLOAD_CHUNK
    ) -> None:
        super().__init__(base_url, timeout=timeout)
        self.chunk_size = chunk_size  # uploads above this go in chunks (the node's, if smaller)

    def __enter__(self) -> NodeClient:
        return self

    # -- reads ---------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """The node's health."""
        result: dict[str, Any] = self.request("GET", "/health")
        return result

    def balances(self, address: str) -> dict[str, Any]:
        """Token and ether balances of an address."""
        result: dict[str, Any] = self.request("GET", f"/balances/{address}")
        return result

    def assets(self, **filters: Any) -> list[dict[str, Any]]:
        """Registered assets, filtered by kind, owner, q."""
        params = {k: v for k, v in filters.items() if v is not None}
        result: list[dict[str, Any]] = self.request("GET", "/assets", params=params)
        return result

    def asset(self, asset_id: int) -> dict[str, Any]:
        """One asset."""
        result: dict[str, Any] = self.request("GET", f"/assets/{asset_id}")
        return result

    # -- signing in ----------------------------------------------------------------------

    def sign_in(self, account: LocalAccount) -> str:
        """Sign in with an EIP-4361 message signed by `account`; keeps the session token."""
        from eth_account.messages import encode_defunct

        nonce = self.request("POST", "/auth/nonce")["nonce"]
        message = siwe_message(
            domain=urlparse(self.base_url).netloc,
            address=account.address,
            statement="Sign in to this Cairn node.",
            uri=self.base_url,
            chain_id=int(self.chain()["chain_id"]),
            nonce=nonce,
            issued_at=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        )
        signature = account.sign_message(encode_defunct(text=message)).signature.to_0x_hex()
        session = self.request(
            "POST", "/auth/signin", json={"message": message, "signature": signature}
        )
        self.token = str(session["token"])
        return self.token

    # -- writes, signed here and relayed by the node -----------------------------------------

    def transfer_tokens(self, account: LocalAccount, to: str, amount: int) -> dict[str, Any]:
        """Send `amount` (smallest units) of the node's token to `to`."""
        if amount <= 0:
            raise InvalidInput("amount must be positive")
        return self.transact(account, "CairnToken", "transfer", _checksum(to), amount)

    def upload(self, data: bytes, progress: Progress | None = None) -> str:
        """Store bytes on the node (signed in); returns their CID. Above one chunk, in chunks."""
        if not self.token:
            raise Unauthorized("sign in before uploading")
        if len(data) > self.chunk_size:
            return self._upload_chunks(io.BytesIO(data), len(data), cid_of(data), progress)
        cid = str(self.request("POST", "/blobs", content=data)["cid"])
        if progress is not None:
            progress(len(data))
        return cid

    def upload_file(self, path: Path, progress: Progress | None = None) -> str:
        """Store a file on the node (signed in), never holding more than a chunk of it."""
        size = path.stat().st_size
        if size <= self.chunk_size:
            return self.upload(path.read_bytes(), progress)
        if not self.token:
            raise Unauthorized("sign in before uploading")
        with path.open("rb") as source:
            cid = cid_of_stream(source)
            return self._upload_chunks(source, size, cid, progress)

    def _upload_chunks(
        self, source: BinaryIO, size: int, cid: str, progress: Progress | None
    ) -> str:
        """A resumable upload: declare the blob, send what the node lacks, and complete it.

        Declaring a blob the node already holds part of picks that upload up where it stopped
        (after a dropped connection, or from another process); so does a chunk that fails in
        transit, sent again.
        """
        staged = self.request("POST", "/uploads", json={"size": size, "cid": cid})
        upload_id, chunk = staged["upload_id"], min(self.chunk_size, int(staged["chunk_size"]))
        received = int(staged["received"])
        if progress is not None and received:
            progress(received)
        tries = 0
        while received < size:
            source.seek(received)
            data = source.read(min(chunk, size - received))
            last = received + len(data) - 1
            try:
                staged = self.request(
                    "PUT",
                    f"/uploads/{upload_id}",
                    content=data,
                    headers={"Content-Range": f"bytes {received}-{last}/{size}"},
                )
            except ChainUnavailable:
                # The connection dropped: send the chunk again (the node takes a chunk whole
                # or not at all, and takes bytes it already holds again when they match).
                tries += 1
                if tries > RESUME_TRIES:
                    raise
                time.sleep(min(0.5 * 2**tries, 8.0))
                continue
            tries = 0
            now = int(staged["received"])
            if progress is not None and now > received:
                progress(now - received)
            received = now
        return str(self.request("POST", f"/uploads/{upload_id}/complete")["cid"])

    def register_asset(
        self,
        account: LocalAccount,
        *,
        kind: str,
        name: str,
        licence: str,
        description: str = "",
        parents: list[int] | None = None,
        split: RevenueSplit | None = None,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Upload the metadata, register a model or app from `account`, and return it.

        A dataset is made with `create_dataset`, which gives it the spec it needs.
        """
        return self._register(
            account,
            refuse_bare_dataset(kind),
            name=name,
            licence=licence,
            description=description,
            parents=parents,
            split=split,
            extra=extra,
        )

    def _register(
        self,
        account: LocalAccount,
        asset_kind: AssetKind,
        *,
        name: str,
        licence: str,
        description: str = "",
        parents: list[int] | None = None,
        split: RevenueSplit | None = None,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        policy = split or RevenueSplit.owner_only()
        lineage = validate_parents(parents or [])  # existence is checked by the estimate
        metadata = asset_metadata(
            kind=asset_kind,
            name=name,
            licence=licence,
            description=description,
            parents=lineage,
            split=policy,
            created_by=account.address,
            extra=extra,
        )
        if not self.token:
            self.sign_in(account)
        cid = self.upload(canonical_json(metadata))
        result = self.transact(
            account,
            "AssetRegistry",
            "register",
            int(asset_kind),
            cid,
            metadata["licence"],
            lineage,
            list(policy.as_tuple()),
        )
        registered = [e for e in result["events"] if e["event"] == "AssetRegistered"]
        return self.asset(int(registered[0]["args"]["asset_id"]))

    def upload_folder(self, folder: Path, progress: Progress | None = None) -> str:
        """Upload every file of a model folder and its manifest; returns the manifest's CID.

        Files above one chunk go in resumable chunks; `progress` is told of every byte sent.
        """
        from cairn.train import MANIFEST_SCHEMA

        files = {}
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            files[path.relative_to(folder).as_posix()] = {
                "cid": self.upload_file(path, progress),
                "size": path.stat().st_size,
            }
        if not files:
            raise InvalidInput(f"{folder} holds no files")
        return self.upload(canonical_json({"schema": MANIFEST_SCHEMA, "files": files}))

    def transfer_asset(self, account: LocalAccount, asset_id: int, to: str) -> dict[str, Any]:
        """Transfer asset `asset_id` from `account` to `to`; the asset, with `transfer_tx`."""
        recipient = _checksum(to)
        result = self.transact(
            account, "AssetRegistry", "safeTransferFrom", account.address, recipient, asset_id
        )
        return {**self.asset(asset_id), "transfer_tx": result["tx_hash"]}

    # -- datasets ------------------------------------------------------------------------

    def create_dataset(
        self,
        account: LocalAccount,
        *,
        name: str,
        licence: str,
        spec: dict[str, Any],
        description: str = "",
        split: RevenueSplit | None = None,
    ) -> dict[str, Any]:
        """Register a dataset from `account` and make the node's operator its curator."""
        from cairn.core.data_policy import parse_spec  # the spec's pydantic models: writes only

        checked = parse_spec(spec).model_dump(mode="json")
        asset = self._register(
            account,
            AssetKind.DATASET,
            name=name,
            licence=licence,
            description=description,
            split=split or DEFAULT_DATASET_SPLIT,
            extra={"dataset": checked},
        )
        operator = self.chain()["operator"]
        if operator.lower() != account.address.lower():
            self.transact(
                account, "AssetRegistry", "set_curator", asset["asset_id"], operator, True
            )
        return self.dataset(int(asset["asset_id"]))

    def dataset(self, dataset_id: int) -> dict[str, Any]:
        """A dataset with counts and versions."""
        result: dict[str, Any] = self.request("GET", f"/datasets/{dataset_id}")
        return result

    def datasets(self) -> list[dict[str, Any]]:
        """Every dataset."""
        result: list[dict[str, Any]] = self.request("GET", "/datasets")
        return result

    def contribute(
        self, account: LocalAccount, dataset_id: int, lines: list[str], *, nonce: int | None = None
    ) -> dict[str, Any]:
        """Sign an upload (one EIP-712 signature) and send it; returns every record's verdict."""
        import secrets

        from cairn.data.signing import contribution_typed_data, records_root, sign_contribution

        info = self.chain()
        nonce = secrets.randbits(128) if nonce is None else nonce
        typed = contribution_typed_data(
            chain_id=int(info["chain_id"]),
            ledger=info["contracts"]["ContributionLedger"]["address"],
            dataset_id=dataset_id,
            root=records_root(lines),
            nonce=nonce,
        )
        body = {
            "contributor": account.address,
            "nonce": str(nonce),
            "signature": sign_contribution(account, typed),
            "records": lines,
        }
        result: dict[str, Any] = self.request(
            "POST", f"/datasets/{dataset_id}/contributions", json=body
        )
        return result

    def next_review(self, dataset_id: int) -> dict[str, Any] | None:
        """The signed-in account's next review task, or None."""
        result: dict[str, Any] | None = self.request("GET", f"/datasets/{dataset_id}/reviews/next")
        return result

    def answer_review(self, task_id: int, answer: str) -> dict[str, Any]:
        """Answer a review task."""
        result: dict[str, Any] = self.request(
            "POST", f"/reviews/{task_id}", json={"answer": answer}
        )
        return result

    def add_gold(self, dataset_id: int, items: list[dict[str, Any]]) -> int:
        """Seed gold questions (dataset owner, signed in)."""
        return int(
            self.request("POST", f"/datasets/{dataset_id}/gold", json={"items": items})["added"]
        )

    def anchor(self, dataset_id: int) -> dict[str, Any]:
        """Anchor the dataset's accepted records now (owner or curator, signed in)."""
        result: dict[str, Any] = self.request("POST", f"/datasets/{dataset_id}/anchor")
        return result

    def proof(self, dataset_id: int, record: str) -> dict[str, Any]:
        """(batch, index, proof) of an anchored record."""
        result: dict[str, Any] = self.request(
            "GET", f"/datasets/{dataset_id}/records/{record}/proof"
        )
        return result

    def versions(self, dataset_id: int) -> list[dict[str, Any]]:
        """The dataset's versions, newest first."""
        result: list[dict[str, Any]] = self.request("GET", f"/datasets/{dataset_id}/versions")
        return result

    def attribution(self, dataset_id: int, version: str | None = None) -> dict[str, Any]:
        """A version's attribution table."""
        params = {"version": version} if version else {}
        result: dict[str, Any] = self.request(
            "GET", f"/datasets/{dataset_id}/attribution", params=params
        )
        return result

    def export(self, dataset_id: int, fmt: str, version: str | None = None) -> bytes:
        """A version's records as JSONL or Parquet bytes."""
        params = {"format": fmt, **({"version": version} if version else {})}
        data: bytes = self.request("GET", f"/datasets/{dataset_id}/export", params=params)
        return data if isinstance(data, bytes) else bytes(data)

    # -- licences ------------------------------------------------------------------------

    def licence_offers(self, asset_id: int) -> dict[str, Any]:
        """An asset's licence offers, and whether it is gated."""
        result: dict[str, Any] = self.request("GET", f"/assets/{asset_id}/licences")
        return result

    def licence_offer(self, offer_id: int) -> dict[str, Any]:
        """One licence offer."""
        result: dict[str, Any] = self.request("GET", f"/licences/{offer_id}")
        return result

    def held_licences(self, account: str) -> list[dict[str, Any]]:
        """The licences an account holds."""
        result: list[dict[str, Any]] = self.request("GET", f"/accounts/{account}/licences")
        return result

    def offer_licence(
        self,
        account: LocalAccount,
        asset_id: int,
        *,
        price: int,
        terms: str,
        max_copies: int = 0,
        duration: int = 0,
        transferable: bool = False,
    ) -> dict[str, Any]:
        """Offer licences to an asset `account` owns (signed here); returns the offer."""
        from cairn.core.licensing import Terms

        if price < 0 or max_copies < 0 or duration < 0:
            raise InvalidInput("price, copies and duration cannot be negative")
        result = self.transact(
            account,
            "LicenseToken",
            "offer",
            asset_id,
            price,
            int(Terms.parse(terms)),
            max_copies,
            duration,
            transferable,
        )
        made = [e for e in result["events"] if e["event"] == "OfferCreated"]
        return self.licence_offer(int(made[0]["args"]["offer_id"]))

    def buy_licence(
        self, account: LocalAccount, offer_id: int, *, copies: int = 1, holder: str | None = None
    ) -> dict[str, Any]:
        """Approve the price and buy licences from `account` (signed here)."""
        if copies < 1:
            raise InvalidInput(f"copies must be at least 1; got {copies}")
        offer = self.licence_offer(offer_id)
        if not offer["buyable"]:
            state = "withdrawn from sale" if not offer["active"] else "sold out"
            raise InvalidInput(f"licence offer {offer_id} is {state}")
        cost = int(offer["price"]) * copies
        if cost:
            spender = self.chain()["contracts"]["LicenseToken"]["address"]
            self.transact(account, "CairnToken", "approve", spender, cost)
        to = _checksum(holder or account.address)
        result = self.transact(account, "LicenseToken", "buy", offer_id, to, copies)
        bought = [e for e in result["events"] if e["event"] == "LicenceBought"]
        args = bought[0]["args"]
        return {
            "offer_id": offer_id,
            "asset_id": int(args["asset_id"]),
            "holder": to,
            "copies": copies,
            "paid": str(args["paid"]),
            "expires": int(args["expires"]),
            "tx_hash": result.get("tx_hash"),
        }

    def set_licence_active(
        self, account: LocalAccount, offer_id: int, active: bool
    ) -> dict[str, Any]:
        """Withdraw an offer from sale or offer it again (signed here)."""
        self.transact(account, "LicenseToken", "set_offer_active", offer_id, active)
        return self.licence_offer(offer_id)

    def transfer_licence(
        self, account: LocalAccount, offer_id: int, to: str, copies: int = 1
    ) -> dict[str, Any]:
        """Pass a transferable licence on (signed here)."""
        result = self.transact(
            account,
            "LicenseToken",
            "safeTransferFrom",
            account.address,
            _checksum(to),
            offer_id,
            copies,
            b"",
        )
        return {
            "offer_id": offer_id,
            "to": _checksum(to),
            "copies": copies,
            "tx_hash": result.get("tx_hash"),
        }

    def download_model(self, asset_id: int, dest: Path, *, merged: bool = False) -> int:
        """Stream a model's folder as a tar to `dest` (a LoRA model's adapters merged into its
        base when `merged`); returns its size in bytes."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        url = f"/api/v1/models/{asset_id}/download"
        params = {"merged": "true"} if merged else {}
        with self.http.stream("GET", url, headers=headers, params=params) as reply:
            if reply.status_code >= 400:
                reply.read()
                raise problem(reply)
            size = 0
            with dest.open("wb") as fh:
                for chunk in reply.iter_bytes(1 << 20):
                    fh.write(chunk)
                    size += len(chunk)
        return size

    # -- bounties ------------------------------------------------------------------------

    def open_bounty(
        self,
        account: LocalAccount,
        dataset_id: int,
        *,
        budget: int,
        per_record: int,
        per_review: int,
    ) -> dict[str, Any]:
        """Approve and escrow a bounty's budget from `account` (signed here); returns it."""
        if budget <= 0 or per_record < 0 or per_review < 0 or not (per_record or per_review):
            raise InvalidInput("a bounty needs a positive budget and a positive rate")
        spender = self.chain()["contracts"]["DataBounty"]["address"]
        self.transact(account, "CairnToken", "approve", spender, budget)
        result = self.transact(
            account, "DataBounty", "open", dataset_id, budget, per_record, per_review
        )
        opened = [e for e in result["events"] if e["event"] == "BountyOpened"]
        bounty: dict[str, Any] = self.request("GET", f"/bounties/{opened[0]['args']['bounty_id']}")
        return bounty

    def top_up_bounty(self, account: LocalAccount, bounty_id: int, amount: int) -> dict[str, Any]:
        """Approve and add `amount` to a bounty's budget (signed here)."""
        if amount <= 0:
            raise InvalidInput("a top-up must be positive")
        spender = self.chain()["contracts"]["DataBounty"]["address"]
        self.transact(account, "CairnToken", "approve", spender, amount)
        self.transact(account, "DataBounty", "top_up", bounty_id, amount)
        result: dict[str, Any] = self.request("GET", f"/bounties/{bounty_id}")
        return result

    def close_bounty(self, account: LocalAccount, bounty_id: int) -> dict[str, Any]:
        """Close a bounty (signed here); the rest goes back to its funder."""
        result = self.transact(account, "DataBounty", "close", bounty_id)
        closed = [e for e in result["events"] if e["event"] == "BountyClosed"]
        bounty: dict[str, Any] = self.request("GET", f"/bounties/{bounty_id}")
        return {**bounty, "refunded": str(closed[0]["args"]["refunded"])}


def _checksum(address: str) -> str:
    """The EIP-55 form of `address` (InvalidInput if it is not one); eth_utils loads on first use."""
    from cairn.core.evm import checksum

    return checksum(address)
