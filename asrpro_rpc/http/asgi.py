"""The FastAPI application of the shim: routers, OpenAI-shaped errors, the guard, optional CORS."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from .. import __version__
from . import events, realtime, routes_audio, routes_models
from .errors import install_handlers
from .guard import Guard
from .schemas import components
from .state import ShimState

DESCRIPTION = (
    "OpenAI-compatible speech-to-text on this machine: point an OpenAI SDK's base_url at /v1. "
    "Errors use OpenAI's shape; send `Authorization: Bearer <server.api_token>` when a token is set."
)


def create_app(state: ShimState) -> FastAPI:
    """The ASGI app for one running shim (``state`` carries the services and options)."""
    app = FastAPI(
        title="asrpro-rpc OpenAI-compatible API",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,  # the UI pages load scripts from a CDN: not for an offline, local server
        redoc_url=None,
    )
    app.state.shim = state
    app.include_router(routes_audio.router)
    app.include_router(routes_models.router)
    app.include_router(events.router)
    app.include_router(realtime.router)
    install_handlers(app)
    app.add_middleware(Guard, state=state)
    if state.options.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(state.options.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["authorization", "content-type"],
        )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            document.setdefault("components", {}).setdefault("schemas", {}).update(components())
            document["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
