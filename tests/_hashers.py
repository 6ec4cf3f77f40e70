"""A password hasher for tests that must tell whether a request cost a password check."""

from __future__ import annotations

from argon2 import PasswordHasher


class CountingHasher(PasswordHasher):
    """argon2id at the smallest cost, counting the password checks (``verified``)."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.verified = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self.verified += 1
        return super().verify(hash, password)
