"""The sliding-window limit: exact counts at the window's edge, per key, and the error's advice."""

from __future__ import annotations

import pytest

from cairn.core.errors import RateLimited
from cairn.core.ratelimit import SlidingWindow


def test_a_window_admits_its_limit_then_refuses_until_the_oldest_event_leaves() -> None:
    window = SlidingWindow(3, 60.0, "free calls")
    for t in (0.0, 10.0, 20.0):
        window.admit("k", t, who="key k")
    with pytest.raises(RateLimited, match=r"3 free calls in the last 60 s.*retry in 30 s"):
        window.admit("k", 30.0, who="key k")
    window.admit("other", 30.0, who="key other")  # each key has its own window
    window.admit("k", 60.0, who="key k")  # the event at 0 s has left the window
    with pytest.raises(RateLimited):
        window.admit("k", 61.0, who="key k")


def test_a_zero_limit_admits_everything() -> None:
    window = SlidingWindow(0, 60.0, "free calls")
    for t in range(1000):
        window.admit("k", float(t) / 1000, who="k")


def test_free_calls_are_limited_per_key_and_per_account(make_node) -> None:  # type: ignore[no-untyped-def]
    node = make_node(free_calls_per_minute=2)
    meter, keys = node.economy.meter, node.economy.keys
    alice = node.keystore.find_by_label("alice").address
    bob = node.keystore.find_by_label("bob").address
    first = keys.for_pages(alice)
    for _ in range(2):
        meter.abort(meter.open(first, 999, "chat", 16))
    with pytest.raises(RateLimited, match="API key"):
        meter.open(first, 999, "chat", 16)
    second, _secret = keys.create(alice, "another")
    with pytest.raises(RateLimited, match=alice):  # a new key does not lift the account's limit
        meter.open(second, 999, "chat", 16)
    meter.abort(meter.open(keys.for_pages(bob), 999, "chat", 16))
