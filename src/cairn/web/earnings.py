"""(being built) pages of the earnings area."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
