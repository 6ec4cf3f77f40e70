"""The OpenAPI document: FastAPI's, amended where it would not say what the service does.

- FastAPI declares a 422 with its validation-error shape on every operation with parameters or a body;
  the service answers a malformed call with 400 ``invalid_request`` and the one error body (declared on
  every route), so the 422s and their schemas go.
- The access token is a bearer credential: the ``bearer`` security scheme (the refresh token, where it
  lists or ends sessions, the ``refresh`` one), which operations name in
  their ``openapi_extra`` (``routes/_common.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

__all__ = ["amend", "install"]

SECURITY_SCHEMES: dict[str, Any] = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "An access token of this service, from login or refresh.",
    },
    "refresh": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "The session's current refresh token (never an access token: 403 "
        "insufficient_scope), when neither the body nor the cookie carries it.",
    },
    "client": {
        "type": "http",
        "scheme": "basic",
        "description": "A registered OAuth 2.0 client (client_secret_basic): its id and secret, each "
        "form-encoded (RFC 6749 section 2.3.1).",
    },
}
FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


def amend(schema: dict[str, Any]) -> dict[str, Any]:
    """Amend FastAPI's ``schema`` in place (again and again: the result is the same) and return it."""
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            if isinstance(operation, dict):
                operation.get("responses", {}).pop("422", None)
    components = schema.setdefault("components", {})
    schemas = components.get("schemas", {})
    for name in FASTAPI_VALIDATION_SCHEMAS:
        schemas.pop(name, None)
    components.setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
    return schema


def install(app: FastAPI) -> None:
    """Serve the amended document on ``/openapi.json`` and ``/docs`` (FastAPI's documented way)."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        return amend(generate())  # FastAPI caches the document: amending it again is a no-op

    app.openapi = openapi  # type: ignore[method-assign]
