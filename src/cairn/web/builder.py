"""(being built) pages of the builder area."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
