"""``redis://host:port/db?prefix=keyturn:`` (or ``rediss://``): a store on one Redis server.

The store (``_store``), its Lua scripts (one ``.lua`` file each beside it, with ``common.lua`` prepended
to every one; loaded by ``_scripts``), records as Redis keeps them (``_records``), and the batches its
scripts are sent in (``_batches``: the scripts called during one turn of the event loop go together, on
one connection).

Atomicity. Every write is one Lua script (sent with ``EVALSHA``, loaded again if the server lost it), and
Redis runs a script without interleaving any other command, so each is all or nothing as seen by others.
Reads that need more than one key (a listing, a session with its head) are Lua scripts too.
``refresh`` keeps the decision in Python: one script reads the session, whose hash holds its refresh
chain (``keyturn.store._chain``: the head and the recently rotated generations, no record per token);
``decide`` runs on that snapshot; a Rotate (one ``HSET`` of the session) or a Reuse is then applied by a
script that first checks that the session's ``head_jti`` and ``state`` are still what was read (a
compare-and-set) and otherwise changes nothing, so the caller reads and decides again. A Replay or a
Reject writes nothing and answers from the snapshot, which one script read consistently. A refresh's
rate-limit takes are made by the first reading script, before it reads anything, and never again by a
second one; the built-in users' subject check, when asked, is read by that script too (the user's hash).

Key layout (``{p}`` is the prefix, ``keyturn:`` by default; every key starts with it):

===========================  ======  ==========================================================
``{p}s:{sid}``               hash    a session (absent fields are ``None``; ``claims`` is JSON) and
                                     its refresh chain (``head_kid``, ``head_issued_at``,
                                     ``head_expires_at``, ``rotated``)
``{p}sessions``              zset    every session id, scored by ``created_at`` (listing order)
``{p}sessions:exp``          zset    every session id, scored by ``absolute_expires_at`` (pruning)
``{p}sub:{sub}``             zset    the session ids of one subject, scored by ``created_at``
``{p}rev:seq``               string  the last revocation sequence number (``INCR``)
``{p}rev``                   zset    the revocation feed, scored by ``seq``; members are
                                     ``seq|kind|expires_at|value``
``{p}rev:exp``               zset    the same members, scored by ``expires_at`` (pruning)
``{p}rev:jti``               zset    revoked access-token jtis, scored by ``expires_at``
``{p}keys``                  hash    signing keys: ``kid`` to JSON (material in base64)
``{p}keys:order``            zset    kids in the order they were added; ``{p}keys:seq`` counts
``{p}u:{username}``          hash    a user; ``{p}users`` (set) holds every username
``{p}c:{client_id}``         hash    a registered OAuth 2.0 client (``secret_hash`` absent for a
                                     public one; ``dpop``: ``required``, else optional, as when
                                     absent); ``{p}clients`` (set) holds every client id
``{p}rl:{key}``              string  a rate-limit bucket: its GCRA theoretical arrival time in
                                     microseconds, expiring when the bucket is full again
``{p}schema``                string  the layout's version (2: state per session); ``open``
                                     moves an older layout's ``{p}r:{jti}`` refresh records,
                                     ``{p}sj:{sid}`` and ``{p}refresh:exp`` into the sessions
                                     (``migrate.lua``), a batch per script
===========================  ======  ==========================================================

Floats are written with ``repr`` and read with ``float``, so they come back exactly. ``prune(now)``
removes expired entries explicitly, by the ``now`` it is given, and counts what ``SQLiteStore.prune``
counts (sessions, revocation entries). Sessions and per-subject indexes also carry a TTL, as a safety
net only: a duration (the record's lifetime plus a day) counted from when it was written, never an
absolute time taken from the record, so records written
with a test's frozen clock live as long as they should.

Scripts build the keys of index members (``{p}s:{sid}`` for each sid of a listing, say) from the prefix,
so the store needs one Redis server (replicas are fine); for Redis Cluster every key would need one slot.
"""

from __future__ import annotations

from ._store import DEFAULT_PREFIX, RedisStore, split_url

__all__ = ["DEFAULT_PREFIX", "RedisStore", "split_url"]
