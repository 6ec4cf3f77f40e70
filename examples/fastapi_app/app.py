"""The application: its own login fields (email and password), roles as a claim, protected routes.

``create_app()`` is what uvicorn serves (``--factory``); ``python -m examples.fastapi_app serve`` does it.
"""

# No "from __future__ import annotations": FastAPI reads the routes' annotations, some of them local.
import os
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from keyturn import fastapi as keyturn
from keyturn.config import Settings
from keyturn.errors import InsufficientScope
from keyturn.tokens import AccessClaims

from .users import Users

LOGIN_SCHEMA = {
    "type": "object",
    "required": ["email", "password"],
    "properties": {"email": {"type": "string"}, "password": {"type": "string"}},
}


def database_url(settings: Settings) -> str:
    """``EXAMPLE_DATABASE_URL``, or ``users.db`` beside Keyturn's own files."""
    return os.environ.get("EXAMPLE_DATABASE_URL") or f"sqlite:///{Path(settings.data_dir) / 'users.db'}"


def create_app(settings: Settings | None = None, users: Users | None = None) -> FastAPI:
    settings = settings or Settings()
    users = users or Users(database_url(settings))
    app = FastAPI(title="Keyturn inside an app")

    # -- the three hooks: plain functions over the app's own table ------------------------------------
    # authenticate is sync: argon2 takes tens of milliseconds, so Keyturn runs it in a worker thread.
    # The refresh hooks are async and read SQLite inline (users.standing): one indexed read takes about
    # 15 microseconds, less than a trip to a thread (Keyturn's own SQLite store does the same). With a
    # database across the network, write them sync (a worker thread) or with an async driver.

    def authenticate(request: Request, credentials: dict[str, Any]) -> str | None:
        email, password = credentials.get("email"), credentials.get("password")
        if not isinstance(email, str) or not isinstance(password, str):
            return None
        user = users.check_password(email, password)
        return str(user.id) if user else None

    async def subject_check(subject: str) -> bool:
        standing = users.standing(subject)
        return standing is not None and not standing[0]  # exists, not disabled

    async def claims(subject: str) -> dict[str, Any]:
        standing = users.standing(subject)
        return {"roles": standing[1] if standing else []}

    auth = keyturn.install(
        app,
        settings=settings,
        authenticate=authenticate,
        subject_check=subject_check,
        claims=claims,
        login_schema=LOGIN_SCHEMA,
    )
    app.state.users = users

    # -- the app's own routes -------------------------------------------------------------------

    signed_in = keyturn.require_token(auth.verifier)

    def role(name: str) -> Any:
        async def holding(token: Annotated[AccessClaims, Depends(signed_in)]) -> AccessClaims:
            roles = token.claims.get("roles")
            if not isinstance(roles, list) or name not in roles:
                raise keyturn.TokenRefused(InsufficientScope(f"This needs the {name} role."))
            return token

        return holding

    @app.get("/api/profile")
    async def profile(token: Annotated[AccessClaims, Depends(signed_in)]) -> dict[str, Any]:
        return {"user": token.sub, "roles": token.claims.get("roles", [])}

    @app.get("/api/reports")
    async def reports(token: Annotated[AccessClaims, Depends(role("admin"))]) -> dict[str, Any]:
        return {"user": token.sub, "reports": ["q1", "q2"]}

    @app.post("/signup")
    async def signup(body: dict[str, str], request: Request) -> Response:
        """A route of the app's own that ends in a session: signed up, then signed in at once."""
        email, password = body.get("email", ""), body.get("password", "")
        user_id = (
            await run_in_threadpool(users.add, email, password, ["reader"]) if email and password else None
        )
        if user_id is None:
            return JSONResponse({"error": "invalid_signup"}, status_code=400)
        return await auth.start_session(request, str(user_id))  # the token response, or the cookie

    return app
