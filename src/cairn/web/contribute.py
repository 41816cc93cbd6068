"""(being built) pages of the contribute area."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
