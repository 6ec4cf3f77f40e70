"""The FastAPI app factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

from argon2 import PasswordHasher
from fastapi import FastAPI

from .. import __version__
from ..config import Settings
from ..typing import Clock, SubjectCheck
from . import errors, openapi
from .body_limit import BodySizeLimit
from .demo import DemoFiles
from .embed import MAX_BODY_BYTES, Keyturn
from .front import Service
from .routes import meta
from .runtime import Runtime

__all__ = ["create_app"]

DESCRIPTION = """Keyturn's token service: login, refresh-token rotation with a grace period and reuse
detection, logout and revocation, and the JWKS that resource servers verify access tokens with.

Every error has the body `{"error", "error_description", "retryable"}`; see the README's error table."""


def create_app(
    settings: Settings | None = None,
    *,
    runtime: Runtime | None = None,
    clock: Clock | None = None,
    hasher: PasswordHasher | None = None,
    subject_check: SubjectCheck | Literal["users"] | None = "users",
) -> FastAPI:
    """The token service as an ASGI app.

    With ``runtime`` the app serves it as it is (and leaves closing it to the caller); otherwise the app
    opens one from ``settings`` (default: from the environment) when it starts and closes it when it stops.
    Either way it runs the periodic chores (key reload, pruning) while it serves. ``subject_check`` is
    asked on every refresh whether a subject may still hold a session: by default the built-in user
    store; an application whose users live elsewhere passes its own check, or ``None`` for none.

    ``POST {prefix}/refresh`` is answered in front of the app's layers (``front.py``) while the app has
    no middleware but its own; one added to it sees every call, the refresh too.

    The session routes are a :class:`~keyturn.server.embed.Keyturn` whose login is the built-in user
    store, the same routes ``keyturn.fastapi.install`` puts in an application.
    """
    keyturn = Keyturn(
        settings, users=True, subject_check=subject_check, runtime=runtime, clock=clock, hasher=hasher
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.runtime = keyturn.runtime  # opened by keyturn's part of the lifespan, around this one
        yield

    app = Service(
        title="Keyturn",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs" if keyturn.settings.docs else None,
        redoc_url=None,
    )
    app.state.metrics = keyturn.metrics
    errors.install(app)
    openapi.install(app)
    keyturn.install(app, limit_bodies=False)
    app.include_router(meta.router)
    if keyturn.settings.metrics:
        app.include_router(meta.metrics_router)
    if keyturn.settings.demo:
        app.mount("/demo", DemoFiles(), name="demo")
    # Our own limit rather than FastAPI's max_body_size: that one answers 413 in plain text, not the
    # error body every caller can rely on. Added after keyturn's hot path, so around it (the app, a Service,
    # answers the hot path in front of both, with this same limit: front.py).
    app.add_middleware(BodySizeLimit, max_bytes=MAX_BODY_BYTES)
    app.allow_origins(keyturn.settings.cors_origins)  # outermost: in front of the layers above (front.py)
    return app
