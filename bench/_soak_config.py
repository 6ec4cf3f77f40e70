"""The soak's settings and its fault schedule, for ``bench/soak.py``: :class:`SoakConfig` (``--quick``
is :meth:`SoakConfig.quick`), the background faults and the bursts that :func:`schedule` spreads over the run.
"""

from __future__ import annotations

from dataclasses import dataclass

from tests.e2e._faults import Faults

REFRESH = "/auth/refresh"
ME = "/auth/me"
DEFAULT_MARGIN = 300.0
DEFAULT_LIFETIME = 900.0
SUCCESS_TARGET = 99.9
LOGIN_TIMEOUT = 120.0

BACKGROUND = Faults(
    drop_before=0.01, drop_after=0.01, delay=0.02, status_503=0.01, status_429=0.005, delay_seconds=0.5
)
"""Faults on every path at all times outside the bursts: 5.5% of requests."""


@dataclass(frozen=True)
class SoakConfig:
    clients: int = 50
    lifetimes: float = 96.0
    """How long the faults run, in access-token lifetimes (96 x 15 min = 24 h)."""
    access_lifetime: int = 3
    """``KEYTURN_ACCESS_TOKEN_LIFETIME`` of the server, seconds."""
    seed: int = 1
    skew: float = 600.0
    """A third of the clients run this many seconds fast, a third as many slow."""
    tasks: int = 2
    """Requests in flight per client (tasks sharing its manager)."""
    request_every: float = 0.25
    """Mean pause between one task's requests, in lifetimes."""
    timeout: float = 5.0
    """The clients' HTTP timeout (refresh and requests), seconds."""
    leeway: int = 1
    grace_period: int = 30
    """``KEYTURN_GRACE_PERIOD``: the default (the client's backoff is not scaled either)."""
    users: int = 5
    drain_timeout: float = 180.0
    """After the faults: how long the clients get to show a working session."""
    restart: bool = True
    burst_share: float = 0.6
    """The bursts are shortened to fill at most this share of the run."""

    @classmethod
    def quick(cls, **changes: object) -> SoakConfig:
        """The short version (``--quick``, the test): 10 clients over 8 lifetimes, every burst shortened."""
        values: dict[str, object] = {
            "clients": 10,
            "lifetimes": 8.0,
            "users": 1,
            "burst_share": 0.35,
            **changes,
        }
        return cls(**values)  # type: ignore[arg-type]

    @property
    def refresh_margin(self) -> float:
        return DEFAULT_MARGIN * self.access_lifetime / DEFAULT_LIFETIME


@dataclass(frozen=True)
class Phase:
    name: str
    gap: float
    """Lifetimes of background faults before it (after the previous phase's end)."""
    length: float
    """In lifetimes; a restart lasts as long as it takes."""
    faults: Faults | None = None
    """The proxy's policy during the phase; None with ``down`` or ``restart``."""
    down: bool = False
    restart: bool = False


def schedule(config: SoakConfig) -> tuple[list[Phase], float]:
    """The bursts, evenly spread over the run, and the background stretch after the last one.

    Bursts are shortened when they would fill more than ``burst_share`` of the run. The bursts that lose
    refresh answers come after the outages: in a short run the gaps between bursts are shorter than the
    server's grace period, and a lost answer followed by an outage long enough to push the client's
    backoff past the grace period is the hardest case there is (``tests/e2e/test_soak.py``,
    ``test_a_lost_answer_then_an_outage_keeps_the_session``, which the client now passes: its retry comes
    inside the grace period). Keeping the two apart tells a failure of the one from one of the other. With
    96 lifetimes the gaps are longer than the grace period and the order makes no difference.
    """
    timeout_delay = config.timeout + 1.0
    late = Faults(delay=1.0, delay_seconds=timeout_delay)
    bursts: list[tuple[str, float, Faults | None, bool, bool]] = [
        ("503 on everything", 2.0, Faults(status_503=1.0), False, False),
        ("429 on everything", 1.0, Faults(status_429=1.0), False, False),
        ("everything down", 1.5, None, True, False),
        ("server restart", 0.0, None, False, True),
        ("lost refresh answers (50%)", 2.0, Faults(drop_after=0.5, paths=(REFRESH,)), False, False),
        (f"every answer {timeout_delay:g} s late", 1.0, late, False, False),
    ]
    if not config.restart:
        bursts = [b for b in bursts if not b[4]]
    total = sum(b[1] for b in bursts)
    scale = min(1.0, config.burst_share * config.lifetimes / total)
    gap = (config.lifetimes - total * scale) / (len(bursts) + 1)
    phases = [Phase(name, gap, n * scale, faults, down, restart) for name, n, faults, down, restart in bursts]
    return phases, gap
