"""A stuck ClientApp does not wedge its provider: the SuperNode answers the message for it and
takes the next one (`cairn.provider.watchdog`); and a provider runs no ClientApp but Cairn's.

First each way a ClientApp's task can end, on Flower's own node state and its SuperNode's
`_push_messages` with the guard around it, in this process; then the provider's processes: a
real `flower-superlink` runs a Flower run whose app is this file's `APP`, built into a FAB in
memory, against `cairn.provider.host` as a worker starts it, which refuses that app.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import flwr.supernode.start_client_internal as flower_loop
import grpc
import pytest
from eth_account import Account
from flwr.app import ConfigRecord, Message, RecordDict
from flwr.cli.build import build_fab_from_files
from flwr.common.constant import ErrorCode, SubStatus
from flwr.common.serde import fab_to_proto, user_config_to_proto
from flwr.proto.control_pb2 import StartRunRequest
from flwr.proto.control_pb2_grpc import ControlStub
from flwr.proto.message_pb2 import ObjectTree
from flwr.supercore.constant import TaskType
from flwr.supercore.fab import Fab
from flwr.supercore.inflatable.inflatable_object import get_object_tree, iterate_object_tree
from flwr.supercore.object_store import ObjectStoreFactory
from flwr.supernode.nodestate import InMemoryNodeState

from cairn.chain.anvil import free_port
from cairn.compute.flower_processes import spawn_flower, stop_group
from cairn.compute.superlink import LOCAL, SuperLink
from cairn.provider.watchdog import ClientAppGuard
from tests.processes import pids_with_args

# -- in this process: Flower's node state and `_push_messages`, guarded ----------------------


class SuperNodeState:
    """A SuperNode's state and object store, its `_push_messages` guarded, and what it sent."""

    def __init__(self) -> None:
        self.store = ObjectStoreFactory().store()
        self.state = InMemoryNodeState(self.store)
        self.state.set_node_id(5)
        self.loop = ModuleType("supernode_loop")  # the guard wraps this, not Flower's module
        for name in ("run_clientappio_api_grpc", "_pull_and_store_message", "_push_messages"):
            setattr(self.loop, name, getattr(flower_loop, name))
        self.guard = ClientAppGuard()
        self.guard.install(self.loop)
        self.sent: list[Message] = []  # to the SuperLink
        self.objects: list[str] = []  # their objects, pushed to the SuperLink

    def take(self) -> tuple[Message, int]:
        """Pull a message from the SuperLink as the SuperNode does; it and its ClientApp task."""
        message = Message(RecordDict({"do": ConfigRecord({"x": 1})}), 5, "train")
        task_id = self.state.create_task(task_type=TaskType.CLIENT_APP, run_id=0, fab_hash="f")
        assert task_id is not None
        flower_loop._insert_message(message, self.state, self.store)
        return message, task_id

    def start_clientapp(self, task_id: int) -> Message:
        """What a ClientApp does first: claim the task, start it, pull its message."""
        assert self.state.claim_task(task_id) and self.state.activate_task(task_id)
        (message,) = self.state.get_messages(run_ids=[0], is_reply=False)
        self.state.record_message_processing_start(message.metadata.message_id)
        return message

    def push(self) -> None:
        """The SuperNode's `_push_messages`: wait for the reply, send it, forget both."""

        def send(message: Message, tree: ObjectTree, _runtime: float) -> set[str]:
            self.sent.append(message)
            return {t.object_id for t in iterate_object_tree(tree)}

        def push_object(_run_id: int, object_id: str, _content: bytes) -> None:
            self.objects.append(object_id)

        self.loop._push_messages(
            state=self.state, object_store=self.store, send=send, push_object=push_object
        )


# before the guard each of these but the first waited in `_push_messages` for good
WEDGE = pytest.mark.timeout(10)


def reply_to(message: Message) -> Message:
    return Message(RecordDict({"done": ConfigRecord({"ok": True})}), reply_to=message)


@WEDGE
def test_a_reply_pushed_before_its_task_ended_is_sent_as_it_is() -> None:
    node = SuperNodeState()
    _, task = node.take()
    reply = reply_to(node.start_clientapp(task))
    flower_loop._insert_message(reply, node.state, node.store)  # PushMessages, PushObject
    assert node.state.finish_task(task, SubStatus.COMPLETED, "")  # PushTaskOutput
    node.push()
    assert [m.object_id for m in node.sent] == [reply.object_id] and node.objects
    assert node.state.get_messages() == []  # both forgotten: the next message can come


