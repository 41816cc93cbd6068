"""Finishing a job: the model becomes an asset with its lineage, and providers are paid.

Once the ServerApp has written the trained weights the job is `finishing`, and these steps run
in order:

1. shares: the providers' work shares (samples trained, summed over accepted reports) and every
   signed report are stored as one JSON document by CID (`shares_cid`);
2. model: a model card (lineage, metrics, licence, recipe) completes the Hugging Face folder,
   which is stored by CID (`model_cid`);
3. register: the node's operator registers the model asset (parents: the base model, the teacher
   if any, the datasets; metadata: the weights, the dataset versions with their attribution
   tables, the work shares) (`model_asset`);
4. anchor: the reports' Merkle root is anchored under the asset on ledger (`reports_root`);
5. slash: a provider whose replay failed (`cairn.compute.slashing`) loses its stake, the
   evidence stored by CID; its reports were left out of the work from step 1 on;
6. settle: with a budget in JobEscrow, the job is settled with the root of (provider, work);
7. claim: each provider's payout is claimed for it (the tokens go to the provider) (`payouts`);
8. release: each provider's stake is released; 9. give: the asset goes to the job's builder.

A crash may stop finishing anywhere, so each step first asks whether it is done - the chain where
the chain can tell (anchored, settled, claimed, released, owned), else the field it records in the
job's row - and records its result as soon as it has one. A registration whose id was lost is
found again by its metadata's `training.job_id`. Started again, finishing takes only the steps
not done, and marks the job `finished` after the last. A job whose model was never written, or
whose finishing meets another error no retry can undo (`PERMANENT`), fails instead, its error
shown, and its budget goes back (`refund`, as for a failed or cancelled job); a transient error
(the chain out of reach) is shown and the next tick tries again.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from eth_account.signers.local import LocalAccount

from cairn.assets.content import Scope
from cairn.assets.service import Asset, AssetService
from cairn.chain.contracts import Chain
from cairn.chain.escrow import WORK_LEAF, Enlistment, JobState
from cairn.compute.job import Job
from cairn.compute.jobdir import JobDir
from cairn.compute.models import WorkReportRow
from cairn.compute.reports import listed_report, report_from_json, work_shares
from cairn.compute.slashing import Slasher, withheld
from cairn.core.errors import CairnError, Conflict, Forbidden, InvalidInput, NotFound
from cairn.core.merkle import StandardMerkleTree
from cairn.core.recipe import FAMILY_OF
from cairn.identity.signers import Signers
from cairn.store.base import BlobStore
from cairn.train.adapter_folder import AdapterBase, is_adapter_folder
from cairn.train.catalog import DEFAULT_MODEL_SPLIT, ModelCatalog
from cairn.train.weights import model_card, model_entry, store_folder

SHARES_SCHEMA = "cairn.work-shares/v1"
# Errors no later try of the same step can undo: they fail the job instead of leaving it
# finishing. Any other error (ChainError, ChainUnavailable, Unavailable, ...) is retried.
PERMANENT: tuple[type[CairnError], ...] = (InvalidInput, NotFound, Forbidden, Conflict)


class ModelNotWritten(NotFound):
    """A job ended without writing its model: there is nothing to register, so the job fails."""


class JobBook(Protocol):
    """What finishing reads and records of a job (`cairn.compute.jobs.JobService` is one)."""

    def get(self, job_id: str) -> Job:
        """The job as the API shows it."""
        ...

    def reports(self, job_id: str) -> list[WorkReportRow]:
        """The job's accepted work reports, by round then account."""
        ...

    def update(self, job_id: str, **fields: Any) -> None:
        """Set fields of the job's row."""
        ...


@dataclass(frozen=True)
class Work:
    """A job's accepted reports, and the work units (samples) they give each provider."""

    rows: list[WorkReportRow]
    shares: dict[str, int]

    @classmethod
    def of(cls, rows: list[WorkReportRow]) -> Work:
        """The work of these reports."""
        return cls(rows, work_shares(report_from_json(r.report) for r in rows))

    @property
    def total(self) -> int:
        """All providers' work units."""
        return sum(self.shares.values())

    def reports_tree(self) -> StandardMerkleTree:
        """The tree of the reports' leaves, anchored on ContributionLedger."""
        return StandardMerkleTree.of([[r.leaf] for r in self.rows], ["bytes32"])

    def work_tree(self) -> StandardMerkleTree:
        """The tree of (provider, work) leaves that JobEscrow pays by."""
        return StandardMerkleTree.of([[a, w] for a, w in self.shares.items()], list(WORK_LEAF))


