"""The store's Lua scripts, loaded from the ``.lua`` files beside this module (shipped in the wheel).

Every script is ``common.lua`` (the prefix and the helpers) followed by its own file; each takes the key
prefix as ``ARGV[1]``, and its file says what else it takes and what it answers.
"""

from __future__ import annotations

import dataclasses
import functools
from importlib import resources

import redis.asyncio
from redis.commands.core import AsyncScript


@functools.cache
def source(name: str) -> str:
    """The Lua source of script ``name``: ``common.lua`` and then ``{name}.lua``."""
    files = resources.files(__package__)
    return files.joinpath("common.lua").read_text("utf-8") + files.joinpath(f"{name}.lua").read_text("utf-8")


@dataclasses.dataclass(frozen=True, slots=True)
class Scripts:
    """The scripts, registered on one client (sent with ``EVALSHA``, loaded again if the server lost them)."""

    create_session: AsyncScript
    read_refresh: AsyncScript
    rotate: AsyncScript
    reuse: AsyncScript
    revoke_session: AsyncScript
    revoke_subject: AsyncScript
    revoke_access_token: AsyncScript
    prune: AsyncScript
    list_sessions: AsyncScript
    ensure_keys: AsyncScript
    delete_keys: AsyncScript
    add_keys: AsyncScript
    add_user: AsyncScript
    update_user: AsyncScript
    list_users: AsyncScript
    add_client: AsyncScript
    remove_client: AsyncScript
    list_clients: AsyncScript
    rate_limit_take: AsyncScript
    migrate: AsyncScript

    @classmethod
    def on(cls, client: redis.asyncio.Redis) -> Scripts:
        return cls(**{f.name: client.register_script(source(f.name)) for f in dataclasses.fields(cls)})
