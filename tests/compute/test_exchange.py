"""A reply whose arrays never come costs the round its deadline, not Flower's 2 hours.

The grid is Flower's own `GrpcGrid`, pulling through its own `pull_messages`; only the SuperLink
behind it is a stand-in, answering as Flower's does for a reply whose sender stored the message
and died before pushing its objects: the message and its object tree, then "not available" for
every object.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import torch
from flwr.app import ArrayRecord, Message, RecordDict
from flwr.common.serde import message_to_proto
from flwr.proto.appio_pb2 import PullAppMessagesResponse
from flwr.proto.message_pb2 import PullObjectResponse
from flwr.supercore.inflatable import inflatable_utils
from flwr.supercore.inflatable.inflatable_object import get_all_nested_objects, get_object_tree
from flwr.supercore.run import Run
from flwr.superlink.grid.grpc_grid import GrpcGrid

from cairn.compute.exchange import exchange
from cairn.compute.flower_processes import quicken_object_pulls


class HalfPushedLink:
    """The SuperLink's ServerAppIo answers for one stored reply whose arrays never arrive, and
    for whole replies stored `after` seconds after the first pull."""

    def __init__(self, reply: Message, whole: list[Message] = (), after: float = 0.0) -> None:  # type: ignore[assignment]
        self.reply, self.whole, self.after = reply, list(whole), after
        self.started: float | None = None
        self.objects = {
            object_id: obj.deflate()
            for message in self.whole
            for object_id, obj in get_all_nested_objects(message).items()
        }
        self.object_pulls = 0

    def PullMessages(self, request: Any) -> PullAppMessagesResponse:
        self.started = self.started or time.monotonic()
        stored = [self.reply] + (
            self.whole if time.monotonic() - self.started >= self.after else []
        )
        found = [m for m in stored if m.metadata.reply_to_message_id in set(request.message_ids)]
        protos = []
        for message in found:
            proto = message_to_proto(message)
            proto.metadata.message_id = message.object_id
            protos.append(proto)
        return PullAppMessagesResponse(
            messages_list=protos, message_object_trees=[get_object_tree(m) for m in found]
        )

    def PullObject(self, request: Any) -> PullObjectResponse:
        self.object_pulls += 1
        content = self.objects.get(request.object_id)
        if content is None:  # the half-pushed reply's: never there
            return PullObjectResponse(object_found=True, object_available=False)
        return PullObjectResponse(object_found=True, object_available=True, object_content=content)

    def ConfirmMessageReceived(self, request: Any) -> None:
        pass


class HalfPushedGrid(GrpcGrid):
    """Flower's grid, whose push is already done and whose SuperLink is `HalfPushedLink`."""

    def __init__(self, link: HalfPushedLink) -> None:
        super().__init__(token="t", insecure=True)
        self._channel = object()  # type: ignore[assignment]  # "connected": _stub is the link
        self._grpc_stub = link  # type: ignore[assignment]
        self.set_run(Run.create_empty(run_id=7))

    def push_messages(self, messages: Iterable[Message]) -> list[str]:
        return [f"m{i}" for i, _ in enumerate(messages)]


def reply_to(message_id: str, node_id: int, value: float = 1.0) -> Message:
    content = RecordDict({"params": ArrayRecord({"w": torch.full((4,), value)})})
    reply = Message(content, node_id, "train")
    reply.metadata.__dict__["_reply_to_message_id"] = message_id
    return reply


def half_pushed_reply() -> Message:
    return reply_to("m0", 2)


def test_a_reply_whose_arrays_never_come_is_dropped_at_the_deadline() -> None:
    quicken_object_pulls()  # as the ServerApp does
    link = HalfPushedLink(half_pushed_reply())
    before = dict(inflatable_utils.pull_objects.__kwdefaults__ or {})
    started = time.monotonic()
    replies = exchange(HalfPushedGrid(link), [half_pushed_reply()], timeout=0.5, grace=0.5)
    took = time.monotonic() - started
    assert replies == []  # no reply: the worker drops out of the round
    assert link.object_pulls > 1  # the grid did wait for the arrays, for a while
    assert took < 0.5 + 0.5 + 2.0, took  # not Flower's 2 h
    assert inflatable_utils.pull_objects.__kwdefaults__ == before  # the limit is put back


def test_a_whole_reply_that_came_while_another_held_the_pull_is_still_taken() -> None:
    """A half-pushed reply holds the pull past the deadline; one that came whole meanwhile is
    looked for once more, not dropped with it (a fresh-clone run lost a live worker so)."""
    quicken_object_pulls()
    whole = reply_to("m1", 3, value=2.0)
    link = HalfPushedLink(half_pushed_reply(), [whole], after=0.2)
    messages = [half_pushed_reply(), reply_to("x", 3)]
    replies = exchange(HalfPushedGrid(link), messages, timeout=0.5, grace=0.5)
    [taken] = replies
    assert taken.metadata.reply_to_message_id == "m1"
    assert torch.equal(taken.content["params"].to_torch_state_dict()["w"], torch.full((4,), 2.0))
