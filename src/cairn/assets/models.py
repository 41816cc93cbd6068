"""Index tables of the assets domain: a queryable mirror of AssetRegistry's on-chain state."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Float, Integer, String, Text, UniqueConstraint
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


class BlobRefRow(Base):
    """Something a stored blob belongs to: who may read it follows from its references."""

    __tablename__ = "blob_refs"
    __table_args__ = (UniqueConstraint("cid", "scope", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    cid: Mapped[str] = mapped_column(String(128), index=True)
    scope: Mapped[str] = mapped_column(String(16))  # cairn.assets.content.Scope
    key: Mapped[str] = mapped_column(String(80), default="")  # asset id, job id or uploader
    account: Mapped[str | None] = mapped_column(String(42), nullable=True, index=True)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[float] = mapped_column(Float)
