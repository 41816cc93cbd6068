"""A SuperNode that no ClientApp can wedge: every message it takes is answered or let go.

Flower 1.32's SuperNode handles one message at a time. After pulling one it waits in
`_push_messages` (`flwr.supernode.start_client_internal`), with no time limit, for a reply in
its node state, then, in the same call, for each object of that reply. A reply comes from the
message's ClientApp task over the ClientAppIo API (a thread of the provider host, see below, or
a `flwr-clientapp` process under Flower's own SuperExec), or from the node state itself when that task's token expires: a RUNNING task
with no heartbeat for 60 s is marked FAILED and each message it pulled gets a "ClientApp stopped
responding" error reply (`InMemoryCoreState._cleanup_expired_task_tokens_locked` calls
`InMemoryNodeState._on_task_tokens_expired`, which calls `_store_error_replies`).

Any other end of a task leaves the SuperNode waiting for good: a ClientApp that ends its task
(`PushTaskOutput`) without a reply, as one does whose calls came back UNAUTHENTICATED, and may
then block in its exit path; the SuperNode failing the task itself when pulling the message's
objects from a restarting SuperLink fails (it deletes the message and still waits for a reply);
a ClientApp that pushed a reply's message but not all its objects. A ClientApp that hangs while
its heartbeat thread runs holds it too, expiry never comes.

The rule that ends every one: a reply, or an object of one, can only come from a ClientApp whose
task is not over. ClientAppIo refuses `PushMessages` and `PushObject` without a valid task token
(`flwr.supercore.auth.policy`), and a token is revoked for good when its task finishes
(`finish_task`) or expires. So once no ClientApp task is open and still no reply is stored,
looked at in that order, none will come: the guard answers each message a ClientApp had taken as
Flower does for a crashed one and lets the SuperNode send that; with nothing to answer for, it
lets the SuperNode take the next message. No timing decides this, only the state. The one time
limit is the message's own: past `created_at + ttl` the SuperLink takes no reply to it, so the
guard fails the task still open on it, and the rule takes over.

The provider host runs its ClientApps in threads of its own process (`cairn.provider.appexec`),
so there is no `flwr-clientapp` process to reap: a ClientApp thread that hangs keeps its task
open, with its heartbeat, until its message expires; the rule above then answers for it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from flwr.app import Message
from flwr.common.constant import Status, SubStatus
from flwr.proto.task_pb2 import Task
from flwr.supercore.constant import TaskType
from flwr.supercore.object_store import ObjectStore
from flwr.supernode.nodestate import InMemoryNodeState, NodeState

OPEN = [Status.PENDING, Status.STARTING, Status.RUNNING]

log = logging.getLogger("cairn.provider.watchdog")


class NoReplyComing(Exception):
    """No ClientApp can answer the message the SuperNode waits on, and none is left to answer."""


class ReplyLost(Exception):
    """An object of the reply being sent will never come: the ClientApp's task is over."""


def open_tasks(state: NodeState) -> list[Task]:
    """The ClientApp tasks not over yet: the only ones that can still push a reply."""
    return [t for t in state.get_tasks(statuses=OPEN) if t.type == TaskType.CLIENT_APP]


