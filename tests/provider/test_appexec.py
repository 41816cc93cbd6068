"""The provider host's ClientApps run in its own threads (`cairn.provider.appexec`), over a real
ClientAppIo API: Flower's node state, object store and gRPC server, in this process, holding a
message as the SuperNode stores one it pulled."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator

import grpc
import pytest
from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.cli.build import build_fab_from_files
from flwr.common.constant import ErrorCode, Status, SubStatus
from flwr.proto.appio_pb2 import PullPendingTasksRequest
from flwr.supercore.constant import TaskType
from flwr.supercore.fab import Fab
from flwr.supercore.inflatable.inflatable_object import iterate_object_tree
from flwr.supercore.inflatable.inflatable_utils import inflate_object_from_contents
from flwr.supercore.object_store import ObjectStoreFactory
from flwr.supercore.run import Run
from flwr.supernode import start_client_internal as flower_loop
from flwr.supernode.nodestate import NodeStateFactory

from cairn.chain.anvil import free_port
from cairn.compute.superlink import FAB_PYPROJECT
from cairn.provider.appexec import CAIRN_CLIENTAPP, InProcessClientApps, cairn_app

RUN_ID, NODE_ID = 7, 5


def fab(pyproject: str) -> Fab:
    content, _ = build_fab_from_files({"pyproject.toml": pyproject.encode()})
    return Fab(hashlib.sha256(content).hexdigest(), content, {})


class ClientAppIo:
    """A SuperNode's state and its ClientAppIo API, without the SuperNode's loop."""

    def __init__(self, fab: Fab) -> None:
        self.stores = ObjectStoreFactory()
        self.states = NodeStateFactory(objectstore_factory=self.stores)
        self.state, self.store = self.states.state(), self.stores.store()
        self.state.set_node_id(NODE_ID)
        self.address = f"127.0.0.1:{free_port()}"
        self.server = flower_loop.run_clientappio_api_grpc(
            address=self.address,
            state_factory=self.states,
            objectstore_factory=self.stores,
            certificates=None,
            superexec_auth_secret=None,
        )
        self.fab_hash = fab.hash_str
        run = Run.create_empty(RUN_ID)
        run.fab_hash = fab.hash_str
        self.state.store_run(run)
        self.state.store_fab(fab)
        context = Context(RUN_ID, NODE_ID, {}, RecordDict(), {}, series_id=0)
        self.state.set_run_series_context(0, context)

    def take(self, behaviour: str) -> tuple[Message, int]:
        """A message as the SuperNode stores one it pulled, and its pending ClientApp task."""
        task_id = self.state.create_task(
            task_type=TaskType.CLIENT_APP, run_id=RUN_ID, fab_hash=self.fab_hash
        )
        assert task_id is not None
        content = RecordDict({"do": ConfigRecord({"behaviour": behaviour})})
        message = Message(content, NODE_ID, "train")
        message.metadata.__dict__["_run_id"] = RUN_ID
        flower_loop._insert_message(message, self.state, self.store)
        return message, task_id

    def replies(self) -> list[Message]:
        return list(self.state.get_messages(is_reply=True))

    def wait_for_reply(self, timeout: float = 20.0) -> Message:
        deadline = time.monotonic() + timeout
        while not (replies := self.replies()):
            assert time.monotonic() < deadline, "no reply"
            time.sleep(0.02)
        (reply,) = replies
        return reply

    def content(self, reply: Message) -> RecordDict:
        """A stored reply's content, from its objects in the store."""
        tree = self.store.get_object_tree(reply.metadata.message_id)
        objects = {t.object_id: self.store.get(t.object_id) for t in iterate_object_tree(tree)}
        whole = inflate_object_from_contents(reply.metadata.message_id, objects)  # type: ignore[arg-type]
        assert isinstance(whole, Message)
        return whole.content

    def task_status(self, task_id: int) -> str:
        (task,) = [t for t in self.state.get_tasks() if t.task_id == task_id]
        return str(task.status.status)


@pytest.fixture
def cairn_fab_io() -> Iterator[ClientAppIo]:
    io = ClientAppIo(fab(FAB_PYPROJECT))
    yield io
    io.server.stop(None)


