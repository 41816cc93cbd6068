"""(being built) pages of the market area."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
