"""Secrets the tests make (passwords, master secrets): failure reports show none of them."""

from __future__ import annotations

import secrets

MADE: set[str] = set()


def withheld(secret: str) -> str:
    """Register ``secret`` so that failure reports replace it; return it."""
    MADE.add(secret)
    return secret


def new_password() -> str:
    return withheld(secrets.token_urlsafe(12))
