"""The revocation feed's JSON: what the token service writes (``feed_body``) a validator reads back
(``parse_feed``) unchanged, and an answer that is not a page is refused, not half read."""

from __future__ import annotations

import json

import pytest

from keyturn.revocation import FeedPage, feed_body, parse_feed
from keyturn.typing import Revocation

NOW = 1_700_000_000.0


def test_a_page_survives_the_wire() -> None:
    """A validator must see exactly the entries, cursor and ``more`` flag the service sent."""
    page = FeedPage([Revocation(7, "sid", "s-1", NOW + 930), Revocation(9, "jti", "j|2", NOW + 5.5)], 9, True)

    body = json.loads(json.dumps(feed_body(page, NOW)))

    assert body["server_time"] == NOW
    assert list(body) == ["revocations", "last_seq", "more", "server_time"]
    assert parse_feed(body) == page


@pytest.mark.parametrize(
    "body",
    [
        [],
        "nope",
        {"revocations": [], "more": False},
        {"revocations": [{"seq": 1, "kind": "sid", "value": "s"}], "last_seq": 1, "more": False},
        {
            "revocations": [{"seq": "x", "kind": "sid", "value": "s", "expires_at": 1}],
            "last_seq": 1,
            "more": 0,
        },
        {"revocations": None, "last_seq": 1, "more": False},
    ],
)
def test_an_answer_that_is_not_a_page_is_a_value_error(body: object) -> None:
    """A garbled answer must count as an unreadable feed (kept set, growing lag), never as an empty page."""
    with pytest.raises(ValueError, match=r"revocation feed|invalid literal"):  # "out of reach or garbled"
        parse_feed(body)
