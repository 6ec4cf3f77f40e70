"""Where the pair lives between calls and runs: ``MemoryTokenStore`` and ``FileTokenStore``.

A token file is a credential: readable by its owner only, never half-written (a crash mid-save must not
leave a file that logs the user out, or worse, one that parses into something else), and a file that
cannot be read is no session rather than a crash. At start-up a stored pair is judged in server time
(DESIGN section 6): one whose refresh token has expired ends the session before any request goes out.
"""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import httpx
import pytest

from keyturn.client import FileTokenStore, KeyturnAuth, MemoryTokenStore, SessionEnded, Tokens

from ._client_live import TLS, Harness


def _pair(n: int = 0, **changes: object) -> Tokens:
    values: dict[str, object] = {
        "access_token": f"access-{n}-" + "a" * (n % 97),
        "refresh_token": f"refresh-{n}-" + "r" * (n % 89),
        "access_expires_at": 1_800_000_900.0 + n,
        "lifetime": 900.0,
        "refresh_expires_at": 1_801_000_000.0,
        "session_id": f"sid-{n}",
        "clock_offset": 1.5,
        "min_clock_offset": 1.25,
    }
    values.update(changes)
    return Tokens(**values)  # type: ignore[arg-type]


# -- FileTokenStore -----------------------------------------------------------------------------


def test_the_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "tokens.json"
    store = FileTokenStore(path)
    store.save(_pair())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    path.chmod(0o644)  # a file someone loosened is tightened at the next save
    store.save(_pair(1))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_saved_pair_reads_back_whole(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "tokens.json")
    assert store.load() is None
    pair = _pair(3)
    store.save(pair)
    same = FileTokenStore(tmp_path / "tokens.json").load() == pair
    assert same
    store.clear()
    assert store.load() is None
    store.clear()  # clearing twice is fine


def test_a_pair_saved_before_min_clock_offset_was_kept_still_reads(tmp_path: Path) -> None:
    """A token file of an earlier version has no ``min_clock_offset``: still a session (``None``); a bad
    value is no pair."""
    path = tmp_path / "tokens.json"
    older = _pair(4).to_json()
    del older["min_clock_offset"]
    path.write_text(json.dumps(older))
    loaded = FileTokenStore(path).load()
    assert loaded is not None
    assert loaded.min_clock_offset is None
    path.write_text(json.dumps({**older, "min_clock_offset": "soon"}))
    assert FileTokenStore(path).load() is None


def test_readers_never_see_a_partial_file(tmp_path: Path) -> None:
    """The file is replaced in one step: a reader (another run of the tool) sees the old pair or the
    new one, never a torn write that would read as "no session"."""
    path = tmp_path / "tokens.json"
    store = FileTokenStore(path)
    store.save(_pair(0))
    saved = {_pair(n).access_token for n in range(300)}
    bad: list[object] = []
    done = threading.Event()

    def read() -> None:
        reader = FileTokenStore(path)
        while not done.is_set():
            got = reader.load()
            if got is None or got.access_token not in saved:
                bad.append(got)

    readers = [threading.Thread(target=read) for _ in range(2)]
    for thread in readers:
        thread.start()
    try:
        for n in range(300):
            store.save(_pair(n))
    finally:
        done.set()
        for thread in readers:
            thread.join(10)

    assert bad == []
    assert [p.name for p in tmp_path.iterdir()] == ["tokens.json"], "temporary files left behind"


