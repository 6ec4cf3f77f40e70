"""What the demo page's client sent, timed as it left the page, and which refusals a busy machine explains.

The access tokens live 5 s and the token service allows no leeway, so a request the client sent in time
can still reach a heavily loaded service after its token expired: a 401 ``token_expired``, which the
client answers with one refresh and one resend. Such a refusal is the machine's doing only when the
client kept its own rule when it let the request go: the token had more than ``USABLE_MARGIN`` left in
the service's time as the client reckons it, and in truth too, give or take what the midpoint estimate of
the clock offset allows (half the round trip of the call it was measured on). :func:`unexplained` lists
every refusal that is not such a one; a client that mis-schedules (a wrong offset, a token sent too
close to its expiry) shows there.

The page's ``fetch`` is wrapped before the demo loads (:data:`RECORDER`): for each request it keeps the
path, the ``exp`` of the access token it carried (never the token), the page's clock and the session's
clock offset when it left, when its answer came, its status and a 401's error code.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from playwright.sync_api import Page

USABLE_MARGIN = 1.0
"""Seconds an access token must have left, by the client's reckoning, to be sent (both clients)."""
SLACK = 0.1
"""Seconds for what happens between the client's check and the wrapper's clock reading (a few calls)."""

RECORDER = """(() => {
  const real = window.fetch.bind(window);
  const sends = (window.__sends = []);
  const expOf = (headers) => {
    const [scheme, token] = (new Headers(headers || {}).get("authorization") || "").split(" ");
    if (!token || (scheme !== "Bearer" && scheme !== "DPoP")) return null;
    try {
      const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      return JSON.parse(atob(part)).exp ?? null;
    } catch {
      return null;
    }
  };
  window.fetch = async (input, init = {}) => {
    const request = input instanceof Request ? input : undefined;
    const sent = {
      path: new URL(request ? request.url : String(input), location.href).pathname,
      method: (init.method || (request && request.method) || "GET").toUpperCase(),
      exp: expOf(init.headers || (request && request.headers)),
      at: Date.now(),
      offset: window.keyturnDemo ? window.keyturnDemo.session.clockOffset : null,
      answered: null,
      status: 0,
      error: null,
    };
    sends.push(sent);
    const response = await real(input, init);
    sent.answered = Date.now();
    sent.status = response.status;
    if (response.status === 401) {
      try {
        sent.error = (await response.clone().json()).error ?? null;
      } catch {}
    }
    return response;
  };
})()"""


@dataclass(frozen=True)
class Send:
    """One request as it left the page (times in seconds on the page's clock)."""

    path: str
    method: str
    exp: float | None
    """The ``exp`` of the access token it carried, if any (the service's time)."""
    at: float
    offset: float | None
    """The session's clock offset (service minus page) when it left."""
    answered: float | None
    status: int
    error: str | None


def sends(page: Page) -> list[Send]:
    """Every request the page sent since it loaded, in the order they left."""
    raw: list[dict[str, Any]] = page.evaluate("() => window.__sends")
    return [
        Send(
            str(r["path"]),
            str(r["method"]),
            None if r["exp"] is None else float(r["exp"]),
            float(r["at"]) / 1000,
            None if r["offset"] is None else float(r["offset"]) / 1000,
            None if r["answered"] is None else float(r["answered"]) / 1000,
            int(r["status"]),
            r["error"],
        )
        for r in raw
    ]


def page_clock(page: Page, samples: int = 5) -> tuple[float, float]:
    """The page's clock minus this machine's (the service's) in seconds, and how far off that may be: the
    tightest of ``samples`` readings bracketed by this process's clock."""
    best: tuple[float, float] | None = None
    for _ in range(samples):
        before = time.time()
        at = float(page.evaluate("() => Date.now()")) / 1000
        after = time.time()
        reading = (at - (before + after) / 2, (after - before) / 2)
        if best is None or reading[1] < best[1]:
            best = reading
    assert best is not None
    return best


def unexplained(sent: list[Send], skew: float = 0.0, uncertainty: float = 0.0) -> list[str]:
    """Why each 401 among ``sent`` is not a token sent in time that reached a slow service expired (``[]``:
    every one is). ``skew``: the page's clock minus the service's, known to within ``uncertainty``."""
    problems = []
    for i, s in enumerate(sent):
        if s.status != 401:
            continue
        what = f"{s.method} {s.path} at {s.at:.3f}"
        if s.error != "token_expired" or s.exp is None or s.offset is None:
            problems.append(f"{what}: 401 {s.error} (carried a token: {s.exp is not None})")
            continue
        believed = s.exp - (s.at + s.offset)
        if believed < USABLE_MARGIN - SLACK:
            problems.append(f"{what}: sent with {believed:.3f} s left by the client's own reckoning")
        measured = [
            m
            for m in sent[:i]
            if m.path in ("/auth/login", "/auth/refresh")
            and m.status == 200
            and m.answered is not None
            and m.answered <= s.at
        ]
        if not measured or measured[-1].answered is None:
            problems.append(f"{what}: no login or refresh answered before it")
            continue
        error = (measured[-1].answered - measured[-1].at) / 2  # the midpoint estimate's bound
        actual = s.exp - (s.at - skew)
        if actual < USABLE_MARGIN - error - uncertainty - SLACK:
            problems.append(
                f"{what}: sent with {actual:.3f} s left in truth, {believed:.3f} s by the client's"
                f" reckoning; its offset, measured on a {2 * error:.3f} s call, may be off by {error:.3f} s"
            )
        if not any(
            later.path == s.path and later.status == 200 and (later.exp or 0) > s.exp
            for later in sent[i + 1 :]
        ):
            problems.append(f"{what}: never sent again with a newer token that was answered 200")
    return problems
