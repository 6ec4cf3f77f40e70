"""``GET /auth/revocations?since=N``: the feed validators poll (what it holds: ``keyturn.revocation``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from ...revocation import FEED_BATCH, MAX_SEQ, feed_body, read_feed
from ..errors import KeyturnRoute
from ..schemas import RevocationFeed
from ..token_reply import NO_STORE
from ._common import ERRORS, runtime

router = APIRouter(tags=["revocation"], responses=ERRORS, route_class=KeyturnRoute)


@router.get(
    "/revocations",
    response_model=RevocationFeed,
    summary="Revoked sessions and access tokens after sequence number `since`",
)
async def revocations(
    request: Request,
    since: Annotated[int, Query(ge=0, le=MAX_SEQ, description="The last sequence number already seen.")] = 0,
    limit: Annotated[int, Query(ge=1, le=FEED_BATCH)] = FEED_BATCH,
) -> JSONResponse:
    """Entries still in force, oldest first. Poll again with ``since = last_seq`` until ``more`` is false.

    A ``last_seq`` below ``since`` means the store was reset and its numbers began again: the answer then
    lists the entries from the start, and the next poll goes on from ``last_seq``.

    Ids are not credentials: the feed is public, like the JWKS.
    """
    rt = runtime(request)
    now = rt.sessions.clock.now()
    page = await read_feed(rt.store, since, now, limit)
    return JSONResponse(feed_body(page, now), headers=NO_STORE)
