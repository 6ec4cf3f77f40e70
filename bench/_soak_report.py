"""The soak's report (``bench/soak.py``): the figures of one run, the verdict against the targets
(no unexpected session end, refreshes succeeding within their retries), and the lines printed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from bench._soak_client import Cycle, Tally
from bench._soak_config import ME, REFRESH, SUCCESS_TARGET, SoakConfig
from bench._soak_server import ServerSide

from keyturn.client._session import USABLE_MARGIN


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


@dataclass
class Report:
    config: SoakConfig
    phases: list[tuple[str, float, float]]
    """(name, seconds into the run, seconds it lasted) of each burst as it happened."""
    faults_off: float
    """Seconds into the run when the faults stopped."""
    start: float
    """Monotonic time the faulty run began."""
    wall_start: float
    """The same moment by the wall clock (the server log's times)."""
    duration: float
    """Seconds from the start of the faults until every request task was done (without set-up and drain)."""
    drain: float
    restart_downtime: float | None
    tally: Tally
    cycles: list[Cycle]
    refreshes: list[int]
    """``TokenManager.refreshes`` per client."""
    drained: int
    """Clients that showed a working, ``active`` session after the faults."""
    faults: Counter[str]
    faults_by_path: Counter[str]
    server: ServerSide

    def app_count(self, which: Callable[[str], bool]) -> int:
        return sum(v for k, v in self.tally.app.items() if which(k))

    @staticmethod
    def succeeded(cycle: Cycle) -> bool:
        return cycle.ended is not None and not cycle.gave_up

    @property
    def cycles_ok(self) -> int:
        return sum(1 for c in self.cycles if self.succeeded(c))

    def failed_cycles(self) -> list[str]:
        """Each failed cycle's attempts: seconds into the run and what the client saw."""
        lines = []
        for cycle in self.cycles:
            if self.succeeded(cycle):
                continue
            steps = ", ".join(f"{t - self.start:.1f} s {what}" for t, what in cycle.log)
            end = "no new pair" if cycle.ended is None else "new pair after RefreshUnavailable"
            lines.append(f"            client {cycle.client}: {end}; attempts: {steps}")
        return lines

    def server_timelines(self) -> list[str]:
        """What the server logged about each session that ended during the run (its last 8 events)."""
        lines = []
        for index, _, _, sid in self.tally.ends[:5]:
            events = self.server.timeline.get(sid or "", [])[-8:]
            steps = ", ".join(f"{when - self.wall_start:.1f} s {event}" for when, event in events)
            lines.append(f"            client {index} at the server: {steps}")
            late = self.retry_after_grace(sid)
            if late is not None:
                lines.append(
                    f"            client {index}: its retry came {late:.1f} s after the server had rotated "
                    f"the token it presented (grace period {self.config.grace_period} s): the answer of that "
                    "rotation was lost and the client's backoff outlasted the grace period"
                )
        return lines

    def retry_after_grace(self, sid: str | None) -> float | None:
        """For a session revoked for reuse: how long after the last rotation the reused token came, when
        that is past the grace period (a lost answer retried too late); else None."""
        events = self.server.timeline.get(sid or "", [])
        reuse = next((when for when, event in events if event == "session.reuse_detected"), None)
        if reuse is None:
            return None
        rotations = [when for when, event in events if event == "session.rotated" and when <= reuse]
        if not rotations or reuse - rotations[-1] <= self.config.grace_period:
            return None
        return reuse - rotations[-1]

    def ends_from_late_retries(self) -> list[tuple[int, str, float, str | None]]:
        """The session ends that a refresh retried past the server's grace period explains (see
        ``test_a_lost_answer_then_an_outage_keeps_the_session``)."""
        explained = []
        for end in self.tally.ends:
            index, reason, _, sid = end
            rotations = sum(1 for _, e in self.server.timeline.get(sid or "", []) if e == "session.rotated")
            if (
                reason == "refresh_token_reused"
                and self.retry_after_grace(sid) is not None
                # the server rotated once more than the client stored: that one answer was lost
                and rotations == self.refreshes[index] + 1
            ):
                explained.append(end)
        return explained

    @property
    def success_rate(self) -> float:
        return 100.0 * self.cycles_ok / len(self.cycles) if self.cycles else 100.0

    @property
    def unexpected_ends(self) -> list[tuple[int, str, float, str | None]]:
        return self.tally.ends  # no session end is expected during the run

    @property
    def passed(self) -> bool:
        return not self.unexpected_ends and self.success_rate >= SUCCESS_TARGET

    def lines(self) -> list[str]:
        c, t, s = self.config, self.tally, self.server
        served_lifetime = max(c.access_lifetime - 1, 0)
        margin = min(c.refresh_margin, served_lifetime / 3)
        durations = [x.ended - x.started for x in self.cycles if x.ended is not None]
        attempts = sum(t.refresh_attempts.values())
        per_lifetime = sum(self.refreshes) / max(len(self.refreshes), 1) / c.lifetimes
        rotated = s.events["session.rotated"]
        app = ", ".join(f"{k} {v}" for k, v in sorted(t.app.items(), key=lambda kv: -kv[1]))
        out = [
            f"clients     {c.clients} ({c.tasks} request tasks each; {c.clients - 2 * (c.clients // 3)} "
            f"on time, {(c.clients + 1) // 3} {c.skew / 60:+g} min, {c.clients // 3} "
            f"{-c.skew / 60:+g} min), seed {c.seed}",
            f"lifetimes   {c.lifetimes:g} of {c.access_lifetime} s (= {c.lifetimes * 15 / 60:g} h of 15-min "
            f"tokens); served expires_in {served_lifetime} s (whole-second exp), refresh due "
            f"{margin:.2f} s before expiry (min(margin {c.refresh_margin:.2f}, lifetime/3)), "
            f"not sent within {USABLE_MARGIN:g} s of it; leeway {c.leeway} s",
            f"duration    {self.faults_off:.1f} s of faults, request tasks done at {self.duration:.1f} s, "
            f"then {self.drain:.1f} s drain"
            + (
                f"; restart: server unreachable {self.restart_downtime:.1f} s"
                if self.restart_downtime
                else ""
            ),
            "bursts      "
            + "; ".join(f"{name} at {at:.1f} s for {lasted:.1f} s" for name, at, lasted in self.phases),
            f"requests    {t.logical} logical GET {ME}: {t.logical_ok} got a 2xx, {t.logical_abandoned} "
            f"abandoned; {sum(t.app.values())} calls as the app saw them: {app}",
            f"            the app saw: 401 {self.app_count(lambda k: k.startswith('401'))}"
            + "".join(f" ({k} {v})" for k, v in sorted(t.app.items()) if k.startswith("401"))
            + f", 5xx/429 after KeyturnAuth's retries {self.app_count(lambda k: k.isdigit())}, "
            f"RefreshUnavailable {t.app['RefreshUnavailable']}, SessionEnded {t.app['SessionEnded']}, "
            f"timeouts {t.app['timeout']}, other transport errors "
            f"{self.app_count(lambda k: k.endswith('Error'))}; wrong session in a 2xx: {t.wrong_session}",
            f"refresh     {attempts} attempts: "
            + ", ".join(f"{k} {v}" for k, v in sorted(t.refresh_attempts.items(), key=lambda kv: -kv[1])),
            f"            {sum(self.refreshes)} refreshes succeeded (TokenManager.refreshes; per client "
            f"{min(self.refreshes, default=0)}..{max(self.refreshes, default=0)}, "
            f"{per_lifetime:.2f} per lifetime)",
            f"            {len(self.cycles)} refresh cycles; attempts per cycle max "
            f"{max((x.attempts for x in self.cycles), default=0)}; time to a new pair p50 "
            f"{percentile(durations, 50):.2f} s, p99 {percentile(durations, 99):.2f} s, max "
            f"{max(durations, default=0):.2f} s; {sum(x.late for x in self.cycles)} came after the "
            f"replaced access token expired; {sum(x.gave_up for x in self.cycles)} saw RefreshUnavailable",
            *self.failed_cycles()[:10],
            f"            degraded episodes {t.degraded_episodes}, longest {t.longest_degraded:.1f} s",
            f"            refreshes succeeding within their retries: {self.success_rate:.3f}% "
            f"({self.cycles_ok} of {len(self.cycles)} cycles: new pair stored, session alive, client "
            f"never gave up (RefreshUnavailable) on it)",
            f"server      POST {REFRESH}: {sum(s.refresh_status.values())} ("
            + ", ".join(f"{k} {v}" for k, v in sorted(s.refresh_status.items()))
            + f"); GET {ME}: {sum(s.me_status.values())} ("
            + ", ".join(f"{k} {v}" for k, v in sorted(s.me_status.items()))
            + ")",
            f"            rotations {rotated} (= client refreshes: "
            f"{'yes' if rotated == sum(self.refreshes) else 'NO'}), grace replays "
            f"{s.events['session.replayed']}, reuse detected {s.events['session.reuse_detected']}, "
            f"sessions revoked {dict(s.revoked_reasons) or 0}",
            f"sessions    ended during the run: {len(t.ends)} (expected 0, unexpected {len(t.ends)})"
            + "".join(f"; client {i}: {r} at {at:.1f} s" for i, r, at, _ in t.ends[:5])
            + f"; alive and active after the drain {self.drained} of {c.clients}; logged out after: "
            f"{t.logouts}",
            *self.server_timelines(),
            "faults      "
            + ", ".join(
                f"{k} {v}"
                for k, v in sorted(self.faults.items())
                if k not in ("connections", "requests", "forwarded")
            )
            + f" (of {self.faults['requests']} requests at the proxy, {self.faults['forwarded']} forwarded "
            f"untouched)",
            "            by path: " + ", ".join(f"{k} {v}" for k, v in sorted(self.faults_by_path.items())),
            f"{'PASS' if self.passed else 'FAIL'}        unexpected session ends {len(self.unexpected_ends)} "
            f"(target 0), refreshes succeeding within their retries {self.success_rate:.3f}% "
            f"(target >= {SUCCESS_TARGET}%)",
        ]
        return out
