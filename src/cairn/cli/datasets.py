"""`cairn dataset …`, `cairn contribute` and `cairn review …`."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer

from cairn.cli.common import DataDir, NodeUrl, client, unlock
from cairn.cli.output import console, errors, fields, table
from cairn.core.errors import InvalidInput
from cairn.core.policy import RevenueSplit

app = typer.Typer(help="Datasets: create, anchor, prove, export.", no_args_is_help=True)
review_app = typer.Typer(help="Review other people's records.", no_args_is_help=True)


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInput(f"{what} file {path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"{what} file {path} is not JSON: line {exc.lineno}: {exc.msg}"
        ) from None


def _show(dataset: dict[str, Any]) -> None:
    spec = dataset["spec"]
    task = spec["task"]
    counts = dataset.get("counts") or {}
    fields(
        f"Dataset {dataset['asset_id']}: {dataset['name']}",
        {
            "owner": dataset["owner"],
            "licence": dataset["licence"],
            "task": task["type"]
            + (f" ({', '.join(task['labels'])})" if task.get("labels") else ""),
            "records": ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none yet",
            "review": f"{spec['review']['review_share']:.0%} reviewed by {spec['review']['votes_per_record']}, accept at {spec['review']['accept_threshold']}",
            "personal data": spec["validation"]["pii_action"],
            "versions": dataset.get("versions", 0),
            "latest version": dataset.get("latest_version") or "-",
            "metadata": dataset["metadata_cid"],
        },
    )


@app.command("create")
def create(
    name: Annotated[str, typer.Option(help="Display name")],
    licence: Annotated[str, typer.Option(help="Licence identifier, e.g. CC-BY-4.0")],
    task: Annotated[str, typer.Option(help="instruction, classification or verifiable")],
    sender: Annotated[str, typer.Option("--from", help="Owning account: address or label")],
    labels: Annotated[str, typer.Option(help="classification: comma-separated label set")] = "",
    answer_type: Annotated[str, typer.Option(help="verifiable: exact or numeric")] = "exact",
    description: Annotated[str, typer.Option(help="What the dataset is for")] = "",
    schema: Annotated[
        Path | None, typer.Option(help="JSON Schema file every record must also satisfy")
    ] = None,
    policy: Annotated[
        Path | None,
        typer.Option(help="JSON file with validation, review, reward and anchoring policies"),
    ] = None,
    split: Annotated[
        str, typer.Option(help="Revenue split owner,data,compute,upstream (bps)")
    ] = "1000,9000,0,0",
    data_dir: DataDir = None,
    node_url: NodeUrl = None,
) -> None:
    """Create a dataset: its spec in the store, its asset on chain, the node as its curator."""
    task_spec: dict[str, Any] = {"type": task}
    if labels:
        task_spec["labels"] = [label.strip() for label in labels.split(",") if label.strip()]
    if task == "verifiable":
        task_spec["answer_type"] = answer_type
    spec: dict[str, Any] = {"task": task_spec}
    if schema:
        spec["record_schema"] = _read_json(schema, "schema")
    if policy:
        extra = _read_json(policy, "policy")
        if not isinstance(extra, dict):
            raise InvalidInput(f"policy file {policy} must hold a JSON object")
        spec.update(extra)
    account = unlock(data_dir, sender)
    with client(node_url) as api, console.status("Creating dataset ..."):
        dataset = api.create_dataset(
            account,
            name=name,
            licence=licence,
            spec=spec,
            description=description,
            split=RevenueSplit.parse(split),
        )
    _show(dataset)


@app.command("list")
def list_datasets(node_url: NodeUrl = None) -> None:
    """List datasets."""
    with client(node_url) as api:
        found = api.datasets()
    if not found:
        console.print("No datasets yet: `cairn dataset create`.")
        return
    table(
        "Datasets",
        ["id", "name", "task", "licence", "records", "versions", "owner"],
        [
            [
                d["asset_id"],
                d["name"],
                d["spec"]["task"]["type"],
                d["licence"],
                sum(d["counts"].values()),
                d["versions"],
                d["owner"],
            ]
            for d in found
        ],
    )


@app.command("show")
def show(
    dataset_id: Annotated[int, typer.Argument(help="Dataset id")], node_url: NodeUrl = None
) -> None:
    """Show a dataset: task, policies, record counts, versions."""
    with client(node_url) as api:
        _show(api.dataset(dataset_id))
        versions = api.versions(dataset_id)
    if versions:
        table(
            "Versions",
            ["#", "version (manifest CID)", "records", "batches"],
            [[v["number"], v["version"], v["records"], v["batches"]] for v in versions],
        )


@app.command("anchor")
def anchor(
    dataset_id: Annotated[int, typer.Argument(help="Dataset id")],
    sender: Annotated[str, typer.Option("--from", help="The dataset's owner or a curator")],
    data_dir: DataDir = None,
    node_url: NodeUrl = None,
) -> None:
    """Anchor the dataset's accepted records now, as one batch, and cut a version."""
    account = unlock(data_dir, sender)
    with client(node_url) as api:
        api.sign_in(account)
        result = api.anchor(dataset_id)
    if not result["anchored"]:
        console.print("Nothing to anchor: no accepted records are waiting.")
        return
    batch = result["batch"]
    fields(
        f"Anchored batch {batch['batch_index']} of dataset {dataset_id}",
        {
            "records": batch["count"],
            "root": batch["root"],
            "batch": batch["cid"],
            "tx": batch["tx_hash"],
            "version": batch["version"],
            "attribution": batch["attribution_cid"],
        },
    )