@dataclass(frozen=True)
class Finisher:
    """Ends jobs: takes a finishing job through the steps it has not done yet, or gives an
    unfinished job's budget back."""

    jobs: JobBook
    store: BlobStore
    chain: Chain
    assets: AssetService
    catalog: ModelCatalog
    operator: LocalAccount
    signers: Signers  # the builder's key, where this node holds it, cancels an escrowed job

    def finish(self, job_id: str, folder: JobDir) -> None:
        """Take every step not done yet, recording each, then mark the job finished.

        A permanent error (`PERMANENT`: a model never written, a refused input) fails the job,
        its budget given back as far as the chain still holds it; any other error (the chain or
        a service out of reach) leaves it finishing, its error shown, for the next try.
        """
        job = self.jobs.get(job_id)
        builder = self.signers.find(job.builder)
        try:
            caught = withheld(job)  # a failed replay: the provider's work is not paid
            work = Work.of(
                [r for r in self.jobs.reports(job_id) if r.account.lower() not in caught]
            )
            for step in (
                self.store_shares,
                self.store_model,
                self.register,
                self.anchor,
                self.slash,
                self.settle,
                self.claim,
                self.release,
                self.give,
            ):
                step(job_id, folder, work)
            # a job that settled no work (no accepted report) gives its budget back as a failed
            # job does; for a settled one this changes nothing
            self.refund(job_id, builder)
        except PERMANENT as exc:
            self.refund(job_id, builder)
            error = f"finishing: {exc.message}"
            self.jobs.update(job_id, status="failed", error=error, finished_at=time.time())
            raise
        except CairnError as exc:
            self.jobs.update(job_id, error=f"finishing: {exc.message}")
            raise
        self.jobs.update(job_id, status="finished", error=None, finished_at=time.time())

    def refund(self, job_id: str, signer: LocalAccount | None) -> int:
        """Give an unfinished job's budget back and free its providers' stakes; returns the
        refund.

        Cancels the job in JobEscrow with the builder's key when given, and releases every
        provider it enlisted once the job is no longer open. Taken again, it sends only what the
        chain shows undone.
        """
        job = self.jobs.get(job_id)
        if not job.escrowed:
            return 0
        escrow = self.chain.escrow
        if signer is not None and escrow.job_state(job_id) == JobState.OPEN:
            escrow.cancel_job(signer, job_id)
        state = escrow.job_state(job_id)
        payouts = dict(job.payouts)
        if state == JobState.CANCELLED and "refund" not in payouts:
            # cancelling gives the whole budget back: read from the chain, whoever cancelled
            payouts["refund"] = str(escrow.job(job_id).budget)
            self.jobs.update(job_id, payouts=payouts)
        if state != JobState.OPEN:
            self._release_stakes(job)
        return int(payouts.get("refund", 0))

    def store_shares(self, job_id: str, folder: JobDir, work: Work) -> None:
        """Store the work shares and every signed report (step 1)."""
        if self.jobs.get(job_id).shares_cid is not None:
            return
        shares_cid = self.store.put_json(
            {
                "schema": SHARES_SCHEMA,
                "job_id": job_id,
                "total_work": str(work.total),
                "shares": [{"account": a, "work": str(w)} for a, w in work.shares.items()],
                "reports": [listed_report(r.report, r.signature, r.leaf) for r in work.rows],
            }
        )
        self.assets.refs.add(shares_cid, Scope.PUBLIC)  # what each provider is paid for
        self.jobs.update(job_id, shares_cid=shares_cid)

    def store_model(self, job_id: str, folder: JobDir, work: Work) -> None:
        """Write the model card into the trained folder and store the folder (step 2)."""
        job = self.jobs.get(job_id)
        if job.model_cid is not None:
            return
        model_dir: Path = folder.model
        adapter = AdapterBase.read(model_dir) if is_adapter_folder(model_dir) else None
        if adapter is None and not (model_dir / "config.json").exists():
            raise ModelNotWritten(f"job {job_id} finished without writing its model")
        base = self.assets.get(job.base_asset)
        card = model_card(
            name=job.name,
            licence=base.licence,
            base_model=base.name,
            datasets=[d.model_dump() for d in job.datasets],
            method=job.method,
            metrics=job.metrics,
            recipe_yaml=self.store.get(job.recipe_cid).decode(),
            lineage=self._lineage(job, work),
            adapter_of=(adapter.asset_id, adapter.weights) if adapter else None,
        )
        readme = model_dir / "README.md"  # replaced, not written through: a try before this
        tmp = readme.with_name(".README.md.tmp")  # one may have linked it into the store
        tmp.write_text(card, encoding="utf-8")
        os.replace(tmp, readme)
        model_cid = store_folder(self.store, model_dir, link=True)  # written once, by the job
        # The operator registers the model, so it claims the weights for it: they are its own.
        operator = self.operator.address
        self.assets.refs.add_folder(model_cid, Scope.ACCOUNT, operator, account=operator)
        self.jobs.update(job_id, model_cid=model_cid)

    def register(self, job_id: str, folder: JobDir, work: Work) -> None:
        """Register the model asset for the operator (step 3), unless an earlier try did."""
        job = self.jobs.get(job_id)
        if job.model_asset is not None:
            return
        asset_id = self._registered(job_id)
        if asset_id is None:
            if job.model_cid is None:  # step 2 records it before this step runs
                raise ModelNotWritten(f"job {job_id} has no stored model to register")
            base = self.assets.get(job.base_asset)
            teacher = self._teacher(job)
            parents = [base.asset_id, *([teacher.asset_id] if teacher else [])]
            parents += [d.dataset for d in job.datasets]
            description = job.recipe.get("description") or f"{job.method} of {base.name} on Cairn"
            asset_id = self.assets.register(
                self.operator,
                kind="model",
                name=job.name,
                licence=base.licence,
                description=description,
                parents=sorted(set(parents)),
                split=DEFAULT_MODEL_SPLIT,
                extra={
                    "model": model_entry(self.store, job.model_cid, FAMILY_OF[job.method]),
                    "training": {
                        "job_id": job_id,
                        "method": job.method,
                        "recipe_cid": job.recipe_cid,
                        "metrics": job.metrics,
                        "lineage": self._lineage(job, work),
                    },
                },
            ).asset_id
        self.jobs.update(job_id, model_asset=asset_id)

    def anchor(self, job_id: str, folder: JobDir, work: Work) -> None:
        """Anchor the reports' root under the model on ContributionLedger (step 4)."""
        if not work.rows:
            return
        job = self.jobs.get(job_id)
        root = work.reports_tree().root
        asset_id = _made(job)
        ledger = self.chain.ledger
        if not ledger.is_anchored(asset_id, root):
            ledger.anchor(self.operator, asset_id, root, len(work.rows), _shares(job))
        if job.reports_root != root:
            self.jobs.update(job_id, reports_root=root)

    def slash(self, job_id: str, folder: JobDir, work: Work) -> None:
        """Slash the stake of each provider the replay caught, naming the evidence (step 5)."""
        job = self.jobs.get(job_id)
        if not withheld(job):
            return
        slashed = Slasher(self.chain, self.store, self.assets, self.operator).slash(job, folder)
        assert job.verification is not None  # withheld: a verification found them
        verification = job.verification.model_dump(mode="json")
        if slashed != verification["slashed"]:
            self.jobs.update(job_id, verification=verification | {"slashed": slashed})

    def settle(self, job_id: str, folder: JobDir, work: Work) -> None:
        """Settle the job in JobEscrow by the work tree's root (step 6)."""
        job = self.jobs.get(job_id)
        if not job.escrowed or work.total == 0:
            return  # nothing to pay by: `finish` gives the budget back
        escrow = self.chain.escrow
        if escrow.job_state(job_id) == JobState.OPEN:
            root = work.work_tree().root
            escrow.settle_job(self.operator, job_id, root, work.total, _shares(job))

    def claim(self, job_id: str, folder: JobDir, work: Work) -> None:
        """Claim each provider's payout for it (step 7); a claimed one is only recorded."""
        job = self.jobs.get(job_id)
        escrow = self.chain.escrow
        if not job.escrowed or escrow.job_state(job_id) != JobState.SETTLED:
            return
        tree = work.work_tree()
        payouts = dict(job.payouts)
        for account, units in work.shares.items():
            amount = escrow.payout(job_id, units)
            if amount == 0:  # rounds down to nothing: JobEscrow refuses such a claim
                continue
            if not escrow.is_claimed(job_id, account):
                proof = tree.get_proof([account, units])
                amount, _ = escrow.claim_payout(self.operator, job_id, account, units, proof)
            payouts[account] = str(amount)
        if payouts != job.payouts:
            self.jobs.update(job_id, payouts=payouts)

    def release(self, job_id: str, folder: JobDir, work: Work) -> None:
        """Release each enlisted provider's stake (step 8), once the job is settled."""
        job = self.jobs.get(job_id)
        if job.escrowed and self.chain.escrow.job_state(job_id) != JobState.OPEN:
            self._release_stakes(job)

    def give(self, job_id: str, folder: JobDir, work: Work) -> None:
        """Give the model asset to the job's builder (step 9)."""
        job = self.jobs.get(job_id)
        builder = job.builder.lower()
        asset_id = _made(job)
        if builder == self.operator.address.lower():
            return
        if self.chain.registry.owner_of(asset_id).lower() != builder:
            self.assets.transfer(self.operator, asset_id, job.builder)

    def _release_stakes(self, job: Job) -> None:
        """Release every enlisted provider the chain still shows locked, and mark it released.

        Only for a job that is no longer open (settled, cancelled or closed) in JobEscrow.
        """
        escrow = self.chain.escrow
        providers = dict(job.providers)
        for account, joined in job.providers.items():
            if not joined.enlisted:
                continue
            if escrow.enlistment(job.job_id, account) == Enlistment.ENLISTED:
                escrow.release(self.operator, job.job_id, account)
            providers[account] = joined.model_copy(update={"released": True})
        if providers != job.providers:
            rows = {a: p.model_dump(mode="json") for a, p in providers.items()}
            self.jobs.update(job.job_id, providers=rows)

    def _registered(self, job_id: str) -> int | None:
        """The model asset an earlier try registered for the job, if the operator holds one."""
        page, offset = 500, 0
        while True:
            models = self.assets.list(
                kind="model", owner=self.operator.address, limit=page, offset=offset
            )
            for asset in models:  # newest first: a lost registration is among the last
                extra = self.assets.metadata(asset.metadata_cid).get("extra", {})
                if extra.get("training", {}).get("job_id") == job_id:
                    return asset.asset_id
            if len(models) < page:
                return None
            offset += page

    def _teacher(self, job: Job) -> Asset | None:
        ref = job.recipe["hyperparameters"].get("teacher_model")
        return self.catalog.resolve(ref) if ref is not None else None

    def _lineage(self, job: Job, work: Work) -> dict[str, Any]:
        """Where the model comes from: written into its card and its asset's metadata."""
        base = self.assets.get(job.base_asset)
        teacher = self._teacher(job)
        return {
            "base_model": {"asset": base.asset_id, "name": base.name},
            "teacher_model": {"asset": teacher.asset_id, "name": teacher.name} if teacher else None,
            "datasets": [d.model_dump() for d in job.datasets],
            "job_id": job.job_id,
            "work_shares_cid": job.shares_cid,
            "providers": {a: str(w) for a, w in work.shares.items()},
        }


def _made(job: Job) -> int:
    """The model asset the job registered (the steps after `register` act on it)."""
    if job.model_asset is None:
        raise NotFound(f"job {job.job_id} has no model asset registered")
    return job.model_asset


def _shares(job: Job) -> str:
    """The CID of the job's work shares (stored by step 1, which the later steps name)."""
    if job.shares_cid is None:
        raise NotFound(f"job {job.job_id} has no work shares stored")
    return job.shares_cid
