"""Send a round's messages over a Flower grid and gather the replies that come in time.

Flower's SuperLink hands out a reply as soon as its message is stored, before the sender has
pushed the message's objects (its arrays), and the grid then pulls those objects, retrying for
up to Flower's limit of 2 hours. A provider that dies between the two pushes, or one that never
pushes its arrays, would hold the whole job that long. Here every pull is bounded by the round's
deadline (plus `PULL_GRACE` for arrays still on their way), and a reply whose arrays do not come
counts as no reply: its worker drops out of the round.
"""

from __future__ import annotations

import logging
import time

from flwr.app import Message
from flwr.common.constant import ErrorCode
from flwr.serverapp import Grid

from cairn.compute.flower_processes import object_pulls_within

log = logging.getLogger("cairn.coordinator")
REPLY_POLL = 0.1  # between looks for replies (Flower's own `send_and_receive` waits 3 s)
PULL_GRACE = 5.0  # seconds past the deadline for the arrays of a reply that came in time


def exchange(
    grid: Grid,
    messages: list[Message],
    timeout: float,
    poll: float = REPLY_POLL,
    grace: float = PULL_GRACE,
) -> list[Message]:
    """Send `messages` and gather the replies that come within `timeout` seconds.

    `Grid.send_and_receive` does the same but looks for replies every 3 s, which a round of a
    small model would mostly spend waiting, and waits on a half-pushed reply for hours. A
    reply that came in time gets `grace` seconds more for its arrays.
    """
    waiting = set(grid.push_messages(messages))
    deadline = time.monotonic() + timeout
    replies: list[Message] = []
    last_look = False
    while waiting:
        with object_pulls_within(max(deadline - time.monotonic(), 0.0) + grace):
            pulled = grid.pull_messages(waiting)
        for reply in pulled:
            waiting.discard(reply.metadata.reply_to_message_id)
            if reply.has_error() and reply.error.code == ErrorCode.MESSAGE_UNAVAILABLE:
                # Flower's stand-in for a reply whose arrays never came; it names the grid, not
                # the worker, and the SuperLink has already let the reply go
                log.warning("a reply's arrays did not come: %s", reply.error.reason)
                continue
            replies.append(reply)
        if not waiting or last_look:
            break
        if time.monotonic() >= deadline:
            # one more look: a pull that waited on one reply's arrays may have outlasted the
            # deadline while other replies came in whole
            last_look = True
            continue
        time.sleep(poll)
    return replies
