"""What a failed replay costs a provider: its share of the job, and its stake.

The coordinator's replay (`cairn.compute.verification`) leaves a verdict per drawn round in the
job and, for a round whose returned weights were not the replayed ones, the evidence in the job
folder (`verify/evidence-*.json`: the provider's own signed report and the replay's outcome).
When the job finishes, such a provider is `withheld`: its reports are left out of the work the
job pays (and of the anchored reports), and `slash` takes its stake in JobEscrow for the job's
builder, naming the evidence, stored publicly by CID, so anyone can replay the round and check.

A round the worker did not reveal the state of (offline, crashed) is not verified, but it is no
evidence of fraud: it is neither withheld nor slashed. How much is slashed: the stake the job
asked of its providers (`min_stake`), or all of it where the job asked none.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes

from cairn.assets.content import Scope
from cairn.assets.service import AssetService
from cairn.chain.contracts import Chain
from cairn.compute.job import Job
from cairn.compute.jobdir import JobDir
from cairn.core.errors import NotFound
from cairn.core.evm import checksum
from cairn.store.base import BlobStore

LOG_CHUNK = 5_000  # blocks per eth_getLogs call


def withheld(job: Job) -> set[str]:
    """The accounts (lowercase) whose replay in this job found other weights than they sent."""
    if job.verification is None:
        return set()
    return {
        r.account.lower() for r in job.verification.replays if not r.ok and r.relative is not None
    }


def evidence_of(folder: JobDir, account: str) -> dict[str, Any]:
    """The evidence the coordinator wrote of `account`'s failed replay."""
    for path in sorted((folder.path / "verify").glob("evidence-*.json")):
        document: dict[str, Any] = json.loads(path.read_text())
        if str(document.get("account", "")).lower() == account.lower():
            return document
    raise NotFound(f"no evidence of a failed replay of {account} in the job's folder")


@dataclass(frozen=True)
class Slasher:
    """Slashes the providers a job's replay caught, once each, naming the stored evidence."""

    chain: Chain
    store: BlobStore
    assets: AssetService
    operator: LocalAccount

    def slash(self, job: Job, folder: JobDir) -> dict[str, dict[str, str]]:
        """Slash every withheld provider not slashed yet; returns what the job records of each
        (`amount` taken, `evidence_cid`, `tx_hash`)."""
        recorded = {
            a: entry.model_dump()
            for a, entry in (job.verification.slashed if job.verification else {}).items()
        }
        escrow = self.chain.escrow
        for account in sorted(withheld(job)):
            provider = checksum(account)
            if provider in recorded or not job.escrowed:
                continue  # slashed before; or never enlisted (no escrow: no stake at risk)
            cid = self.store.put_json(evidence_of(folder, provider))
            self.assets.refs.add(cid, Scope.PUBLIC)  # anyone may replay the round and check
            entry = {"amount": "0", "evidence_cid": cid, "tx_hash": ""}
            found = self._slashed_before(job.job_id, provider)
            if found is not None:  # sent before a crash: read it back
                entry.update(amount=str(found[0]), tx_hash=found[1])
            else:
                stake = escrow.provider(provider).stake
                amount = min(folder.spec().min_stake or stake, stake)
                if amount > 0:
                    taken, receipt = escrow.slash(self.operator, provider, amount, job.job_id, cid)
                    tx = HexBytes(receipt["transactionHash"]).to_0x_hex()
                    entry.update(amount=str(taken), tx_hash=tx)
            recorded[provider] = entry
        return recorded

    def _slashed_before(self, job_id: str, provider: str) -> tuple[int, str] | None:
        """(amount, tx) of a `Slashed` event of this provider in this job, if one was sent."""
        escrow = self.chain.escrow
        event = escrow.contract.events.Slashed
        head = self.chain.client.block_number()
        for lo in range(self.chain.deployment.block, head + 1, LOG_CHUNK):
            filters = {"provider": provider, "job_id": HexBytes(job_id)}
            for entry in self.chain.client.logs(event, lo, min(lo + LOG_CHUNK - 1, head), filters):
                return int(entry["args"]["amount"]), HexBytes(entry["transactionHash"]).to_0x_hex()
        return None