class ClientAppGuard:
    """Wraps one SuperNode's loop (`install`) so that no ClientApp task can wedge it."""

    def __init__(self) -> None:
        self.state: InMemoryNodeState | None = None  # the SuperNode's, once it made it
        self.deadline: float | None = None  # when the message in hand expires (epoch seconds)

    def install(self, loop: ModuleType) -> None:
        """Wrap three steps of Flower's SuperNode loop (`loop`), for this process only."""
        names = ("run_clientappio_api_grpc", "_pull_and_store_message", "_push_messages")
        if not all(callable(getattr(loop, n, None)) for n in names) or not hasattr(
            InMemoryNodeState, "_store_error_replies"
        ):
            raise RuntimeError(
                f"{loop.__name__} no longer has the steps the guard wraps: check flwr"
            )
        serve, pull, push = (getattr(loop, n) for n in names)

        def serve_clientappio(**kwargs: Any) -> Any:
            server = serve(**kwargs)
            state = kwargs["state_factory"].state()
            if not isinstance(state, InMemoryNodeState):
                raise RuntimeError(f"the SuperNode keeps its state in a {type(state).__name__}")
            self.state = state
            return server

        def pull_and_store(**kwargs: Any) -> int | None:
            receive = kwargs["receive"]
            self.deadline = None

            def receiving() -> Any:
                got = receive()
                if got is not None:
                    self.deadline = got[0].metadata.created_at + got[0].metadata.ttl
                return got

            result: int | None = pull(**{**kwargs, "receive": receiving})
            return result

        def push_messages(**kwargs: Any) -> None:
            state = kwargs["state"]
            guarded = {"state": _Replies(state, self), "object_store": _Objects(kwargs, self)}
            try:
                push(**{**kwargs, **guarded})
            except NoReplyComing as exc:
                log.warning("%s: taking the next message", exc)

        loop.run_clientappio_api_grpc = serve_clientappio  # type: ignore[attr-defined]
        loop._pull_and_store_message = pull_and_store  # type: ignore[attr-defined]
        loop._push_messages = push_messages  # type: ignore[attr-defined]

    # -- the reply the SuperNode waits for --------------------------------------------------

    def expire(self, state: NodeState) -> None:
        """Fail the tasks still open on a message past its ttl: no reply to it is taken now."""
        if self.deadline is None or time.time() < self.deadline:
            return
        for task in open_tasks(state):
            if state.finish_task(task.task_id, SubStatus.FAILED, "its message expired"):
                log.warning("ClientApp task %d: its message expired unanswered", task.task_id)

    def replies_for_the_stuck(self, state: InMemoryNodeState) -> Sequence[Message]:
        """With no reply stored: the replies to send now, or none while a ClientApp may answer.

        Raises `NoReplyComing` when no ClientApp can answer and no message is left to answer.
        """
        self.expire(state)
        if open_tasks(state):
            return []
        if replies := state.get_messages(is_reply=True):  # pushed just before its task ended
            return replies
        state.get_messages(is_reply=False)  # a message no ClientApp took is answered too
        runs = {task.run_id for task in state.get_tasks()}
        state._store_error_replies(runs)  # Flower's own answer for a crashed ClientApp
        if replies := state.get_messages(is_reply=True):
            log.warning("no ClientApp can answer: sending %d error reply(ies)", len(replies))
            return replies
        raise NoReplyComing("no ClientApp can answer and no message is left to answer")


class _Replies:
    """The node state as `_push_messages` sees it: looking for a reply asks the guard too."""

    def __init__(self, state: InMemoryNodeState, guard: ClientAppGuard) -> None:
        self._state = state
        self._guard = guard

    def get_messages(self, *, is_reply: bool | None = None, **kwargs: Any) -> Sequence[Message]:
        found = self._state.get_messages(is_reply=is_reply, **kwargs)
        if is_reply and not found and not kwargs:
            return self._guard.replies_for_the_stuck(self._state)
        return found

    def __getattr__(self, name: str) -> Any:
        return getattr(self._state, name)


class _Objects:
    """The object store as `_push_messages` sees it: an object that cannot come raises."""

    def __init__(self, kwargs: dict[str, Any], guard: ClientAppGuard) -> None:
        self._store: ObjectStore = kwargs["object_store"]
        self._state: NodeState = kwargs["state"]
        self._guard = guard

    def get(self, object_id: str) -> bytes | None:
        content = self._store.get(object_id)
        if content == b"":  # registered, not pushed yet
            self._guard.expire(self._state)
            if not open_tasks(self._state) and (content := self._store.get(object_id)) == b"":
                raise ReplyLost(f"object {object_id} of the reply will not come: its task is over")
        return content

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)
