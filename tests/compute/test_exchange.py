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
from flwr.supercore.inflatable.inflatable_object import get_object_tree
from flwr.supercore.run import Run
from flwr.superlink.grid.grpc_grid import GrpcGrid

from cairn.compute.exchange import exchange
from cairn.compute.flower_processes import quicken_object_pulls


class HalfPushedLink:
    """The SuperLink's ServerAppIo answers for one stored reply whose arrays never arrive."""

    def __init__(self, reply: Message) -> None:
        self.reply = reply
        self.object_pulls = 0

    def PullMessages(self, request: Any) -> PullAppMessagesResponse:
        if self.reply.metadata.reply_to_message_id not in set(request.message_ids):
            return PullAppMessagesResponse()
        proto = message_to_proto(self.reply)
        proto.metadata.message_id = self.reply.object_id
        return PullAppMessagesResponse(
            messages_list=[proto], message_object_trees=[get_object_tree(self.reply)]
        )

    def PullObject(self, request: Any) -> PullObjectResponse:
        self.object_pulls += 1
        return PullObjectResponse(object_found=True, object_available=False)


class HalfPushedGrid(GrpcGrid):
    """Flower's grid, whose push is already done and whose SuperLink is `HalfPushedLink`."""

    def __init__(self, link: HalfPushedLink) -> None:
        super().__init__(token="t", insecure=True)
        self._channel = object()  # type: ignore[assignment]  # "connected": _stub is the link
        self._grpc_stub = link  # type: ignore[assignment]
        self.set_run(Run.create_empty(run_id=7))

    def push_messages(self, messages: Iterable[Message]) -> list[str]:
        return ["m0"]


def half_pushed_reply() -> Message:
    content = RecordDict({"params": ArrayRecord({"w": torch.ones(4)})})
    reply = Message(content, 2, "train")
    reply.metadata.__dict__["_reply_to_message_id"] = "m0"
    return reply


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
