"""`cairn verify`: check what others did, from what the node publishes.

- `cairn verify job ID`: what the replay of a job's sampled rounds found. After a job's last
  round its coordinator trains a sample of rounds again from what each provider's signed report
  names (`cairn.verify`): each provider's flagged rounds and one more at random. It prints each
  replayed round, its outcome and why, and every provider whose replay failed and what it cost
  (its share and its stake, with the evidence's CID, which anyone may fetch and replay).
- `cairn verify receipts --as ACCOUNT`: your newest charged chats and completions, replayed on
  this machine. For each receipt it checks the gateway's signature, fetches the transcript and
  checks it hashes to the CID the receipt signs, gets the model the receipt names (downloaded
  from the node, a LoRA model merged, or `--model-folder`), reads the transcript on it in one
  pass and compares the hidden states with the receipt's commitment (`cairn.verify.inference`).
  `--on-node` asks the node to replay instead.

Each exits with 1 when a check failed, so a script can act on it.
"""

from __future__ import annotations

import math
import tarfile
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from cairn.api.client import NodeClient
from cairn.cli.common import DataDir, NodeUrl, client, unlock
from cairn.cli.output import console, table, units
from cairn.compute.job import Job
from cairn.core.cid import canonical_json, cid_of
from cairn.core.errors import InvalidInput
from cairn.economy.receipt_signing import receipt_from_json, signed_payload
from cairn.verify.transcript import transcript_ids

app = typer.Typer(
    help="Check what others did: replays of training work and of served answers.",
    no_args_is_help=True,
)


def print_verification(job: Job) -> bool:
    """Print the job's verification; whether every replayed round passed."""
    v = job.verification
    if v is None:
        console.print("not verified yet: the replay runs after the job's last round")
        return True
    if v.skipped:
        console.print(f"not replayed: {v.skipped}", markup=False)
        return True
    if v.error:
        console.print(f"the verification stopped: {v.error}", markup=False)
        return True
    table(
        "Replayed rounds",
        ["round", "provider", "outcome", "why"],
        [
            [
                r.round,
                r.account,
                "passed" if r.ok else ("not verified" if r.relative is None else "FAILED"),
                r.reason,
            ]
            for r in v.replays
        ],
    )
    for account, slash in v.slashed.items():
        console.print(
            f"{account}: not paid for this job; {units(slash.amount, 18)} CAIRN of its stake "
            f"went to the builder (evidence {slash.evidence_cid}, tx {slash.tx_hash or '-'})",
            markup=False,
        )
    return all(r.ok or r.relative is None for r in v.replays)


@app.command("job")
def job(job_id: str, node_url: NodeUrl = None) -> None:
    """The replay of a job's sampled rounds: who passed, who failed and what it cost."""
    with client(node_url) as api:
        found = Job.model_validate(api.request("GET", f"/jobs/{job_id}"))
    console.print(f"job {found.job_id} ({found.name}): {found.status}", markup=False)
    if not print_verification(found):
        raise typer.Exit(1)


@app.command("receipts")
def receipts(
    who: Annotated[str, typer.Option("--as", help="The account that paid (address or label)")],
    limit: Annotated[int, typer.Option(help="How many of its newest receipts to check")] = 5,
    on_node: Annotated[
        bool, typer.Option("--on-node", help="Ask the node to replay instead of this machine")
    ] = False,
    model_folder: Annotated[
        Path | None,
        typer.Option(
            "--model-folder",
            help="The model's Hugging Face folder (default: downloaded from the node)",
        ),
    ] = None,
    data_dir: DataDir = None,
    node_url: NodeUrl = None,
) -> None:
    """Replay your newest committed calls on the model each receipt names and check the
    gateway's commitment to its hidden states; exits 1 when one fails."""
    if limit < 1 or limit > 1000:
        raise InvalidInput(f"--limit must be between 1 and 1000; got {limit}")
    if model_folder is not None and not (model_folder / "config.json").is_file():
        raise InvalidInput(f"{model_folder} is not a Hugging Face model folder (no config.json)")
    signer = unlock(data_dir, who)
    rows: list[list[Any]] = []
    failed = False
    with client(node_url) as api, tempfile.TemporaryDirectory(prefix="cairn-verify-") as tmp:
        api.sign_in(signer)
        listed = [
            r for r in api.request("GET", "/receipts", params={"limit": limit}) if r["commitment"]
        ]
        if not listed:
            console.print(
                f"no committed receipts among {signer.address}'s newest {limit}: only chats and "
                "completions a node's own models generated carry a commitment",
                markup=False,
            )
            return
        replayer = _Replayer(api, model_folder, Path(tmp))
        for receipt in listed:
            receipt_id = receipt["receipt_id"]
            if on_node:
                found = api.request("POST", f"/receipts/{receipt_id}/verify")
                ok, relative, why = found["ok"], found["relative"], found["reason"]
            else:
                ok, relative, why = replayer.check(receipt_id)
            failed |= not ok
            error = "-" if relative is None else f"{relative:.1e}"
            outcome = "passed" if ok else "FAILED"
            rows.append(
                [
                    receipt_id[:12],
                    receipt["model"],
                    receipt["completion_tokens"],
                    outcome,
                    error,
                    why,
                ]
            )
    where = "on the node" if on_node else "here"
    table(
        f"Receipts replayed {where}",
        ["receipt", "model", "tokens", "outcome", "error", "why"],
        rows,
    )
    if failed:
        raise typer.Exit(1)


