"""Paths that pass without a token."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["Exempt"]


class Exempt:
    """Path prefixes matched segment by segment: ``/status`` covers ``/status`` and ``/status/x``, not
    ``/statusx``."""

    __slots__ = ("_exact", "_prefixes")

    def __init__(self, paths: Iterable[str]) -> None:
        stripped = [p.rstrip("/") for p in paths]
        self._exact = frozenset(p or "/" for p in stripped)
        self._prefixes = tuple(p + "/" for p in stripped)

    def __call__(self, path: str) -> bool:
        return path in self._exact or path.startswith(self._prefixes)

    def __bool__(self) -> bool:
        return bool(self._exact)
