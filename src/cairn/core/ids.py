"""Ids and offsets that callers send: bounded to what the node can store, so that a path such as
`/assets/99999999999999999999` or `/datasets/-1/anchor` is a 422 that says why, never a crash.

The node keeps assets, offers, bounties, epochs and review tasks in SQLite, whose INTEGER is a
signed 64-bit number; the chain's uint256 ids never grow that far (they count from 1).
"""

from __future__ import annotations

from typing import Annotated

from annotated_types import Interval

MAX_ID = 2**63 - 1  # SQLite's largest INTEGER

# Pydantic and FastAPI read the bound from the annotation alike: a path, query or body field.
StoredId = Annotated[int, Interval(ge=0, le=MAX_ID)]
"""An id of something the node stores: an asset (dataset, model, app), an offer, a bounty, an
epoch, a review task."""

Offset = Annotated[int, Interval(ge=0, le=MAX_ID)]
"""How many rows (or bytes) of a listing to skip."""