@app.command("proof")
def proof(
    dataset_id: Annotated[int, typer.Argument(help="Dataset id")],
    record: Annotated[str, typer.Argument(help="Record hash (or record id)")],
    output: Annotated[
        Path | None, typer.Option("--json", help="Also write the proof as JSON to this file")
    ] = None,
    node_url: NodeUrl = None,
) -> None:
    """Show an anchored record's Merkle proof, checked on chain."""
    with client(node_url) as api:
        found = api.proof(dataset_id, record)
    if output:
        output.write_text(json.dumps(found, indent=2))
    fields(
        f"Proof of record {found['record_hash'][:16]}…",
        {
            "contributor": found["contributor"],
            "batch": f"{found['batch_index']} ({found['batch_cid']})",
            "root": found["root"],
            "leaf": found["leaf"],
            "proof": "\n".join(found["proof"]) or "(single-record batch)",
            "verified on chain": "yes" if found["verified_on_chain"] else "NO",
        },
    )


@app.command("export")
def export(
    dataset_id: Annotated[int, typer.Argument(help="Dataset id")],
    out: Annotated[
        Path, typer.Option("--out", help="Folder to write records.jsonl and records.parquet into")
    ] = Path("."),
    version: Annotated[
        str | None, typer.Option(help="Version (manifest CID); default the newest")
    ] = None,
    who: Annotated[
        str | None,
        typer.Option("--as", help="Your account (address or label), for a licensed dataset"),
    ] = None,
    data_dir: DataDir = None,
    node_url: NodeUrl = None,
) -> None:
    """Write a dataset version as JSONL and as Parquet (both load with the `datasets` library).

    A licensed dataset needs a licence held by the `--as` account (`cairn licence list ID`)."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with client(node_url) as api:
        if who:
            api.sign_in(unlock(data_dir, who))
        for fmt in ("jsonl", "parquet"):
            path = out / f"records.{fmt}"
            path.write_bytes(api.export(dataset_id, fmt, version))
            written.append([fmt, str(path), path.stat().st_size])
    table(f"Exported dataset {dataset_id}", ["format", "file", "bytes"], written)


@app.command("gold")
def gold(
    dataset_id: Annotated[int, typer.Argument(help="Dataset id")],
    file: Annotated[Path, typer.Argument(help='JSONL of {"record": {...}, "answer": ...}')],
    sender: Annotated[str, typer.Option("--from", help="The dataset's owner")],
    data_dir: DataDir = None,
    node_url: NodeUrl = None,
) -> None:
    """Seed gold questions: items with known answers, mixed unmarked into review queues."""
    from cairn.data.signing import upload_lines  # with eth_account, which unlocking loads anyway

    items = [json.loads(line) for line in upload_lines(file.read_text(encoding="utf-8"))]
    account = unlock(data_dir, sender)
    with client(node_url) as api:
        api.sign_in(account)
        added = api.add_gold(dataset_id, items)
    console.print(f"Added {added} gold questions to dataset {dataset_id}.")


def contribute(
    dataset_id: Annotated[int, typer.Argument(help="Dataset id")],
    file: Annotated[Path, typer.Argument(help="JSONL file: one JSON record per line")],
    sender: Annotated[str, typer.Option("--from", help="Contributing account: address or label")],
    show_all: Annotated[
        bool, typer.Option("--all", help="List accepted records too, not only rejected ones")
    ] = False,
    data_dir: DataDir = None,
    node_url: NodeUrl = None,
) -> None:
    """Contribute records to a dataset: one signature covers the upload; each record gets a verdict."""
    from cairn.data.signing import upload_lines  # with eth_account, which signing loads anyway

    try:
        lines = upload_lines(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInput(f"{file} does not exist") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{file} is not UTF-8 text") from None
    account = unlock(data_dir, sender)
    with client(node_url) as api, console.status(f"Uploading {len(lines)} records ..."):
        result = api.contribute(account, dataset_id, lines)
    verdicts = result["verdicts"]
    shown = [v for v in verdicts if show_all or not v["ok"]]
    if shown:
        table(
            "Verdicts",
            ["line", "verdict", "status / reason"],
            [[v["line"], v["code"], v["reason"] or v["status"]] for v in shown],
        )
    codes = Counter(v["code"] for v in verdicts)
    fields(
        f"Upload {result['upload_id']} to dataset {dataset_id}"
        + (" (already received: same answer)" if result["replayed"] else ""),
        {
            "records": result["total"],
            "accepted": result["accepted"],
            "rejected": result["rejected"],
            "by verdict": ", ".join(f"{k} {n}" for k, n in sorted(codes.items())),
        },
    )


@review_app.command("next")
def review_next(
    dataset_id: Annotated[int, typer.Argument(help="Dataset id")],
    sender: Annotated[str, typer.Option("--from", help="Reviewing account")],
    answer: Annotated[
        str | None, typer.Option(help="Answer the task right away (approve, reject or a label)")
    ] = None,
    data_dir: DataDir = None,
    node_url: NodeUrl = None,
) -> None:
    """Show your next review task (and answer it with --answer)."""
    account = unlock(data_dir, sender)
    with client(node_url) as api:
        api.sign_in(account)
        task = api.next_review(dataset_id)
        if task is None:
            console.print("No review tasks for you right now.")
            return
        fields(
            f"Task {task['task_id']} ({task['kind']}: {' / '.join(task['labels'])})", task["record"]
        )
        if answer is not None:
            result = api.answer_review(task["task_id"], answer)
            console.print(f"Answered task {result['task_id']}: {answer}.")
        else:
            errors.print(
                f"Answer with: cairn review answer {task['task_id']} LABEL --from {sender}"
            )


@review_app.command("answer")
def review_answer(
    task_id: Annotated[int, typer.Argument(help="Task id")],
    answer: Annotated[str, typer.Argument(help="approve, reject or a label")],
    sender: Annotated[str, typer.Option("--from", help="Reviewing account")],
    data_dir: DataDir = None,
    node_url: NodeUrl = None,
) -> None:
    """Answer a review task."""
    account = unlock(data_dir, sender)
    with client(node_url) as api:
        api.sign_in(account)
        result = api.answer_review(task_id, answer)
    console.print(f"Answered task {result['task_id']}: {answer}.")
