"""Where the index stands on the chain, and the check at start that the chain still has it.

The index is a cache of the chain plus off-chain records. Each indexer (assets, deposits,
licence sales) keeps a cursor: the number and hash of the last block whose events it applied.
The node's own transactions keep one more, `transactions`: the newest block holding one of
them, moved by each receipt. At start `check_cursors` asks the chain for each cursor's block.
A chain without that block, or with another block at that number, has lost blocks the index
has seen (anvil's state file rolled back or overwritten, anvil killed before it saved them):
the node refuses to start rather than serve assets, balances and records the chain no longer
has. A matching hash vouches for every block before it (each block commits to its parent's
hash), so one look per cursor re-checks every indexed asset and every credited deposit.
"""

from __future__ import annotations

from hexbytes import HexBytes
from sqlalchemy import delete, select
from sqlalchemy.orm import Session
from web3.types import TxReceipt

from cairn.chain.client import ChainClient
from cairn.chain.models import SyncCursor
from cairn.core.errors import ConfigError
from cairn.db.engine import Database

TRANSACTIONS = "transactions"  # the cursor of the node's own transactions


def start_block(session: Session, name: str, default: int) -> int:
    """The first block indexer `name` has not read (`default` before it has read any)."""
    cursor = session.get(SyncCursor, name)
    return cursor.last_block + 1 if cursor is not None else default


def advance(session: Session, name: str, number: int, block_hash: str | None) -> None:
    """Record that indexer `name` has applied every block up to `number` (hash `block_hash`)."""
    cursor = session.get(SyncCursor, name)
    if cursor is None:
        session.add(SyncCursor(name=name, last_block=number, block_hash=block_hash))
    else:
        cursor.last_block, cursor.block_hash = number, block_hash


def record_transaction(db: Database, receipt: TxReceipt) -> None:
    """Move the `transactions` cursor to the block of `receipt`, if that block is newer."""
    number = int(receipt["blockNumber"])
    with db.session() as session:
        cursor = session.get(SyncCursor, TRANSACTIONS)
        if cursor is None or cursor.last_block < number:
            advance(session, TRANSACTIONS, number, HexBytes(receipt["blockHash"]).to_0x_hex())


def forget_cursors(db: Database) -> None:
    """Forget every cursor: the chain behind the index was replaced by a new one."""
    with db.session() as session:
        session.execute(delete(SyncCursor))


def check_cursors(db: Database, client: ChainClient) -> None:
    """Raise `ConfigError` if the chain lacks a block a cursor has read (see the module)."""
    with db.session() as session:
        cursors = session.scalars(select(SyncCursor).order_by(SyncCursor.last_block.desc())).all()
    head = client.block_number()
    for cursor in cursors:
        number = cursor.last_block
        found = client.block_hash(number) if number <= head else None
        if found is not None and cursor.block_hash in (None, found):
            continue  # a cursor from before hashes were kept can only be checked by number
        there = f"has another block there ({found})" if found else f"ends at block {head}"
        raise ConfigError(
            f"{client.backend.description} does not have what this node's index has read: "
            f"the index's {cursor.name!r} cursor is at block {number} "
            f"({cursor.block_hash or 'hash not kept'}), but the chain {there}. Blocks the index "
            "relies on are gone (a chain state rolled back or overwritten, or anvil killed "
            "before it saved them), so the node will not start on a mixed state. Put back the "
            f"chain state that belongs with the index ({db.url}), or move the index aside to "
            "rebuild it from the chain: assets, deposits and licence sales come back; what only "
            "the index keeps (prepaid spending, receipts, dataset records) does not"
        )
