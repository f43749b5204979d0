"""The web console at ``/ui/``: server-rendered pages over the same roles and services as
the API (issue 6). ``create_app`` mounts ``router``; nothing here runs at import."""

from fastapi import APIRouter

from .routes_auth import router as auth_router
from .routes_ops import router as ops_router
from .routes_register import router as register_router

router = APIRouter(include_in_schema=False)
router.include_router(auth_router)
router.include_router(ops_router)
router.include_router(register_router)

__all__ = ["router"]