def signed_receipt(published: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """A published receipt's fields and the address that signed them, once what the API says
    was signed (EIP-712 typed data, or the EIP-191 text of receipts signed before) is checked
    to be those fields."""
    from eth_account import Account
    from eth_account.messages import encode_defunct, encode_typed_data

    receipt = receipt_from_json(published["receipt"])
    signed, typed = signed_payload(receipt)
    if (signed, typed) != (published.get("signed"), published.get("typed_data")):
        raise InvalidInput(
            f"receipt {receipt.receipt_id}: what it says was signed is not its fields"
        )
    message = (
        encode_defunct(text=signed)
        if typed is None
        else encode_typed_data(full_message=dict(typed))
    )
    return receipt.to_dict(), Account.recover_message(message, signature=published["signature"])


class _Replayer:
    """Receipts replayed on this machine: each model downloaded once, loaded once."""

    def __init__(self, api: NodeClient, folder: Path | None, scratch: Path) -> None:
        self.api, self.folder, self.scratch = api, folder, scratch
        self.backend: Any = None
        self.folders: dict[int, Path] = {}

    def check(self, receipt_id: str) -> tuple[bool, float | None, str]:
        """Whether the receipt holds, the worst relative error, and why."""
        published = self.api.request("GET", f"/receipts/{receipt_id}")
        try:
            fields, signer = signed_receipt(published)
        except (InvalidInput, ValueError) as exc:  # ValueError: a malformed signature
            return False, None, str(exc)
        if signer.lower() != str(fields["gateway"]).lower():
            return False, None, f"signed by {signer}, not by the gateway {fields['gateway']}"
        document = self.api.request("GET", f"/receipts/{receipt_id}/transcript")["document"]
        if cid_of(canonical_json(document)) != fields["transcript"]:
            return False, None, "the transcript is not the one the receipt signs"
        prompt, completion = transcript_ids(document)
        if (len(prompt), len(completion)) != (fields["prompt_tokens"], fields["completion_tokens"]):
            return False, None, "the transcript's token counts are not the ones charged"
        asset = self.api.asset(int(fields["model"]))
        if asset["kind"] != "model":
            return False, None, f"asset {asset['asset_id']} is an {asset['kind']}: use --on-node"
        return self._replay(int(fields["model"]), prompt, completion, fields["commitment"])

    def _replay(
        self, model: int, prompt: tuple[int, ...], completion: tuple[int, ...], encoded: str
    ) -> tuple[bool, float | None, str]:
        from cairn.serve.backends import ServedModel
        from cairn.serve.backends.transformers import TransformersBackend
        from cairn.verify.inference import Commitment, Transcript

        try:
            commitment = Commitment.decode(encoded)
        except ValueError as exc:
            return False, None, f"the commitment is malformed: {exc}"
        if self.backend is None:
            self.backend = TransformersBackend(memory_budget_bytes=8 << 30)
        folder = self.folder or self._download(model)
        served = ServedModel(str(model), folder, "causal-lm")
        verdict = self.backend.verify(served, Transcript(prompt, completion, commitment))
        relative = verdict.relative if math.isfinite(verdict.relative) else None
        return verdict.ok, relative, verdict.reason

    def _download(self, model: int) -> Path:
        if model not in self.folders:
            out = self.scratch / str(model)
            out.mkdir()
            tar_path = self.scratch / f"{model}.tar"
            with console.status(f"Downloading model {model} ..."):
                self.api.download_model(model, tar_path, merged=True)
            with tarfile.open(tar_path) as tar:
                tar.extractall(out, filter="data")  # refuses absolute paths and links out
            tar_path.unlink()
            self.folders[model] = out
        return self.folders[model]
