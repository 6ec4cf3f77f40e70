"""Reloading the key ring when a token names a key this process does not know yet.

Another process of the service may have rotated the keys (``keyturn keys rotate``) and signed with the new
ones before this process reloaded. A token naming an unknown ``kid`` therefore triggers a reload, with
three guards:

- single flight: callers that arrive during a reload wait for it instead of starting their own;
- a ``kid`` that a reload started after the token arrived did not find is remembered as unknown (a bounded
  set) and refused at once from then on: made-up ids cost one store read each at most;
- reloads start at most once per ``MIN_INTERVAL``; a new unknown ``kid`` inside that window is answered
  ``KeysReloading`` (503, retryable), never ``token_invalid``, so a real new key is never mistaken for a
  forged one and a flood of made-up ids costs at most one store read per interval.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from .errors import KeysReloading
from .keys import KeyRing
from .typing import Clock

MIN_INTERVAL = 1.0
"""Seconds between the starts of two reloads caused by unknown key ids."""

MAX_MISSING = 4096
"""How many key ids known to be unknown are remembered."""


class KeyReloader:
    def __init__(
        self,
        source: Callable[[], Awaitable[KeyRing]],
        clock: Clock,
        install: Callable[[KeyRing], None],
    ) -> None:
        self._source = source
        self._clock = clock
        self._install = install
        self._inflight: asyncio.Future[None] | None = None
        self._inflight_started = float("-inf")
        self._last_start = float("-inf")
        self._missing: OrderedDict[str, None] = OrderedDict()

    async def reload(self) -> None:
        """Reload now (or wait for the reload under way)."""
        await asyncio.shield(self._inflight or self._start())

    async def find(self, kid: str, known: Callable[[], bool]) -> bool:
        """Whether ``kid`` is known after a reload that began after this call; ``KeysReloading`` if no
        reload may start yet."""
        if kid in self._missing:
            return False
        arrived = self._clock.now()
        while True:
            if self._inflight is None:
                if self._clock.now() - self._last_start < MIN_INTERVAL:
                    raise KeysReloading()
                self._start()
            assert self._inflight is not None
            started = self._inflight_started
            await asyncio.shield(self._inflight)
            if known():
                return True
            if started >= arrived:
                self._missing[kid] = None
                while len(self._missing) > MAX_MISSING:
                    self._missing.popitem(last=False)
                return False

    def _start(self) -> asyncio.Future[None]:
        self._inflight_started = self._last_start = self._clock.now()
        self._inflight = asyncio.ensure_future(self._load())
        return self._inflight

    async def _load(self) -> None:
        try:
            self._install(await self._source())
        finally:
            self._inflight = None