def acting(release: threading.Event) -> Callable[[str], Callable[[Message, Context], Message]]:
    """An `app_for` standing in for Cairn's ClientApp: answers, raises, or blocks until told."""

    def app(message: Message, context: Context) -> Message:
        behaviour = str(message.content["do"]["behaviour"])  # type: ignore[index]
        if behaviour == "raise":
            raise RuntimeError("the round failed")
        if behaviour == "block":
            release.wait()
        return Message(RecordDict({"done": ConfigRecord({"by": behaviour})}), reply_to=message)

    def app_for(name: str) -> Callable[[Message, Context], Message]:
        cairn_app(name)  # refuses what the real one refuses
        return app

    return app_for


def test_a_stored_message_is_claimed_run_in_a_thread_and_answered(
    cairn_fab_io: ClientAppIo,
) -> None:
    io = cairn_fab_io
    apps = InProcessClientApps(io.address, acting(threading.Event()), fallback_poll=60).start()
    try:
        message, task_id = io.take("answer")
        started = time.monotonic()
        apps.notify()  # what the host does once the SuperNode has stored the message
        reply = io.wait_for_reply()
        assert time.monotonic() - started < 5  # woken at once, not after the 60 s fallback
        assert reply.metadata.reply_to_message_id == message.metadata.message_id
        deadline = time.monotonic() + 10
        while io.task_status(task_id) != Status.FINISHED:  # the reply's objects are all in
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert not reply.has_error() and io.content(reply)["done"]["by"] == "answer"
    finally:
        apps.stop()


def test_a_clientapp_that_raises_is_answered_with_its_error(cairn_fab_io: ClientAppIo) -> None:
    io = cairn_fab_io
    apps = InProcessClientApps(io.address, acting(threading.Event())).start()
    try:
        io.take("raise")
        apps.notify()
        reply = io.wait_for_reply()
        assert reply.has_error() and reply.error.code == ErrorCode.CLIENT_APP_RAISED_EXCEPTION
        assert "the round failed" in reply.error.reason
    finally:
        apps.stop()


def test_a_hung_clientapp_holds_only_its_own_task(cairn_fab_io: ClientAppIo) -> None:
    # What the hang guard does when the message expires: fail the task. The hung thread's late
    # reply is then refused (its token is revoked) and the next message is served.
    io = cairn_fab_io
    release = threading.Event()
    apps = InProcessClientApps(io.address, acting(release)).start()
    try:
        _, hung = io.take("block")
        apps.notify()
        deadline = time.monotonic() + 10
        while io.task_status(hung) != Status.RUNNING:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert io.state.finish_task(hung, SubStatus.FAILED, "its message expired")
        release.set()  # the hung app returns now, too late
        time.sleep(1.0)
        assert io.replies() == []
        io.state.get_messages(is_reply=False)  # the SuperNode moves on (drops the old message)
        message, _ = io.take("answer")
        apps.notify()
        reply = io.wait_for_reply()
        assert reply.metadata.reply_to_message_id == message.metadata.message_id
    finally:
        release.set()
        apps.stop()


def test_a_fab_naming_another_clientapp_is_refused_and_its_app_never_called() -> None:
    foreign = FAB_PYPROJECT.replace(CAIRN_CLIENTAPP, "evil:app")
    io = ClientAppIo(fab(foreign))
    called: list[str] = []

    def app_for(name: str) -> Callable[[Message, Context], Message]:
        called.append(name)
        return cairn_app(name)

    apps = InProcessClientApps(io.address, app_for).start()
    try:
        io.take("answer")
        apps.notify()
        reply = io.wait_for_reply()
        assert reply.has_error() and reply.error.code == ErrorCode.LOAD_CLIENT_APP_EXCEPTION
        assert "runs only cairn.provider.clientapp:app, not 'evil:app'" in reply.error.reason
        assert called == ["evil:app"]  # asked for, refused: nothing of it was imported
    finally:
        apps.stop()
        io.server.stop(None)


def test_only_clientapp_tasks_are_claimed(cairn_fab_io: ClientAppIo) -> None:
    io = cairn_fab_io
    apps = InProcessClientApps(io.address, acting(threading.Event()))
    channel = grpc.insecure_channel(io.address)
    from flwr.proto.clientappio_pb2_grpc import ClientAppIoStub

    stub = ClientAppIoStub(channel)
    assert apps.claim_and_run(stub) == []  # nothing pending
    io.take("answer")
    threads = apps.claim_and_run(stub)
    assert len(threads) == 1
    threads[0].join(timeout=20)
    assert io.replies() and not stub.PullPendingTasks(PullPendingTasksRequest()).tasks
    channel.close()
