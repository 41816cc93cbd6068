"""Blobs sent as request bodies at once share their uploader's quota and hourly limit while they
arrive: a body counts from its first byte, not once it is stored, so N bodies sent together
cannot each take the whole room left (N times the quota on the node's disk)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cairn.assets.uploads import ChunkRange, MiB, Uploads
from cairn.core.cid import cid_of
from cairn.core.errors import RateLimited
from cairn.node import Node

ME = "0x00000000000000000000000000000000000000a1"
OTHER = "0x00000000000000000000000000000000000000b2"


def uploads_of(node: Node, tmp_path: Path, *, quota: int = 4 * MiB, per_hour: int = 3) -> Uploads:
    return Uploads(
        tmp_path / "uploads",
        node.store,
        node.refs,
        chunk_size=MiB,
        quota=quota,
        per_hour=per_hour,
    )


def test_bodies_arriving_together_share_the_room_left(node: Node, tmp_path: Path) -> None:
    uploads = uploads_of(node, tmp_path)
    first, second = uploads.body_allowance(ME), uploads.body_allowance(ME)
    first.check(3 * MiB)
    with pytest.raises(RateLimited, match=r"leave room for 1 MiB; this upload is 2\+ MiB"):
        second.check(2 * MiB)
    uploads.body_allowance(OTHER).check(4 * MiB)  # another account's room is its own
    first.close()  # abandoned: its bytes no longer count
    second.check(4 * MiB)
    second.close()


def test_a_stored_body_counts_once_and_an_open_upload_counts_against_a_body(
    node: Node, tmp_path: Path
) -> None:
    uploads = uploads_of(node, tmp_path)
    allowance = uploads.body_allowance(ME)
    data = b"x" * MiB
    allowance.check(len(data))
    uploads.store_body(ME, [data])
    allowance.close()
    assert uploads.body_allowance(ME).room == 3 * MiB  # the stored MiB, counted once
    staged, _ = uploads.start(ME, 2 * MiB, cid_of(b"y" * 2 * MiB))
    uploads.write(staged.upload_id, ME, ChunkRange.parse(f"bytes 0-{MiB - 1}/{2 * MiB}"), data)
    with pytest.raises(RateLimited):
        uploads.body_allowance(ME)  # three uploads this hour: stored, open, and this one


def test_bodies_arriving_count_against_the_hourly_limit(node: Node, tmp_path: Path) -> None:
    uploads = uploads_of(node, tmp_path, per_hour=2)
    held = [uploads.body_allowance(ME), uploads.body_allowance(ME)]
    with pytest.raises(RateLimited, match="made 2 uploads in the last hour; the limit is 2"):
        uploads.body_allowance(ME)
    with pytest.raises(RateLimited, match="made 2 uploads in the last hour"):
        uploads.start(ME, 10, cid_of(b"z" * 10))  # the chunked way counts them too
    held[0].close()
    uploads.body_allowance(ME).close()  # a body abandoned is not an upload made
    held[1].close()
