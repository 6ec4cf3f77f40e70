"""JSON request bodies of a declared shape, parsed without I/O for ``keyturn serve`` and the Django app.

Both hand over the body's bytes and its ``Content-Type``; the answers are FastAPI's: 400
``invalid_request`` for a body that is not declared JSON, is not JSON, or is not of the shape
(:func:`malformed`, which ``keyturn.server.errors`` also gives FastAPI's validation errors). No framework
here: the Django app imports this module without FastAPI or Starlette.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ..errors import InvalidRequest

__all__ = ["NOT_JSON", "is_json", "json_model", "malformed"]

M = TypeVar("M", bound=BaseModel)

NOT_JSON = "The request body must be JSON (Content-Type: application/json)."


def is_json(content_type: str) -> bool:
    """Whether a ``Content-Type`` declares JSON: ``application/json`` or ``application/*+json``."""
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def json_model(raw: bytes, content_type: str, model: type[M]) -> M | None:
    """``raw`` parsed and validated as ``model`` in one step (pydantic), ``None`` when it is empty."""
    if not raw:
        return None
    if not is_json(content_type):
        raise InvalidRequest(NOT_JSON)
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise malformed(exc.errors(include_input=False)) from None


def malformed(errors: Sequence[Any]) -> InvalidRequest:
    """The error for a body that failed validation (FastAPI's or pydantic's list of errors)."""
    # Say where and what, never echo the input: it may hold a password or a token.
    problems = "; ".join(
        f"{'.'.join(str(p) for p in err.get('loc', ()) if p != 'body') or 'body'}: "
        f"{err.get('msg', 'invalid')}"
        for err in errors[:5]
    )
    return InvalidRequest(f"The request is malformed: {problems}.")