@WEDGE
def test_a_task_ended_without_a_reply_is_answered_as_flower_answers_a_crashed_clientapp() -> None:
    node = SuperNodeState()
    message, task = node.take()
    node.start_clientapp(task)
    assert node.state.finish_task(task, SubStatus.FAILED, "UNAUTHENTICATED")  # and no reply
    node.push()  # before the guard: waited here for good (no token left to expire)
    (sent,) = node.sent
    assert sent.metadata.reply_to_message_id == message.metadata.message_id
    assert sent.error.code == ErrorCode.CLIENT_APP_CRASHED
    assert node.state.get_messages() == []


@WEDGE
def test_a_message_the_supernode_dropped_itself_lets_it_take_the_next() -> None:
    # a restarting SuperLink: pulling the message's objects failed, so the SuperNode deleted the
    # message and failed its task, then still waited for a reply
    node = SuperNodeState()
    message, task = node.take()
    node.state.delete_messages(message_ids=[message.metadata.message_id])
    assert node.state.finish_task(task, SubStatus.FAILED, "Pulling message objects failed.")
    node.push()
    assert node.sent == []


@WEDGE
def test_an_open_task_is_waited_for_until_its_message_expires() -> None:
    node = SuperNodeState()
    message, task = node.take()
    node.start_clientapp(task)  # running, its heartbeats would go on
    node.guard.deadline = message.metadata.created_at + message.metadata.ttl
    assert node.guard.replies_for_the_stuck(node.state) == []  # it may still answer
    node.guard.deadline = time.time() - 1  # the message expired
    node.push()
    (sent,) = node.sent
    assert sent.error.code == ErrorCode.CLIENT_APP_CRASHED
    (failed,) = node.state.get_tasks(task_ids=[task])
    assert failed.status.sub_status == SubStatus.FAILED


@WEDGE
def test_a_reply_whose_objects_will_not_come_is_given_up_once_its_task_is_over() -> None:
    node = SuperNodeState()
    _, task = node.take()
    reply = reply_to(node.start_clientapp(task))
    reply.metadata.__dict__["_message_id"] = reply.object_id
    node.store.preregister(0, get_object_tree(reply))  # PushMessages, then the ClientApp died
    node.state.store_message(reply)
    assert node.state.finish_task(task, SubStatus.FAILED, "no heartbeat")
    node.push()  # before the guard: waited here for the objects for good
    assert [m.object_id for m in node.sent] == [reply.object_id] and node.objects == []
    assert node.state.get_messages() == []


# -- the provider's processes -------------------------------------------------------------

APP = textwrap.dedent(
    '''
    """A foreign Flower app: its ServerApp sends one message per step of a plan and writes what
    came back; its ClientApp, were it ever run, would leave a pid file and answer or hang."""

    import json, os, threading, time
    from pathlib import Path
    from flwr.app import ConfigRecord, Context, Message, RecordDict
    from flwr.clientapp import ClientApp
    from flwr.serverapp import Grid, ServerApp

    server = ServerApp()
    client = ClientApp()
    WAIT = 30.0  # seconds the ServerApp waits for a reply (a message's ttl + 1 s if it has one)


    @server.main()
    def send_the_plan(grid: Grid, context: Context) -> None:
        folder = Path(str(context.run_config["folder"]))
        nodes = []
        while not nodes:
            nodes = list(grid.get_node_ids())
            time.sleep(0.1)
        for step in str(context.run_config["plan"]).split(","):
            behaviour, _, ttl = step.partition(":")
            content = RecordDict({"do": ConfigRecord({"behaviour": behaviour})})
            message = Message(content, nodes[0], "train", ttl=float(ttl) if ttl else None)
            sent = time.monotonic()
            waiting = list(grid.push_messages([message]))
            wait = float(ttl) + 1 if ttl else WAIT
            replies = []
            while not replies and time.monotonic() - sent < wait:
                time.sleep(0.1)
                replies = list(grid.pull_messages(waiting))
            outcome = {"behaviour": behaviour, "seconds": time.monotonic() - sent}
            if replies and replies[0].has_error():
                outcome["error"] = replies[0].error.code
            elif replies:
                outcome["pid"] = replies[0].content["done"]["pid"]
            with (folder / "outcomes.jsonl").open("a") as out:
                out.write(json.dumps(outcome) + "\\n")


    @client.train()
    def act(msg: Message, context: Context) -> Message:
        behaviour = str(msg.content["do"]["behaviour"])
        folder = Path(str(context.run_config["folder"]))
        (folder / f"{behaviour}.pid").write_text(str(os.getpid()))
        if behaviour == "hang":
            threading.Event().wait()
        return Message(RecordDict({"done": ConfigRecord({"pid": os.getpid()})}), reply_to=msg)
    '''
)

