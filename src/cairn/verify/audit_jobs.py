"""`cairn audit` for training jobs: every `JobSettled` on JobEscrow re-derived from the work
reports it names.

JobEscrow pays each provider `budget * work / total_work` by a Merkle root of (provider, work)
leaves that the coordinator settles with the CID of the job's work shares document. The
auditor reads that document and checks, without trusting the node:

- each report is signed by the provider it names, for this job, and hashes to its leaf;
- the reports' tree is the one anchored on ContributionLedger with that document's CID;
- the work units per provider are the sum of their reports' samples (`work_shares`), their
  total the `total_work` settled, and their tree the root JobEscrow pays by;
- no provider slashed in the job (its `Slashed` events) is paid for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cairn.chain.escrow import WORK_LEAF
from cairn.compute.reports import report_from_json, report_leaf, verify_report, work_shares
from cairn.core.errors import CairnError
from cairn.core.evm import checksum
from cairn.core.merkle import StandardMerkleTree
from cairn.verify.audit_chain import AuditChain, BlobReader, hex_of
from cairn.verify.findings import Audited, Finding, Findings

SHOWN = 3


@dataclass(frozen=True)
class JobAudit(Audited):
    """What the auditor found for one settled training job."""

    job_id: str
    total_work: int
    root: str
    document: str
    coordinator: str
    findings: tuple[Finding, ...]


def audit_jobs(chain: AuditChain, blobs: BlobReader) -> list[JobAudit]:
    """Every job settled on JobEscrow, in chain order."""
    slashed: dict[str, set[str]] = {}
    for log in chain.logs("JobEscrow", "Slashed"):
        job = hex_of(log["args"]["job_id"])
        slashed.setdefault(job, set()).add(checksum(log["args"]["provider"]))
    out = []
    for log in chain.logs("JobEscrow", "JobSettled"):
        args = log["args"]
        job_id, root = hex_of(args["job_id"]), hex_of(args["root"])
        found = Findings()
        try:
            _audit(chain, blobs, log, job_id, root, slashed.get(job_id, set()), found)
        except (CairnError, KeyError, TypeError, ValueError) as exc:
            message = exc.message if isinstance(exc, CairnError) else repr(exc)
            found.check("document", False, f"malformed or unreadable: {message}")
        out.append(
            JobAudit(
                job_id=job_id,
                total_work=int(args["total_work"]),
                root=root,
                document=str(args["report_cid"]),
                coordinator=checksum(args["coordinator"]),
                findings=tuple(found.items),
            )
        )
    return out


def _audit(
    chain: AuditChain,
    blobs: BlobReader,
    log: Any,
    job_id: str,
    root: str,
    slashed: set[str],
    f: Findings,
) -> None:
    args = log["args"]
    cid = str(args["report_cid"])
    doc = blobs(cid)
    f.check(
        "document",
        str(doc.get("job_id", "")).lower() == job_id,
        f"work shares of {doc.get('job_id')}",
    )
    bad, reports = [], []
    for n, entry in enumerate(doc["reports"]):
        report = report_from_json(entry)
        try:
            verify_report(report, entry["signature"])
        except CairnError:
            bad.append(f"report {n}: not signed by {report.account}")
            continue
        if report_leaf(report, entry["signature"]) != entry["leaf"]:
            bad.append(f"report {n}: the leaf is not its hash")
        elif str(report.job_id).lower() != job_id:
            bad.append(f"report {n} is for job {report.job_id}")
        else:
            reports.append(report)
    f.check("reports", not bad, "; ".join(bad[:SHOWN]) or f"{len(reports)} signed reports")
    leaves = StandardMerkleTree.of([[e["leaf"]] for e in doc["reports"]], ["bytes32"]).root
    anchored = [
        b
        for b in chain.logs("ContributionLedger", "Anchored")
        if str(b["args"]["batch_cid"]) == cid and int(b["blockNumber"]) <= int(log["blockNumber"])
    ]
    f.check(
        "anchored",
        any(hex_of(b["args"]["root"]) == leaves for b in anchored),
        f"the reports' root {leaves} anchored with the document",
    )
    shares = {checksum(a): w for a, w in work_shares(reports).items()}
    listed = {checksum(e["account"]): int(e["work"]) for e in doc["shares"]}
    f.check(
        "shares",
        shares == listed,
        "each provider's work is its reports' samples"
        if shares == listed
        else f"re-derived {sorted(shares.items())[:SHOWN]}, listed {sorted(listed.items())[:SHOWN]}",
    )
    total = sum(shares.values())
    f.check("total", total == int(args["total_work"]), f"{total} work units")
    tree = StandardMerkleTree.of([[a, w] for a, w in shares.items()], list(WORK_LEAF))
    f.check("root", tree.root == root, f"the re-derived shares hash to {tree.root}")
    paid_slashed = sorted(slashed & set(shares))
    f.check(
        "slashed",
        not paid_slashed,
        f"{len(slashed)} slashed, none paid"
        if not paid_slashed
        else f"slashed yet paid: {paid_slashed}",
    )
