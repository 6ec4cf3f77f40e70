"""The FastAPI app factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

from argon2 import PasswordHasher
from fastapi import FastAPI

from .. import __version__
from ..config import Settings, load_settings
from ..events import subscribe
from ..typing import Clock, SubjectCheck
from . import errors, openapi
from .background import chores
from .body_limit import BodySizeLimit
from .demo import DemoFiles
from .metrics import Metrics
from .routes import auth, meta, revocations
from .runtime import Runtime, open_runtime
from .shortcut import Shortcut

__all__ = ["create_app"]

MAX_BODY_BYTES = 256 * 1024
"""Bodies over this are refused (413, ``invalid_request``) before they are read whole. Large enough that
an oversized token in a body still reaches the token checks and gets ``token_invalid``."""

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
    """
    settings = runtime.settings if runtime is not None else settings or load_settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        unsubscribe = subscribe(metrics.on_event)
        try:
            if runtime is not None:
                app.state.runtime = runtime
                async with chores(runtime):
                    yield
                return
            opened = await open_runtime(settings, clock=clock, hasher=hasher, subject_check=subject_check)
            app.state.runtime = opened
            try:
                async with chores(opened):
                    yield
            finally:
                await opened.close()
        finally:
            unsubscribe()

    app = FastAPI(
        title="Keyturn",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.metrics = metrics
    errors.install(app)
    openapi.install(app)
    app.include_router(auth.router, prefix=settings.route_prefix)
    app.include_router(revocations.router, prefix=settings.route_prefix)
    app.include_router(meta.router)
    app.mount("/demo", DemoFiles(), name="demo")
    # The hot path straight to its endpoint (shortcut.py). Added before the body size limit, so inside it.
    app.add_middleware(Shortcut, endpoints={("POST", f"{settings.route_prefix}/refresh"): auth.refresh})
    # Our own limit rather than FastAPI's max_body_size: that one answers 413 in plain text, not the
    # error body every caller can rely on.
    app.add_middleware(BodySizeLimit, max_bytes=MAX_BODY_BYTES)
    return app
