"""Index tables of the chain adapter: how far each event stream has been read."""

from __future__ import annotations

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from cairn.db.engine import Base


class SyncCursor(Base):
    """The last block whose events a named indexer has applied to the index, and its hash
    (None in cursors written before hashes were kept), so a start can tell the chain still
    has that block."""

    __tablename__ = "chain_sync"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_block: Mapped[int] = mapped_column(Integer)
    block_hash: Mapped[str | None] = mapped_column(String(66), nullable=True)
