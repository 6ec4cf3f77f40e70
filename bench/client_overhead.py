"""What ``KeyturnAuth`` adds to each httpx request when no refresh is due.

    python bench/client_overhead.py [--requests 20000] [--rounds 5]

Two figures, sync and async:

- the auth flow alone: ``KeyturnAuth``'s whole share of a request (check the schedule, set the header,
  look at the response), driven the way httpx drives it;
- end to end: the same requests through a bare ``httpx.Client`` and through one with ``KeyturnAuth``,
  alternating in rounds, the transport answering in process (``httpx.MockTransport``) so that the network
  does not hide a few microseconds (httpx's own cost per request still varies by more than that).

Target (issue 5): under 50 microseconds a request.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time

import httpx

from keyturn.client import KeyturnAuth, MemoryTokenStore, TokenManager, Tokens


def answer(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"ok": True})


def manager() -> TokenManager:
    """A manager holding a pair valid for an hour: no refresh is due during the run."""
    now = time.time()
    tokens = Tokens("header.payload.signature", "refresh", access_expires_at=now + 3600, lifetime=3600)
    return TokenManager("http://token-service.invalid", store=MemoryTokenStore(tokens))


def flow_alone_sync(auth: KeyturnAuth, count: int) -> float:
    request = httpx.Request("GET", "http://api.invalid/orders")
    response = httpx.Response(200, request=request)
    started = time.perf_counter()
    for _ in range(count):
        flow = auth.sync_auth_flow(request)
        next(flow)
        with contextlib.suppress(StopIteration):
            flow.send(response)
    return (time.perf_counter() - started) / count * 1e6


async def flow_alone_async(auth: KeyturnAuth, count: int) -> float:
    request = httpx.Request("GET", "http://api.invalid/orders")
    response = httpx.Response(200, request=request)
    started = time.perf_counter()
    for _ in range(count):
        flow = auth.async_auth_flow(request)
        await flow.__anext__()
        with contextlib.suppress(StopAsyncIteration):
            await flow.asend(response)
    return (time.perf_counter() - started) / count * 1e6


def per_request_sync(client: httpx.Client, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        client.get("/orders")
    return (time.perf_counter() - started) / count * 1e6


async def per_request_async(client: httpx.AsyncClient, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        await client.get("/orders")
    return (time.perf_counter() - started) / count * 1e6


async def measure_async(requests: int, rounds: int) -> tuple[list[float], list[float]]:
    transport = httpx.MockTransport(answer)
    bare, auth = [], []
    async with (
        httpx.AsyncClient(base_url="http://api.invalid", transport=transport) as plain,
        httpx.AsyncClient(
            base_url="http://api.invalid", transport=transport, auth=KeyturnAuth(manager())
        ) as authed,
    ):
        await per_request_async(plain, 500)  # warm-up
        await per_request_async(authed, 500)
        for _ in range(rounds):
            bare.append(await per_request_async(plain, requests))
            auth.append(await per_request_async(authed, requests))
    return bare, auth


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    transport = httpx.MockTransport(answer)
    bare, auth = [], []
    with (
        httpx.Client(base_url="http://api.invalid", transport=transport) as plain,
        httpx.Client(
            base_url="http://api.invalid", transport=transport, auth=KeyturnAuth(manager())
        ) as authed,
    ):
        per_request_sync(plain, 500)  # warm-up
        per_request_sync(authed, 500)
        for _ in range(args.rounds):
            bare.append(per_request_sync(plain, args.requests))
            auth.append(per_request_sync(authed, args.requests))
    async_bare, async_auth = asyncio.run(measure_async(args.requests, args.rounds))
    alone = KeyturnAuth(manager())
    flow_sync = statistics.median(flow_alone_sync(alone, args.requests) for _ in range(args.rounds))
    flow_async = statistics.median(
        asyncio.run(flow_alone_async(alone, args.requests)) for _ in range(args.rounds)
    )

    print(f"KeyturnAuth per request, median of {args.rounds} rounds of {args.requests:,}")
    for name, value in (("sync", flow_sync), ("async", flow_async)):
        verdict = "met" if value < 50 else "MISSED"
        print(f"{name:>6} auth flow alone: {value:6.1f}us  (target < 50us: {verdict})")
    print(f"end to end: {'bare httpx':>12} {'with auth':>11} {'difference':>10}")
    for name, b, a in (("sync", bare, auth), ("async", async_bare, async_auth)):
        mb, ma = statistics.median(b), statistics.median(a)
        print(f"{name:>6} {mb:>10.1f}us {ma:>9.1f}us {ma - mb:>8.1f}us")


if __name__ == "__main__":
    main()
