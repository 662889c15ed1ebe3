"""``POST /admin/reload``: an operator (or a refresh job) tells a running server to look at its store now.

The endpoint exists only when ``$SITETUNE_ADMIN_TOKEN`` is set (otherwise it answers 404 like any unknown
path, and is not in the OpenAPI document). A request must carry ``Authorization: Bearer <token>``;
without one it gets 401, with another token 403. Tokens are compared in constant time.
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoint signature at run time.

import hmac

from fastapi import FastAPI, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from sitetune.serve.reload import StoreFollower, admin_token
from sitetune.serve.schemas import ErrorResponse


class ReloadResponse(BaseModel):
    """What a reload did.

    Attributes:
        generation: The generation served now.
        switched: Whether this request swapped a new generation in.
        error: Why the generation ``CURRENT`` names is not served, if it is not (the old one still is).
    """

    generation: int | None
    switched: bool
    error: str | None


def add_reload_endpoint(app: FastAPI, follower: StoreFollower, token: str | None = None) -> None:
    """Add ``POST /admin/reload`` to ``app`` (see the module docstring).

    Args:
        app: The server's app.
        follower: What the endpoint asks to reload.
        token: The token required; default ``$SITETUNE_ADMIN_TOKEN`` (unset or empty: the endpoint is 404).
    """
    token = token if token is not None else admin_token()
    expected = token.encode("utf-8") if token else None

    @app.post(
        "/admin/reload",
        response_model=ReloadResponse,
        tags=["service"],
        include_in_schema=expected is not None,
        responses={
            401: {"model": ErrorResponse, "description": "No bearer token sent"},
            403: {"model": ErrorResponse, "description": "Wrong token"},
        },
    )
    async def reload(request: Request) -> ReloadResponse:
        """Look at the store's ``CURRENT`` now and switch to a new generation (requires the admin token)."""
        if expected is None:
            raise StarletteHTTPException(404, "Not Found")
        scheme, _, sent = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not sent.strip():
            raise StarletteHTTPException(
                401, "send the admin token: Authorization: Bearer <token>", headers={"WWW-Authenticate": "Bearer"}
            )
        if not hmac.compare_digest(sent.strip().encode("utf-8"), expected):
            raise StarletteHTTPException(403, "wrong admin token")
        outcome = await run_in_threadpool(follower.reload, retry_failed=True)
        if follower.on_admin_reload is not None:
            follower.on_admin_reload()
        return ReloadResponse(generation=outcome.generation, switched=outcome.switched, error=outcome.error)
