"""(being built) pages of the playground area."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
