"""A worker's copy of what a job needs from the node: blobs fetched by CID, verified, cached.

Workers hold no index and no store of their own: they fetch a job's training records and model
files from the node's blob endpoint with the job's token (what a job needs is readable by its
workers only, see cairn.assets.content), check every byte against its CID (a node cannot
hand a worker other bytes than the CID names), and keep them in a cache folder, so a worker pays
for each model and dataset once however many rounds it trains.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx

from cairn.compute.blobs import JOB_TOKEN_HEADER
from cairn.core.cid import CID, CIDHasher, cid_of
from cairn.core.errors import InvalidInput, NotFound, Unavailable
from cairn.train import MANIFEST_SCHEMA

TIMEOUT = httpx.Timeout(30.0, read=300.0)


class BlobCache:
    """Blobs of one node, fetched on first use into `folder/<cid>`."""

    def __init__(
        self, node_url: str, folder: Path, token: str = "", source: Path | None = None
    ) -> None:
        self.node_url = node_url.rstrip("/")
        self.headers = {JOB_TOKEN_HEADER: token} if token else {}
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        # a node's blob folder on this machine (`cairn worker start --blob-source`): a blob
        # found there is linked, once verified, instead of fetched and copied
        self.source = source

    def path(self, cid: str) -> Path:
        """The local file holding blob `cid`, fetched and verified if it is not here yet."""
        parsed = str(CID.parse(cid))
        target = self.folder / parsed
        if target.exists():
            return target
        if self.source is not None and self._link_from_source(parsed, target):
            return target
        url = f"{self.node_url}/api/v1/blobs/{parsed}"
        try:
            response = httpx.get(url, headers=self.headers, timeout=TIMEOUT)
        except httpx.HTTPError as exc:
            raise Unavailable(f"cannot fetch {parsed} from {self.node_url}: {exc}") from None
        if response.status_code == 404:
            raise NotFound(f"the node at {self.node_url} has no blob {parsed}")
        if response.status_code != 200:
            raise Unavailable(f"fetching {parsed}: HTTP {response.status_code}")
        if cid_of(response.content) != parsed:
            raise InvalidInput(f"the node sent bytes that are not {parsed}")
        tmp = target.with_name(f".{parsed}.{os.getpid()}.tmp")
        tmp.write_bytes(response.content)
        os.replace(tmp, target)
        return target

    def _link_from_source(self, cid: str, target: Path) -> bool:
        """Link blob `cid` from the source folder (a local store's layout) if it is there and
        its bytes are what `cid` names; False, touching nothing, otherwise."""
        assert self.source is not None
        found = self.source / cid[-3:-1] / cid
        tmp = target.with_name(f".{cid}.{os.getpid()}.link")
        tmp.unlink(missing_ok=True)
        try:
            os.link(found, tmp)
        except OSError:  # not there, another filesystem, or not readable
            return False
        try:
            hasher = CIDHasher()
            with tmp.open("rb") as fh:
                while chunk := fh.read(1 << 20):
                    hasher.update(chunk)
            if str(hasher.cid()) != cid:
                return False  # a damaged or foreign file: fetch from the node instead
            os.replace(tmp, target)
            return True
        finally:
            tmp.unlink(missing_ok=True)

    def read(self, cid: str) -> bytes:
        """The bytes of blob `cid`."""
        return self.path(cid).read_bytes()

    def records(self, cid: str) -> list[dict[str, Any]]:
        """The records of a JSONL blob."""
        text = self.read(cid).decode("utf-8")
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def model_folder(self, manifest_cid: str) -> Path:
        """A stored model's Hugging Face folder, assembled from its manifest once."""
        folder = self.folder / "models" / str(CID.parse(manifest_cid))
        if (folder / ".complete").exists():
            return folder
        manifest = json.loads(self.read(manifest_cid))
        if not isinstance(manifest, dict) or manifest.get("schema") != MANIFEST_SCHEMA:
            raise InvalidInput(f"{manifest_cid} is not a Cairn model manifest")
        for name, entry in manifest["files"].items():
            if ".." in Path(name).parts or Path(name).is_absolute():
                raise InvalidInput(f"manifest {manifest_cid} names an unsafe path {name!r}")
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                os.link(self.path(entry["cid"]), target)
        (folder / ".complete").touch()
        return folder
