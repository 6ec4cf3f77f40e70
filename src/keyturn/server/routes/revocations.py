"""``GET /auth/revocations?since=N``: the feed validators poll to honour revocations (DESIGN section 4)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from ...feed import read_feed
from ..errors import KeyturnRoute
from ..schemas import RevocationFeed
from ._common import ERRORS, NO_STORE, runtime

router = APIRouter(tags=["revocation"], responses=ERRORS, route_class=KeyturnRoute)

MAX_BATCH = 1000
MAX_SEQ = 2**63 - 1  # what every store's sequence numbers fit in


@router.get(
    "/revocations",
    response_model=RevocationFeed,
    summary="Revoked sessions and access tokens after sequence number `since`",
)
async def revocations(
    request: Request,
    since: Annotated[int, Query(ge=0, le=MAX_SEQ, description="The last sequence number already seen.")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_BATCH)] = MAX_BATCH,
) -> JSONResponse:
    """Entries still in force, oldest first. Poll again with ``since = last_seq`` until ``more`` is false.

    A ``last_seq`` below ``since`` means the store was reset and its numbers began again: the answer then
    lists the entries from the start, and the next poll goes on from ``last_seq``.

    Ids are not credentials: the feed is public, like the JWKS.
    """
    rt = runtime(request)
    now = rt.sessions.clock.now()
    page = await read_feed(rt.store, since, now, limit)
    body = {
        "revocations": [
            {"seq": r.seq, "kind": r.kind, "value": r.value, "expires_at": r.expires_at} for r in page.entries
        ],
        "last_seq": page.last_seq,
        "more": page.more,
        "server_time": now,
    }
    return JSONResponse(body, headers=NO_STORE)
