"""What the SQL stores share: their column lists, named as the records' fields."""

from __future__ import annotations

SESSION_COLUMNS = (
    "sid, sub, created_at, absolute_expires_at, head_jti, gen, last_seen_at, state, "
    "revoked_reason, revoked_at, user_agent, ip, client_id, claims"
)
REFRESH_COLUMNS = "jti, sid, gen, kid, issued_at, expires_at, rotated_at"
KEY_COLUMNS = "kid, use, alg, material, public_jwk, created_at, active"
USER_COLUMNS = "username, password_hash, created_at, disabled"
