"""How much one request body may carry (`POST /blobs`): the room the uploader's quota leaves,
and never more than `MAX_BODY`; over it, the refusal says which of the two it passed."""

from __future__ import annotations

import pytest

from cairn.assets.uploads import MAX_BODY, BodyAllowance, MiB
from cairn.core.errors import InvalidInput, RateLimited

ME = "0x00000000000000000000000000000000000000A1"


def test_a_body_within_the_room_left_is_taken() -> None:
    allowance = BodyAllowance(ME, room=3 * MiB)
    assert allowance.limit == 3 * MiB
    allowance.check(3 * MiB)  # exactly the room: taken


def test_a_body_over_the_room_left_is_refused_as_over_the_quota() -> None:
    with pytest.raises(RateLimited, match=r"leave room for 3 MiB; this upload is 3\+ MiB"):
        BodyAllowance(ME, room=3 * MiB).check(3 * MiB + 1)
    with pytest.raises(RateLimited, match="leave room for 0 MiB"):  # over the quota already
        BodyAllowance(ME, room=-MiB).check(0)


def test_a_body_over_the_single_request_limit_is_refused_as_too_large() -> None:
    allowance = BodyAllowance(ME, room=10 * MAX_BODY)
    assert allowance.limit == MAX_BODY
    allowance.check(MAX_BODY)
    with pytest.raises(InvalidInput, match=f"upload exceeds {MAX_BODY} bytes"):
        allowance.check(MAX_BODY + 1)