PYPROJECT = """\
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "cairn-hang-test"
version = "1.0.0"
license = "Apache-2.0"
dependencies = []

[tool.hatch.build.targets.wheel]
packages = ["."]

[tool.flwr.app]
publisher = "cairn"

[tool.flwr.app.components]
serverapp = "hang_app:server"
clientapp = "hang_app:client"

[tool.flwr.app.config]
folder = ""
plan = ""
"""

JOIN_TIMEOUT = 30.0  # seconds for the provider's SuperNode to come online


class Provider:
    """A SuperLink and one provider process (`cairn.provider.host`) on 127.0.0.1."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.link = SuperLink(
            folder / "flower",
            fleet_port=free_port(),
            control_port=free_port(),
            serverappio_port=free_port(),
        )
        self.host: subprocess.Popen[bytes] | None = None
        self.log = folder / "provider.log"
        self.appio = f"127.0.0.1:{free_port()}"  # its ClientAppIo API: its ClientApps name it

    def start(self) -> None:
        self.link.start()
        key = self.folder / "provider.key"
        key.write_text(Account.create().key.hex())
        self.host = spawn_flower(
            [
                sys.executable, "-m", "cairn.provider.host",
                "--key-file", str(key),
                "--work-dir", str(self.folder / "work"),
                "--socket", str(self.folder / "trainer.sock"),
                "--parent-pid", str(os.getpid()),
                "--",
                "--insecure",
                "--superlink", self.link.fleet_address,
                "--clientappio-api-address", self.appio,
            ],
            self.log,
            self.folder / "flwr-home",
        )  # fmt: skip
        deadline = time.monotonic() + JOIN_TIMEOUT
        while "online" not in self.link.supernodes().values():
            assert time.monotonic() < deadline, self.log.read_text()[-3000:]
            time.sleep(0.2)

    def run(self, name: str, plan: str) -> Path:
        """Start a Flower run of `APP` with this plan; the folder it writes its outcomes to."""
        folder = self.folder / name
        folder.mkdir()
        fab_bytes, _ = build_fab_from_files(
            {"pyproject.toml": PYPROJECT.encode(), "hang_app.py": APP.encode()}
        )
        fab = Fab(hashlib.sha256(fab_bytes).hexdigest(), fab_bytes, {})
        request = StartRunRequest(
            fab=fab_to_proto(fab),
            override_config=user_config_to_proto({"folder": str(folder), "plan": plan}),
        )
        with grpc.insecure_channel(f"{LOCAL}:{self.link.control_port}") as channel:
            ControlStub(channel).StartRun(request, timeout=30)
        self.link.serverapps.wake()  # as `SuperLink.start_run` does: its executor runs the app
        return folder

    def clientapps(self) -> list[int]:
        """The live `flwr-clientapp` processes of the provider's SuperNode."""
        return pids_with_args("--clientappio-api-address", self.appio, "--token")

    def stop(self) -> None:
        if self.host is not None:
            stop_group(self.host, grace=5.0)
        self.link.stop()
        for pid in self.clientapps():  # one stuck where the guard failed
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    provider = Provider(tmp_path_factory.mktemp("hang"))
    try:
        provider.start()
        yield provider
    finally:
        provider.stop()


def outcomes(folder: Path, steps: int, log: Path, timeout: float) -> list[dict[str, Any]]:
    """The ServerApp's record of each step of its plan, once all `steps` are written."""
    deadline = time.monotonic() + timeout
    path = folder / "outcomes.jsonl"
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= steps:
            return [json.loads(line) for line in lines]
        assert time.monotonic() < deadline, f"{lines}\n{log.read_text()[-4000:]}"
        time.sleep(0.2)


@pytest.mark.process  # a SuperLink, a provider and its Flower SuperNode
def test_a_run_whose_fab_names_another_clientapp_is_refused_and_none_of_its_code_runs(
    provider: Provider,
) -> None:
    # Flower's own SuperExec would install the FAB and run its ClientApp, whoever sent it: a
    # SuperLink's operator could run any code on every provider's machine. The provider host
    # runs Cairn's installed ClientApp only, in its own process.
    folder = provider.run("foreign", "answer,hang")
    first, second = outcomes(folder, 2, provider.log, timeout=60)
    for outcome in (first, second):
        assert outcome.get("error") == ErrorCode.LOAD_CLIENT_APP_EXCEPTION, outcome
        assert outcome["seconds"] < 10  # refused at once, not left to expire
    assert not list(folder.glob("*.pid"))  # the app's code never ran
    assert provider.clientapps() == []  # and no flwr-clientapp process was started
    assert "runs only cairn.provider.clientapp:app" in provider.log.read_text()
