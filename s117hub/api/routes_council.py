"""Routes for council (being built: see issue 3)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
