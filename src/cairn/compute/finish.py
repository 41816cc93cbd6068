"""Finishing a job: the model becomes an asset with its lineage, and providers are paid.

In order, once the ServerApp has written the trained weights:

1. the providers' work shares (samples trained, summed over accepted reports) and every signed
   report are stored as one JSON document by CID;
2. a model card (lineage, metrics, licence, recipe) completes the Hugging Face folder, which is
   stored by CID;
3. the node's operator registers the model asset (parents: the base model, the teacher if any,
   the datasets; metadata: the weights, the dataset versions with their attribution tables, the
   work shares), anchors the reports' Merkle root under it on ContributionLedger, and gives the
   asset to the job's builder;
4. with a budget in JobEscrow: the job is settled with the Merkle root of (provider, work)
   leaves, each provider's payout is claimed for it (anyone may send a claim; the tokens go to
   the provider), and each provider's stake is released.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from cairn.assets.content import Scope
from cairn.compute.jobdir import JobDir
from cairn.compute.reports import report_from_json, work_shares
from cairn.core.errors import InvalidInput
from cairn.core.merkle import StandardMerkleTree
from cairn.train.catalog import DEFAULT_MODEL_SPLIT
from cairn.train.models import FAMILY_OF
from cairn.train.weights import model_card, store_folder

if TYPE_CHECKING:
    from cairn.compute.jobs import JobService

SHARES_SCHEMA = "cairn.work-shares/v1"


def finish_job(service: JobService, job_id: str, folder: JobDir) -> dict[str, Any]:
    """Register, anchor and pay for a job whose model is written; returns the job's new fields."""
    job = service.get(job_id)
    rows = service.reports(job_id)
    shares = work_shares(report_from_json(r.report) for r in rows)
    total_work = sum(shares.values())
    shares_cid = service.store.put_json(
        {
            "schema": SHARES_SCHEMA,
            "job_id": job_id,
            "total_work": str(total_work),
            "shares": [{"account": a, "work": str(w)} for a, w in shares.items()],
            "reports": [{**r.report, "signature": r.signature, "leaf": r.leaf} for r in rows],
        }
    )
    service.assets.refs.add(shares_cid, Scope.PUBLIC)  # what each provider is paid for

    base = service.assets.get(int(job["base_asset"]))
    recipe = job["recipe"]
    teacher_ref = recipe["hyperparameters"].get("teacher_model")
    teacher = service.catalog.resolve(teacher_ref) if teacher_ref is not None else None
    lineage = {
        "base_model": {"asset": base.asset_id, "name": base.name},
        "teacher_model": {"asset": teacher.asset_id, "name": teacher.name} if teacher else None,
        "datasets": job["datasets"],
        "job_id": job_id,
        "work_shares_cid": shares_cid,
        "providers": {a: str(w) for a, w in shares.items()},
    }
    recipe_text = service.store.get(job["recipe_cid"]).decode()
    card = model_card(
        name=job["name"],
        licence=base.licence,
        base_model=base.name,
        datasets=job["datasets"],
        method=job["method"],
        metrics=job["metrics"],
        recipe_yaml=recipe_text,
        lineage=lineage,
    )
    model_dir: Path = folder.model
    if not (model_dir / "config.json").exists():
        raise InvalidInput(f"job {job_id} finished without writing its model")
    (model_dir / "README.md").write_text(card, encoding="utf-8")
    model_cid = store_folder(service.store, model_dir)
    # The operator registers the model, so it claims the weights for it: they are its own.
    service.assets.refs.add_folder(
        model_cid, Scope.ACCOUNT, service.operator.address, account=service.operator.address
    )

    parents = [base.asset_id]
    if teacher is not None:
        parents.append(teacher.asset_id)
    parents += [int(d["dataset"]) for d in job["datasets"]]
    operator = service.operator
    asset = service.assets.register(
        operator,
        kind="model",
        name=job["name"],
        licence=base.licence,
        description=recipe.get("description") or f"{job['method']} of {base.name} on Cairn",
        parents=sorted(set(parents)),
        split=DEFAULT_MODEL_SPLIT,
        extra={
            "model": {"weights": model_cid, "family": FAMILY_OF[job["method"]]},
            "training": {
                "job_id": job_id,
                "method": job["method"],
                "recipe_cid": job["recipe_cid"],
                "metrics": job["metrics"],
                "lineage": lineage,
            },
        },
    )

    reports_root = None
    if rows:
        tree = StandardMerkleTree.of([[r.leaf] for r in rows], ["bytes32"])
        reports_root = tree.root
        service.chain.ledger.anchor(operator, asset.asset_id, tree.root, len(rows), shares_cid)

    payouts: dict[str, str] = {}
    if job["escrowed"] and total_work > 0:
        work_tree = StandardMerkleTree.of(
            [[a, w] for a, w in shares.items()], ["address", "uint256"]
        )
        escrow = service.chain.escrow
        escrow.settle_job(operator, job_id, work_tree.root, total_work, shares_cid)
        for account, work in shares.items():
            proof = work_tree.get_proof([account, work])
            amount, _ = escrow.claim_payout(operator, job_id, account, work, proof)
            payouts[account] = str(amount)
    if job["escrowed"]:
        for account, info in job["providers"].items():
            if info.get("enlisted"):
                service.chain.escrow.release(operator, job_id, account)

    if job["builder"].lower() != operator.address.lower():
        service.assets.transfer(operator, asset.asset_id, job["builder"])
    return {
        "model_asset": asset.asset_id,
        "model_cid": model_cid,
        "shares_cid": shares_cid,
        "reports_root": reports_root,
        "payouts": payouts,
    }
