"""The provider's side of a job: the Flower ClientApp every Cairn SuperNode runs.

`cairn worker start` starts a SuperNode with three node-config keys: `key-file`, the provider's
private key (a 0600 file the worker writes and removes), `work-dir`, its cache, and
`trainer-socket`, where its resident trainer listens. There this app runs in a thread of the
provider's own process (`cairn.provider.appexec`) and hands each round to the resident trainer
(`cairn.provider.trainer`); under a bare `flower-supernode`, Flower starts it in a fresh process
for every message and it does the work itself (`cairn.provider.rounds`):

1. fetches the base model and the training records by CID from the node (verified, cached);
2. builds the model as the coordinator did and loads the round's global parameters;
3. runs `inner_train` for H steps on its shard, carrying its AdamW state from its last round;
4. answers with the new parameters, its metrics and a `WorkReport` signed by its key.

`query` answers which account the worker trains for, signed, so the coordinator can check the
account's stake before sending it work; `query.reveal` answers with the AdamW state one of its
rounds resumed, so that round can be replayed (`cairn.verify.replay`).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import logging
from pathlib import Path

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp

from cairn.core.errors import ConfigError, Unavailable

log = logging.getLogger("cairn.clientapp")

# Under a bare SuperNode, Flower starts this app in a new process for every message; training's
# imports (torch, transformers, peft: seconds) are paid by the resident trainer, or inside
# `train` only, so `identify` answers at once.
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


@app.query("reveal")
def reveal(msg: Message, context: Context) -> Message:
    """The AdamW state a round of this worker resumed, as its work report signed it."""
    from cairn.compute.records import reveal_request, state_content
    from cairn.provider.rounds import resumed_state

    job_id, round_, shard = reveal_request(msg.content)
    state = resumed_state(work_dir(context), job_id, round_, shard)
    return Message(state_content(state), reply_to=msg)


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Run one round's inner steps and answer with the signed result.

    The round goes to the worker's resident trainer when its SuperNode names one
    (`trainer-socket`, set by `cairn worker start`); a bare `flower-supernode`, or a trainer
    that is gone, trains here, in this process.
    """
    node_id = int(context.node_id)
    socket_path = context.node_config.get("trainer-socket")
    if socket_path:
        from cairn.provider.trainer import train_remotely

        try:
            content = train_remotely(Path(str(socket_path)), msg.content, node_id)
            return Message(content, reply_to=msg)
        except Unavailable as exc:
            log.warning("%s; training in the ClientApp's process", exc.message)
    from cairn.compute.records import RoundTask, task_params
    from cairn.provider.rounds import RoundRunner

    task = RoundTask.from_record(msg.content["task"])  # type: ignore[arg-type]
    global_params = task_params(msg.content)
    runner = RoundRunner(work_dir(context))
    content = runner.run(task, global_params, worker_key(context), node_id)
    return Message(content, reply_to=msg)
