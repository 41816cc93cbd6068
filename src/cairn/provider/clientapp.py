"""The provider's side of a job: the Flower ClientApp every Cairn SuperNode runs.

`cairn worker start` starts a SuperNode with two node-config keys: `key-file`, the provider's
private key (a 0600 file the worker writes and removes), and `work-dir`, its cache. For each
round the SuperNode starts this app in a fresh process, which:

1. fetches the base model and the training records by CID from the node (verified, cached);
2. builds the model as the coordinator did and loads the round's global parameters;
3. runs `inner_train` for H steps on its shard, carrying its AdamW state from its last round;
4. answers with the new parameters, its metrics and a `WorkReport` signed by its key.

`query` answers which account the worker trains for, signed, so the coordinator can check the
account's stake before sending it work.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import time
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp

from cairn.core.errors import ConfigError

# Flower starts this app in a new process for every message; training's imports (torch,
# transformers, peft: seconds) are paid inside `train` only, so `identify` answers at once.
app = ClientApp()


def worker_key(context: Context) -> LocalAccount:
    """The provider's key, from the file named by the node config's `key-file`."""
    path = context.node_config.get("key-file")
    if not path:
        raise ConfigError("this SuperNode has no key-file: start it with `cairn worker start`")
    key = Path(str(path)).read_text().strip()
    account: LocalAccount = Account.from_key(key)
    return account


def work_dir(context: Context) -> Path:
    """The worker's cache folder."""
    path = Path(str(context.node_config.get("work-dir", Path.home() / ".cairn-worker")))
    path.mkdir(parents=True, exist_ok=True)
    return path


@app.query()
def identify(msg: Message, context: Context) -> Message:
    """Sign the coordinator's challenge with the provider's key."""
    account = worker_key(context)
    challenge = str(msg.content["challenge"]["challenge"])
    signature = account.sign_message(encode_defunct(text=challenge)).signature.to_0x_hex()
    record = ConfigRecord({"account": account.address, "signature": signature})
    return Message(RecordDict({"identity": record}), reply_to=msg)


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Run one round's inner steps and answer with the signed result."""
    from cairn.compute.records import RoundTask, reply_content
    from cairn.compute.reports import WorkReport, params_digest, sign_report
    from cairn.provider.blobs import BlobCache
    from cairn.train.inner import inner_train, load_params
    from cairn.train.models import hyperparameters, load_for_method

    account = worker_key(context)
    task = RoundTask.from_record(msg.content["task"])  # type: ignore[arg-type]
    global_params = msg.content["params"].to_torch_state_dict()  # type: ignore[union-attr]
    cache = BlobCache(task.node_url, work_dir(context) / "blobs", task.blob_token)
    hparams = hyperparameters(task.method, task.hparams)

    records = cache.records(task.train_cid)[task.shard :: task.shards]
    model, tokenizer = load_for_method(
        task.method,
        cache.model_folder(task.base_manifest),
        hparams,
        labels=task.labels,
    )
    load_params(model, global_params)
    teacher = None
    if task.teacher_manifest:
        teacher, _ = load_for_method("sft", cache.model_folder(task.teacher_manifest), hparams)
        teacher.eval()

    state_file = work_dir(context) / "jobs" / task.job_id / f"optimizer-{task.shard}.pt"
    started = time.perf_counter()
    result = inner_train(
        task.method,
        model,
        tokenizer,
        records,
        hparams,
        steps=task.steps,
        seed=task.seed,
        teacher=teacher,
        labels=task.labels,
        start_step=task.start_step,
        total_steps=task.total_steps,
        optimizer_state=_load_state(state_file, task.round - 1),
    )
    compute_seconds = time.perf_counter() - started
    _save_state(state_file, task.round, result.optimizer_state)

    report = WorkReport(
        job_id=task.job_id,
        round=task.round,
        account=account.address,
        node_id=int(context.node_id),
        shard=task.shard,
        steps=result.steps,
        samples=result.samples,
        loss=float(result.loss),
        params_digest=params_digest(result.params),
        compute_seconds=round(compute_seconds, 4),
    )
    metrics = {"loss": result.loss, "compute_seconds": compute_seconds, **result.metrics}
    content = reply_content(result.params, report, sign_report(report, account), metrics)
    return Message(content, reply_to=msg)


def _load_state(path: Path, previous_round: int) -> dict[str, Any] | None:
    """This shard's AdamW state, if it was saved after the round just before this one."""
    import torch

    if not path.exists():
        return None
    saved = torch.load(path, weights_only=True)
    if saved.get("round") != previous_round:
        return None  # a gap (the worker missed rounds): start the moments afresh
    state: dict[str, Any] = saved["state"]
    return state


def _save_state(path: Path, round_: int, state: dict[str, Any] | None) -> None:
    import torch

    if state is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"round": round_, "state": state}, tmp)
    os.replace(tmp, path)
