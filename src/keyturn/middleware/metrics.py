"""Prometheus series of a resource server's verifier: how far behind the revocation feed it is.

    from prometheus_client import REGISTRY
    REGISTRY.register(VerifierCollector(verifier))

The lag is the time since the verifier last read the feed to its end: what a revocation may take to reach
this process, beyond the poll interval. Read from ``verifier.status()`` at each scrape.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .verifier import AccessTokenVerifier


class VerifierCollector(Collector):
    def __init__(self, verifier: AccessTokenVerifier) -> None:
        self.verifier = verifier

    def collect(self) -> Iterator[Metric]:
        status = self.verifier.status()

        def number(key: str) -> float:
            value = status[key]
            return float(value) if isinstance(value, int | float) else float("nan")

        yield GaugeMetricFamily(
            "keyturn_revocation_feed_lag_seconds",
            "Seconds since the revocation feed was last read to its end.",
            value=number("revocation_lag_seconds"),
        )
        yield GaugeMetricFamily(
            "keyturn_revocations_held",
            "Revocations held (not yet past their tokens' expiry).",
            value=number("revocations"),
        )
        yield GaugeMetricFamily("keyturn_verifier_keys", "Public keys held.", value=number("keys"))
        yield CounterMetricFamily(
            "keyturn_verifier_key_fetches", "Key sets fetched.", value=number("key_fetches")
        )
