"""The web console at ``/ui/``: server-rendered pages over the same roles and services as
the API (issue 6). ``create_app`` mounts ``router``; nothing here runs at import."""

from fastapi import APIRouter, Request
from starlette.routing import BaseRoute, Match

from register_core.domain.errors import NotFound

from .routes_auth import router as auth_router
from .routes_ops import router as ops_router
from .routes_register import router as register_router
from .web import ConsoleRoute, Refused

router = APIRouter(include_in_schema=False)
router.include_router(auth_router)
router.include_router(ops_router)
router.include_router(register_router)
# Last, so it matches only what no page does: a console 404 page, not the API's JSON one.
_PAGES: list[BaseRoute] = [*auth_router.routes, *ops_router.routes, *register_router.routes]
_unknown = APIRouter(route_class=ConsoleRoute, include_in_schema=False)


@_unknown.get("/ui/{rest:path}")
def unknown_page(request: Request, rest: str) -> None:
    # A page that exists for another method (GET /ui/logout) keeps its 405.
    for route in _PAGES:
        if route.matches(request.scope)[0] != Match.NONE:
            raise Refused(405, "This address takes a form post, not a link.")
    raise NotFound("There is no console page at this address.")


router.include_router(_unknown)

__all__ = ["router"]
