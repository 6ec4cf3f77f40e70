"""``WWW-Authenticate`` read as RFC 9110 section 11.6.1 writes it: a list of challenges, each a scheme and
its auth-params (quoted strings only, as Keyturn writes them), in one field.

Strict on purpose: a duplicate parameter, an unquoted value or text that is not a parameter fails the test.
"""

from __future__ import annotations

import re

__all__ = ["ALGS", "BARE", "BARE_BEARER", "challenges"]

ALGS = "ES256 EdDSA"
"""What a resource that takes DPoP names in its ``DPoP`` challenge: the metadata's
``dpop_signing_alg_values_supported``."""
BARE_BEARER = 'Bearer realm="keyturn"'
"""No token, where only Bearer is challenged (DPoP off), and a failed login everywhere."""
BARE = f'{BARE_BEARER}, DPoP realm="keyturn", algs="{ALGS}"'
"""No token, at a resource that takes DPoP-bound tokens (RFC 9449 section 7.2): both challenges, no error."""

_SCHEME = re.compile(r"\s*([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*)(?=\s|,|$)")
_PARAM = re.compile(r'\s*([A-Za-z_]+)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')


def challenges(header: str) -> list[tuple[str, dict[str, str]]]:
    """The challenges of one ``WWW-Authenticate`` value, in order: ``[(scheme, params), ...]``."""
    found: list[tuple[str, dict[str, str]]] = []
    position = 0
    while position < len(header):
        param = _PARAM.match(header, position)
        if param is not None and found:
            params = found[-1][1]
            assert param.group(1) not in params, f"duplicate parameter {param.group(1)} in {header!r}"
            params[param.group(1)] = re.sub(r"\\(.)", r"\1", param.group(2))
            position = param.end()
            continue
        scheme = _SCHEME.match(header, position)
        assert scheme is not None, f"malformed challenge at {header[position:]!r}"
        found.append((scheme.group(1), {}))
        position = scheme.end()
        if header[position : position + 1] == ",":  # a scheme without parameters
            position += 1
    return found
