"""Index tables of the assets domain: a queryable mirror of AssetRegistry's on-chain state."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cairn.db.engine import Base


class AssetRow(Base):
    """One registered asset (dataset, model or app), as indexed from AssetRegistry events."""

    __tablename__ = "assets"

    asset_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(16), index=True)
    owner: Mapped[str] = mapped_column(String(42), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    metadata_cid: Mapped[str] = mapped_column(String(128))
    licence: Mapped[str] = mapped_column(String(64))
    parents: Mapped[list[int]] = mapped_column(JSON, default=list)
    split: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    registered_at: Mapped[int] = mapped_column(BigInteger)
    block_number: Mapped[int] = mapped_column(Integer)
    tx_hash: Mapped[str] = mapped_column(String(66))
