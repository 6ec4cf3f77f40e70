"""The token service's Prometheus metrics, served on ``GET /metrics``.

Counts come from two places: the refresh route reports each call's outcome and duration, and the core's
events (``keyturn.events``) report sessions started and revoked, rotations, replays and reuse, whatever
the log level. Labels are codes, reasons and limit names only: never a session id, subject or address,
which would make a series per user.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from ..typing import JSONValue

# From a quick replay (well under a millisecond) to a store under strain (seconds).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """One service's series, in a registry of its own (so that several apps in one process stay apart)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.refreshes = Counter(
            "keyturn_refresh",
            "Calls to /auth/refresh by outcome: ok, or the error code answered.",
            ["outcome"],
            registry=registry,
        )
        self._outcomes: dict[str, Counter] = {}  # refreshes' children by outcome: labels() costs more
        self.refresh_seconds = Histogram(
            "keyturn_refresh_duration_seconds",
            "Time to answer /auth/refresh, errors included.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.rotations = Counter(
            "keyturn_rotations", "Refresh tokens rotated (a new pair issued).", registry=registry
        )
        self.replays = Counter(
            "keyturn_replays",
            "Refresh tokens presented again within the grace period (the current pair answered).",
            registry=registry,
        )
        self.reuse = Counter(
            "keyturn_reuse_detected",
            "Rotated refresh tokens presented after the grace period: their sessions were revoked.",
            registry=registry,
        )
        self.causes = Counter(
            "keyturn_refresh_causes",
            "Replays and reuse by what the session knew of the token: a replay's cause is concurrent (a "
            "copy within a second of the rotation) or retry (later in the grace period); a reuse's is late "
            "(the token just before the head, past the grace period), stale (two or more generations "
            "behind) or unknown (a generation the session never rotated).",
            ["decision", "cause"],
            registry=registry,
        )
        self.sessions_started = Counter("keyturn_sessions_started", "Sessions started.", registry=registry)
        self.sessions_revoked = Counter(
            "keyturn_sessions_revoked", "Sessions revoked, by reason.", ["reason"], registry=registry
        )
        self.rate_limited = Counter(
            "keyturn_rate_limit_hits",
            "Calls refused with 429 rate_limited, by limit.",
            ["limit"],
            registry=registry,
        )
        self.login_failures = Counter(
            "keyturn_login_failures",
            "Logins refused with invalid_credentials, by reason: unknown_user, wrong_password, disabled.",
            ["reason"],
            registry=registry,
        )
        self.logins_overloaded = Counter(
            "keyturn_logins_overloaded",
            "Logins refused at once with 503 because too many were waiting for a password hash.",
            registry=registry,
        )

    def on_event(self, event: str, fields: Mapping[str, JSONValue]) -> None:
        """Counts the events that have a series (a subscriber of ``keyturn.events``)."""
        if event == "session.rotated":
            self.rotations.inc()
        elif event == "session.replayed":
            self.replays.inc()
            self.causes.labels(decision="replay", cause=str(fields.get("cause", "unknown"))).inc()
        elif event == "session.reuse_detected":  # the store revoked the session as it detected the reuse
            self.reuse.inc()
            self.causes.labels(decision="reuse", cause=str(fields.get("cause", "unknown"))).inc()
            self.sessions_revoked.labels(reason="reuse").inc()
        elif event == "session.started":
            self.sessions_started.inc()
        elif event == "session.revoked":
            self.sessions_revoked.labels(reason=str(fields.get("reason", "unknown"))).inc()
        elif event == "login.failed":
            self.login_failures.labels(reason=str(fields.get("reason", "unknown"))).inc()
        elif event == "login.overloaded":
            self.logins_overloaded.inc()
        elif event == "ratelimit.hit":  # every refusal, whether logged as a warning or at debug level
            self.rate_limited.labels(limit=str(fields.get("limit", "unknown"))).inc()

    def refreshed(self, outcome: str, seconds: float) -> None:
        counter = self._outcomes.get(outcome)
        if counter is None:  # outcomes are "ok" and the error codes: a handful
            counter = self._outcomes[outcome] = self.refreshes.labels(outcome=outcome)
        counter.inc()
        self.refresh_seconds.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
