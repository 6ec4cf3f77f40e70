"""Applications whose users live elsewhere choose the subject check the server runs on every refresh."""

from __future__ import annotations

from pathlib import Path

import pytest

from keyturn import testing
from keyturn.errors import SessionRevoked
from keyturn.server.runtime import open_runtime

pytestmark = pytest.mark.anyio


async def test_runtime_subject_check_is_the_built_in_users_by_default_or_the_applications(
    tmp_path: Path,
) -> None:
    """By default a subject the built-in store does not know loses its session; with the application's
    own check (or none) its sessions live on."""
    settings = testing.make_settings(store_url=f"sqlite:///{tmp_path / 'k.db'}", data_dir=tmp_path)
    asked: list[str] = []

    async def ours(sub: str) -> bool:
        asked.append(sub)
        return sub != "banned"

    for check, external_lives in (("users", False), (ours, True), (None, True)):
        rt = await open_runtime(settings, hasher=testing.fast_hasher(), subject_check=check)  # type: ignore[arg-type]
        try:
            pair = await rt.sessions.start("external-user")
            if external_lives:
                assert (await rt.sessions.refresh(pair.refresh_token)).session_id == pair.session_id
            else:
                with pytest.raises(SessionRevoked):
                    await rt.sessions.refresh(pair.refresh_token)
        finally:
            await rt.close()
    assert asked == ["external-user"]

    rt = await open_runtime(settings, hasher=testing.fast_hasher(), subject_check=ours)
    try:
        banned = await rt.sessions.start("banned")
        with pytest.raises(SessionRevoked):
            await rt.sessions.refresh(banned.refresh_token)
    finally:
        await rt.close()
