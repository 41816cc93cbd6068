"""Cairn's ClientApp, run inside the provider's own process: no process started per message.

Flower 1.32's SuperNode, in its default `subprocess` isolation, starts a `flower-superexec`
that looks for new ClientApp tasks once a second and starts a `flwr-clientapp` process for
each: a Python start and Flower's and Cairn's imports (2.5-3.7 s on a 2-core machine), then
the FAB unpacked under `~/.flwr`, on every message, next to a second of training for a small
model. `cairn.provider.host` runs the SuperNode with `--isolation process` instead, and this
executor takes that SuperExec's place inside the host process:

- it wakes when the SuperNode has stored a message (`notify`, called by the host right after
  the SuperNode's pull), and otherwise looks every `FALLBACK_POLL` seconds;
- it claims each pending ClientApp task over the SuperNode's ClientAppIo API exactly as
  `flower-superexec` does, and runs the task as `flwr-clientapp` would, with the task's own
  token and heartbeat, so the SuperNode's task states, expiry and the hang guard
  (`cairn.provider.watchdog`) see no difference;
- it runs only Cairn's ClientApp (`cairn.provider.clientapp:app`, already imported): a FAB
  that names another is refused with an error reply, and nothing is installed.

The ClientApp then hands a round to the resident trainer in this same process
(`cairn.provider.trainer.train_remotely` finds it without a socket round trip).

Flower's own client helpers are not used for the calls: its gRPC retry policy and its task
heartbeat answer a refused token with SIGINT to their own process, which is right for a
`flwr-clientapp` and would stop this whole provider. Here a refused call ends that task's thread
only (its task is over: the SuperNode has answered for it), and nothing is retried but the look
for tasks.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import grpc
from flwr.app import Context, Message
from flwr.app.error import Error
from flwr.common.config import get_fab_config
from flwr.common.constant import (
    HEARTBEAT_CALL_TIMEOUT,
    HEARTBEAT_DEFAULT_INTERVAL,
    ErrorCode,
    SubStatus,
)
from flwr.proto.appio_pb2 import (
    ClaimTaskRequest,
    PullPendingTasksRequest,
    SendTaskHeartbeatRequest,
)
from flwr.proto.clientappio_pb2_grpc import ClientAppIoStub
from flwr.supercore.constant import TaskType
from flwr.supercore.grpc import create_channel
from flwr.supercore.interceptors import (
    AppIoTokenClientInterceptor,
    RuntimeVersionClientInterceptor,
)
from flwr.supernode.runtime.run_clientapp import pull_task_input, push_message, push_task_output

CAIRN_CLIENTAPP = "cairn.provider.clientapp:app"
FALLBACK_POLL = 1.0  # seconds between looks for tasks when no wake-up came (Flower's own rate)
# A task's heartbeat, as flwr-clientapp sends it (the SuperNode fails a task silent for 60 s).
HEARTBEAT_EVERY = 0.8 * (HEARTBEAT_DEFAULT_INTERVAL - HEARTBEAT_CALL_TIMEOUT)

log = logging.getLogger("cairn.provider.appexec")


class ForeignApp(Exception):
    """The run's FAB names a ClientApp other than Cairn's."""


def fab_clientapp(fab_content: bytes) -> str:
    """The ClientApp a FAB names (`[tool.flwr.app.components] clientapp`)."""
    config = get_fab_config(fab_content)
    return str(config["tool"]["flwr"]["app"]["components"]["clientapp"])


class InProcessClientApps:
    """Claims the SuperNode's ClientApp tasks and runs each in a thread of this process."""

    def __init__(
        self,
        appio_address: str,
        app_for: Callable[[str], Callable[[Message, Context], Message]] | None = None,
        fallback_poll: float = FALLBACK_POLL,
    ) -> None:
        self.appio_address = appio_address
        self.app_for = app_for or cairn_app
        self.fallback_poll = fallback_poll
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._channel: grpc.Channel | None = None
        self.tasks_run = 0

    def notify(self) -> None:
        """A message was stored: look for its task now."""
        self._wake.set()

    def start(self) -> InProcessClientApps:
        self._thread = threading.Thread(target=self._loop, name="cairn-clientapps", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._channel is not None:
            self._channel.close()

    def _stub(self) -> ClientAppIoStub:
        self._channel = create_channel(
            server_address=self.appio_address,
            insecure=True,
            interceptors=[RuntimeVersionClientInterceptor(component_name="SuperExec")],
        )
        return ClientAppIoStub(self._channel)

    def _loop(self) -> None:
        stub = self._stub()
        while not self._stop.is_set():
            self._wake.wait(self.fallback_poll)
            self._wake.clear()
            try:
                self.claim_and_run(stub)
            except grpc.RpcError as exc:  # the SuperNode is stopping or restarting
                log.warning("looking for ClientApp tasks failed: %s", exc.code())

    def claim_and_run(self, stub: ClientAppIoStub) -> list[threading.Thread]:
        """Claim every pending ClientApp task and start it; the threads started."""
        started = []
        for task in stub.PullPendingTasks(PullPendingTasksRequest()).tasks:
            if task.type != TaskType.CLIENT_APP:
                continue
            token = stub.ClaimTask(ClaimTaskRequest(task_id=task.task_id)).token
            if not token:  # claimed by someone else in between
                continue
            thread = threading.Thread(
                target=self.run_task, args=(token,), name=f"cairn-clientapp-{task.task_id}"
            )
            thread.start()
            started.append(thread)
        return started

    def run_task(self, token: str) -> None:
        """One task, as `flwr-clientapp --token` runs it (Flower's own pull and push calls)."""
        channel = create_channel(
            server_address=self.appio_address,
            insecure=True,
            interceptors=[
                RuntimeVersionClientInterceptor(component_name="flwr-clientapp"),
                AppIoTokenClientInterceptor(token),
            ],
        )
        stub = ClientAppIoStub(channel)
        beating = threading.Event()
        heart = threading.Thread(target=_heartbeat, args=(stub, beating), daemon=True)
        message: Message | None = None
        reply: Message | None = None
        context: Context | None = None
        status, details = SubStatus.FAILED, "ClientApp task failed due to unknown reason"
        try:
            heart.start()
            message, context, _run, fab = pull_task_input(stub)
            name = fab_clientapp(fab.content)
            reply = self.app_for(name)(message, context)
            status, details = SubStatus.COMPLETED, ""
        except grpc.RpcError as exc:  # the task ended under it (expired, or the node stopping)
            log.warning("ClientApp task ended before it was done: %s", exc.code())
            return
        except Exception as exc:  # the reply says why, as Flower's ClientApp process does
            code = ErrorCode.CLIENT_APP_RAISED_EXCEPTION
            if isinstance(exc, ForeignApp):
                code = ErrorCode.LOAD_CLIENT_APP_EXCEPTION
                log.warning("%s", exc)
            else:
                log.exception("the ClientApp raised")
            reason = f"{type(exc)}:<'{exc}'>"
            if message is not None:
                reply = Message(Error(code=code, reason=reason), reply_to=message)
            details = reason
        finally:
            beating.set()
            self.tasks_run += 1
        try:
            if reply is not None and context is not None:
                push_message(stub, reply, context)
            push_task_output(stub, context, status, details)
        except grpc.RpcError as exc:  # its task is over (it expired meanwhile): nothing to do
            log.warning("the ClientApp's reply was refused: %s", exc.code())
        finally:
            channel.close()


def _heartbeat(stub: ClientAppIoStub, stop: threading.Event) -> None:
    """Keep a task alive until `stop`, or until its token is refused (its task is over)."""
    while not stop.wait(HEARTBEAT_EVERY):
        try:
            if not stub.SendTaskHeartbeat(
                SendTaskHeartbeatRequest(), timeout=HEARTBEAT_CALL_TIMEOUT
            ).success:
                return
        except grpc.RpcError as exc:
            if exc.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                return


def cairn_app(name: str) -> Callable[[Message, Context], Message]:
    """Cairn's ClientApp when `name` is it; any other is refused (nothing foreign runs here)."""
    if name != CAIRN_CLIENTAPP:
        raise ForeignApp(f"this provider runs only {CAIRN_CLIENTAPP}, not {name!r}")
    from cairn.provider.clientapp import app

    return app
