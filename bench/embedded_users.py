"""Keyturn installed in a bare FastAPI app, logging in against the built-in user store: the same work per
refresh as ``keyturn serve`` (one subject check in the same store), so a difference is the embedding's.

    uvicorn --factory --app-dir bench embedded_users:create_app
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request

from keyturn import fastapi as keyturn


def create_app() -> FastAPI:
    app = FastAPI()

    async def authenticate(request: Request, credentials: dict[str, Any]) -> str:
        user = await auth.runtime.users.authenticate(
            str(credentials["username"]), str(credentials["password"])
        )
        return user.username

    async def subject_check(subject: str) -> bool:
        return await auth.runtime.users(subject)

    auth = keyturn.install(app, authenticate=authenticate, subject_check=subject_check)
    return app
