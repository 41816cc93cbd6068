"""Launching a job: a recipe checked against what the node has, its inputs stored, its budget
locked in JobEscrow, its folder and index row written.

`Launcher.launch` checks the recipe (the builder's licences to the base model, the teacher and
the datasets; the base model's family against the method's; the method's fields in the records),
holds out the evaluation split, stores the training records and the recipe by CID, funds the
budget in `JobEscrow` from the builder's key when this node holds it (or checks a budget the
builder funded itself under `job_id`), lets the job's workers read what it trains on, and writes
the job's folder and its `queued` row. Starting the Flower run is the service's next step.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from cairn.assets.content import Scope
from cairn.assets.service import AssetService
from cairn.chain.contracts import Chain
from cairn.chain.escrow import JobState
from cairn.compute.inputs import held_out_split, training_records
from cairn.compute.job import check_job_id
from cairn.compute.jobdir import JobDir, JobSpec
from cairn.compute.models import JobRow
from cairn.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from cairn.core.licensing import Use
from cairn.core.recipe import DEADLINE_SLACK, FAMILY_OF, Recipe, method_spec, recipe_to_yaml
from cairn.data.service import DataService
from cairn.db.engine import Database
from cairn.economy.licences import LicenceBook
from cairn.identity.signers import Signers
from cairn.store.base import BlobStore
from cairn.train.catalog import ModelCatalog


@dataclass(frozen=True)
class Launcher:
    """Checks a recipe and writes everything a job's run starts from."""

    db: Database
    store: BlobStore
    chain: Chain
    assets: AssetService
    data: DataService
    catalog: ModelCatalog
    signers: Signers  # the builder's key, where this node holds it, funds the budget
    licences: LicenceBook
    jobs_dir: Path
    node_url: str

    def launch(self, builder: str, recipe: Recipe, job_id: str | None = None) -> str:
        """Check `recipe`, lock its budget and write the job's folder and row; returns its id.

        With a budget, either this node holds the builder's key and funds it in JobEscrow now,
        or the builder funded it already under `job_id` (checked on chain).
        """
        method = recipe.method
        hparams = recipe.hyperparameters
        base = self.catalog.resolve(recipe.base_model)
        self.licences.require(Use.TRAIN, base.asset_id, builder)
        for ref in recipe.datasets:
            self.licences.require(Use.TRAIN, ref.dataset, builder)
        family = self.catalog.family(base)
        if family != FAMILY_OF[method]:
            raise InvalidInput(
                f"base_model: {method} trains a {FAMILY_OF[method]} model, but "
                f"asset {base.asset_id} ({base.name}) is a {family}"
            )
        teacher_folder = teacher_manifest = None
        if method == "distill":
            teacher = self.catalog.resolve(hparams.teacher_model)  # type: ignore[attr-defined]
            self.licences.require(Use.TRAIN, teacher.asset_id, builder)
            teacher_folder = str(self.catalog.folder(teacher))
            teacher_manifest = self.catalog.manifest(teacher)

        records, labels, datasets = training_records(self.data, recipe)
        method_spec(method).check_records(records, hparams, labels)  # as each worker will
        train, held_out = held_out_split(records, recipe.evaluation.split, recipe.evaluation.seed)

        yaml_text = recipe_to_yaml(recipe)
        recipe_cid = self.store.put(yaml_text.encode())
        train_cid = self.store.put(
            "".join(json.dumps(r, sort_keys=True) + "\n" for r in train).encode()
        )
        budget = int(recipe.budget.max_tokens)
        job_id = self._fund(builder, recipe, budget, base.asset_id, recipe_cid, job_id)
        self.assets.refs.add(recipe_cid, Scope.PUBLIC)  # named on chain by JobEscrow
        base_manifest = self.catalog.manifest(base)
        self._share_with_workers(job_id, builder, train_cid, base_manifest, teacher_manifest)

        spec = JobSpec(
            job_id=job_id,
            method=method,
            hparams=hparams.model_dump(mode="json"),
            base_folder=str(self.catalog.folder(base)),
            base_manifest=base_manifest,
            base_asset=base.asset_id,
            train_cid=train_cid,
            train_count=len(train),
            node_url=self.node_url,
            workers=recipe.distributed.workers,
            min_workers=recipe.distributed.min_workers,
            rounds=recipe.distributed.rounds,
            inner_steps=recipe.distributed.inner_steps,
            outer_lr=recipe.distributed.outer_lr,
            outer_momentum=recipe.distributed.outer_momentum,
            nesterov=recipe.distributed.nesterov,
            aggregation=recipe.distributed.aggregation,
            trim_ratio=recipe.distributed.trim_ratio,
            byzantine=recipe.distributed.byzantine,
            round_timeout_s=recipe.distributed.round_timeout_s,
            outer_encoding=recipe.distributed.outer_encoding,
            seed=int(getattr(hparams, "seed", 0)),
            min_stake=self.chain.escrow.min_stake(),
            labels=labels,
            teacher_folder=teacher_folder,
            teacher_manifest=teacher_manifest,
            blob_token=self.assets.refs.job_token(job_id),
        )
        JobDir(self.jobs_dir / job_id).write_spec(spec, held_out)
        now = time.time()
        row = JobRow(
            job_id=job_id,
            builder=builder,
            name=recipe.name,
            method=method,
            status="queued",
            recipe=recipe.model_dump(mode="json"),
            recipe_cid=recipe_cid,
            base_asset=base.asset_id,
            datasets=datasets,
            budget=str(budget),
            escrowed=int(budget > 0),
            round=0,
            rounds=recipe.distributed.rounds,
            run_id=None,
            events_offset=0,
            history=[],
            metrics={},
            providers={},
            error=None,
            model_asset=None,
            model_cid=None,
            shares_cid=None,
            reports_root=None,
            payouts={},
            created_at=now,
            updated_at=now,
            finished_at=None,
        )
        with self.db.session() as session, session.begin():
            session.add(row)
        return job_id

    def _fund(
        self,
        builder: str,
        recipe: Recipe,
        budget: int,
        base_asset: int,
        recipe_cid: str,
        job_id: str | None,
    ) -> str:
        """The job id, with the budget in escrow (funded now, or checked if funded already)."""
        if job_id is not None:
            job_id = check_job_id(job_id)
            if budget == 0:
                raise InvalidInput("job_id names an escrowed job, but the recipe's budget is 0")
            on_chain = self.chain.escrow.job(job_id)
            if on_chain.state != JobState.OPEN:
                raise NotFound(f"JobEscrow holds no open job {job_id}: fund it first")
            if on_chain.builder.lower() != builder.lower():
                raise Forbidden(f"escrowed job {job_id} belongs to {on_chain.builder}")
            if on_chain.budget != budget:
                raise InvalidInput(
                    f"escrowed budget {on_chain.budget} differs from the recipe's {budget}"
                )
        else:
            job_id = "0x" + secrets.token_hex(32)
            if budget > 0:
                signer = self.signers.find(builder)
                if signer is None:
                    raise Forbidden(
                        "this node does not hold the builder's key: fund the budget in JobEscrow "
                        "yourself (cairn train does) and pass its job_id"
                    )
                deadline = int(time.time()) + recipe.budget.max_seconds + DEADLINE_SLACK
                self.chain.escrow.create_job(
                    signer, self.chain.token, job_id, budget, base_asset, recipe_cid, deadline
                )
        with self.db.session() as session:
            if session.get(JobRow, job_id) is not None:
                raise Conflict(f"job {job_id} exists")
        return job_id

    def _share_with_workers(
        self,
        job_id: str,
        builder: str,
        train_cid: str,
        base_manifest: str,
        teacher_manifest: str | None,
    ) -> None:
        """Let the job's builder, and its workers by the job's token, read what it trains on."""
        refs = self.assets.refs
        cids = [train_cid, *refs.folder_cids(base_manifest)]
        if teacher_manifest:
            cids += refs.folder_cids(teacher_manifest)
        refs.add(cids, Scope.JOB, job_id, account=builder)