def test_a_save_that_fails_midway_leaves_the_old_file_and_no_debris(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "tokens.json"
    store = FileTokenStore(path)
    store.save(_pair(1))

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        store.save(_pair(2))
    monkeypatch.undo()

    loaded = store.load()
    assert loaded is not None
    assert loaded.session_id == "sid-1"
    assert [p.name for p in tmp_path.iterdir()] == ["tokens.json"]


def _doc(**fields: object) -> bytes:
    return json.dumps(fields).encode()


CORRUPT = {
    "not-json": b'{"access_token": "abc',
    "not-utf8": b"\x00\xff\xfe garbage",
    "empty": b"",
    "a-list": b"[1, 2, 3]",
    "no-access-token": _doc(refresh_token="r"),
    "empty-access-token": _doc(access_token="", refresh_token="r"),
    "access-token-not-a-string": _doc(access_token=5, refresh_token="r"),
    "no-refresh-token": _doc(access_token="a"),
    "expiry-a-string": _doc(access_token="a", refresh_token="r", access_expires_at="x"),
    "expiry-a-bool": _doc(access_token="a", refresh_token="r", access_expires_at=True),
    "offset-null": _doc(access_token="a", refresh_token="r", clock_offset=None),
    "refresh-expiry-a-string": _doc(
        access_token="a", refresh_token="r", access_expires_at=1e12, lifetime=900, refresh_expires_at="soon"
    ),
}


@pytest.mark.parametrize("content", list(CORRUPT.values()), ids=list(CORRUPT))
def test_a_file_that_is_not_a_pair_means_no_session(h: Harness, tmp_path: Path, content: bytes) -> None:
    """A damaged or hand-edited file must read as "signed out", never crash the application at start-up
    or at its first request."""
    path = tmp_path / "tokens.json"
    path.write_bytes(content)
    manager = h.manager(store=FileTokenStore(path))

    with pytest.raises(SessionEnded) as ended:
        manager.access_token()

    assert ended.value.reason == "signed_out"
    assert manager.state == "signed_out"
    assert h.faults.sent == []


# -- MemoryTokenStore ---------------------------------------------------------------------------


def test_the_memory_store_holds_one_pair() -> None:
    store = MemoryTokenStore()
    assert store.load() is None
    store.save(_pair(1))
    store.save(_pair(2))
    loaded = store.load()
    assert loaded is not None
    assert loaded.session_id == "sid-2"
    store.clear()
    assert store.load() is None
    seeded = MemoryTokenStore(_pair(5)).load()
    assert seeded is not None
    assert seeded.session_id == "sid-5"


# -- the manager on a store ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["file", "memory"])
def test_a_manager_on_a_store_with_a_pair_resumes_the_session(h: Harness, tmp_path: Path, kind: str) -> None:
    """The next run of the tool (or a new manager) picks the session up without logging in again, and
    keeps the store current as it refreshes."""
    store = FileTokenStore(tmp_path / "tokens.json") if kind == "file" else MemoryTokenStore()
    first = h.manager(store=store)
    pair = h.login(first)

    resumed = h.manager(store=store if kind == "memory" else FileTokenStore(tmp_path / "tokens.json"))
    assert resumed.state == "active"
    calls = len(h.faults.sent)
    assert resumed.access_token() == pair.access_token
    assert len(h.faults.sent) == calls
    with httpx.Client(base_url=h.live.url, auth=KeyturnAuth(resumed), verify=TLS) as http:
        assert http.get("/resource").status_code == 200

    h.advance(700)
    token = resumed.access_token()
    assert token != pair.access_token
    stored = resumed.store.load()
    assert stored is not None
    stored_the_new_pair = stored.access_token == token
    assert stored_the_new_pair
    assert stored.session_id == pair.session_id


def test_a_stored_pair_past_its_refresh_expiry_in_server_time_ends_before_any_request(
    h: Harness, tmp_path: Path
) -> None:
    """The client's clock is 10 minutes behind; the stored offset says so. By its own clock the refresh
    token has 5 minutes left, by the service's it expired 5 minutes ago: the session ends at once, with
    the reason, and without a request to the service or the resource server."""
    local = h.clock.now()
    path = tmp_path / "tokens.json"
    store = FileTokenStore(path)
    store.save(
        Tokens(
            access_token="access-a.b.c",
            refresh_token="refresh-a.b.c",
            access_expires_at=local + 600 - 400,
            lifetime=900.0,
            refresh_expires_at=local + 300,
            session_id="old-session",
            clock_offset=600.0,
        )
    )
    manager = h.manager(store=FileTokenStore(path))

    with (
        httpx.Client(base_url=h.live.url, auth=KeyturnAuth(manager), verify=TLS) as http,
        pytest.raises(SessionEnded) as ended,
    ):
        http.get("/resource")

    assert ended.value.reason == "refresh_token_expired"
    assert h.ended == ["refresh_token_expired"]
    assert manager.state == "ended"
    assert not path.exists()
    assert h.faults.sent == []
    assert sum(h.live.ctl.hits.values()) == 0
    with pytest.raises(SessionEnded):
        manager.access_token()
    assert h.ended == ["refresh_token_expired"]


def test_a_stored_pair_whose_expiry_passed_only_by_the_local_clock_is_kept(
    h: Harness, tmp_path: Path
) -> None:
    """The converse: a client 10 minutes ahead must not end a session that the service still honours."""
    local = h.clock.now()
    store = MemoryTokenStore(
        Tokens(
            access_token="access-a.b.c",
            refresh_token="refresh-a.b.c",
            access_expires_at=local - 600 + 800,
            lifetime=900.0,
            refresh_expires_at=local - 300,
            session_id="live-session",
            clock_offset=-600.0,
        )
    )
    manager = h.manager(store=store)

    assert manager.access_token() == "access-a.b.c"
    assert h.ended == []
    assert manager.state == "active"
