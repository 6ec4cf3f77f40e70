"""Settings: every one has a ``KEYTURN_*`` environment variable and a constructor argument.

Built once at the edge (the CLI, ``create_app``) and passed down; the core never reads the environment.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Iterable, Mapping
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Annotated, Self, TypeAlias
from urllib.parse import urlsplit

from pydantic import Field, PlainSerializer, PlainValidator, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .errors import ConfigError
from .ratelimit import RateLimit
from .typing import AccessAlgorithm, DpopMode

DEFAULT_DATA_DIR = Path(".keyturn")
ENV_PREFIX = "KEYTURN_"

_USERINFO_PASSWORD = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^/@:]*:)[^/@]*@")
_QUERY_PASSWORD = re.compile(r"(?i)([?&]password=)[^&#]*")


Network: TypeAlias = IPv4Network | IPv6Network


def _rate_limit(value: object) -> RateLimit | None:
    """``"COUNT/SECONDS"``, ``"off"``, a :class:`RateLimit` or ``None``."""
    if value is None or isinstance(value, RateLimit):
        return value
    if isinstance(value, str):
        return RateLimit.parse(value)
    raise ValueError("a rate limit is COUNT/SECONDS (such as 120/60) or off")


def _listed(value: object, refusal: str) -> Iterable[object]:
    """A list setting's items: ``value`` itself, or one string split at commas and spaces; ``ValueError``
    with ``refusal`` for anything else."""
    if isinstance(value, str):
        return value.replace(",", " ").split()
    if isinstance(value, Iterable):
        return value
    raise ValueError(refusal)


def _networks(value: object) -> tuple[Network, ...]:
    """Addresses and networks (CIDR), as a list or one string separated by commas or spaces."""
    found = []
    for item in _listed(value, "trusted proxies are addresses or networks (CIDR), separated by commas"):
        if isinstance(item, IPv4Network | IPv6Network):
            found.append(item)
            continue
        try:
            found.append(ipaddress.ip_network(str(item).strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"{item!r} is not an IP address or network: {exc}") from exc
    return tuple(found)


def _origins(value: object) -> tuple[str, ...]:
    """Web origins (``https://app.example.com``), as a list or one string separated by commas or spaces;
    each as a browser sends it in ``Origin``, so that it can match one."""
    items = _listed(value, "CORS origins are web origins (https://app.example.com), separated by commas")
    return tuple(dict.fromkeys(_origin(str(item).strip()) for item in items))


def _origin(text: str) -> str:
    if text == "*":
        raise ValueError(
            "'*' is refused: the browser's calls carry credentials (cookie mode's refresh cookie), and any "
            "origin allowed with credentials could use a visitor's session; list the origins of your pages"
        )
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{text!r} is not an origin: {exc}") from exc
    default = {"https": 443, "http": 80}.get(parts.scheme.lower())
    if default is None or not parts.hostname or parts.username is not None or parts.password is not None:
        raise ValueError(f"{text!r} is not an origin: it is http(s)://host[:port]")
    if parts.path or parts.query or parts.fragment or text.endswith(("?", "#")):
        raise ValueError(f"{text!r} is not an origin: no path, not even a trailing /")
    if port == default:
        raise ValueError(f"{text!r} is not an origin as browsers send it: leave the default port {port} out")
    canonical = f"{parts.scheme.lower()}://{_origin_host(text, parts.hostname)}"
    if port is not None:
        canonical += f":{port}"
    # Only letter case may differ (browsers send lowercase, and the origin is kept lowercase): any other
    # difference (a port of 08443 or none after ':', a trailing dot, a host not in punycode) would never
    # equal a browser's Origin.
    if text.lower() != canonical:
        raise ValueError(f"{text!r} is not an origin as browsers send it: write it as {canonical}")
    return canonical


def _origin_host(text: str, hostname: str) -> str:
    """``hostname`` (lowercase, without brackets) as browsers serialize it in ``Origin``."""
    try:
        if ":" in hostname:
            return f"[{ipaddress.IPv6Address(hostname).compressed}]"
        return hostname.removesuffix(".").encode("idna").decode("ascii")
    except (ValueError, UnicodeError) as exc:
        raise ValueError(f"{text!r} is not an origin: its host is no domain name or IP address") from exc


RateLimitSetting: TypeAlias = Annotated[
    RateLimit | None,
    NoDecode,
    PlainValidator(_rate_limit),
    PlainSerializer(lambda limit: "off" if limit is None else str(limit), return_type=str),
]
Networks: TypeAlias = Annotated[
    tuple[Network, ...],
    NoDecode,
    PlainValidator(_networks),
    PlainSerializer(lambda nets: ",".join(str(n) for n in nets), return_type=str),
]
Origins: TypeAlias = Annotated[
    tuple[str, ...], NoDecode, PlainValidator(_origins), PlainSerializer(",".join, return_type=str)
]


class Settings(BaseSettings):
    """Keyturn's settings; durations are in seconds."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="forbid")

    access_token_lifetime: int = Field(900, gt=0, description="Access-token lifetime.")
    refresh_idle_lifetime: int = Field(
        1_209_600, gt=0, description="Refresh-token lifetime, renewed by each refresh (sliding)."
    )
    session_absolute_lifetime: int = Field(
        2_592_000, gt=0, description="Session lifetime from login; never extended."
    )
    grace_period: int = Field(
        30, ge=0, description="How long a rotated refresh token still answers with the current one."
    )
    leeway: int = Field(30, ge=0, le=300, description="Clock leeway for exp/nbf/iat checks.")
    revocation_poll_interval: float = Field(1.0, gt=0, description="Validators' feed poll interval.")
    revocation_fail_closed_after: float | None = Field(
        None,
        gt=0,
        description="Validators refuse tokens (503) once the feed has been unreadable this long; "
        "default: never.",
    )
    store_url: str | None = Field(None, description="Store URL; default sqlite:///<data_dir>/keyturn.db.")
    data_dir: Path = Field(DEFAULT_DATA_DIR, description="Keys' master secret and the SQLite file.")
    secret_key: SecretStr | None = Field(
        None,
        description="Master secret that encrypts private keys in the store; "
        "default: a 0600 file in data_dir.",
    )
    issuer: str = Field("keyturn", min_length=1)
    audience: str = Field("keyturn-api", min_length=1)
    access_token_algorithm: AccessAlgorithm = "ES256"
    key_reload_interval: float = Field(
        30.0, gt=0, description="How often a server reloads its keys, to pick up rotations."
    )
    prune_interval: int = Field(
        600,
        ge=0,
        description="How often the server deletes what has expired (0: never; see `keyturn prune`).",
    )
    cookie_mode: bool = Field(False, description="Refresh token only in an HttpOnly cookie.")
    route_prefix: str = Field("/auth", pattern=r"^(/[A-Za-z0-9._~-]+)*$")
    rate_limits: bool = Field(True, description="Enforce the rate limits below; off: none at all.")
    rate_limit_refresh_per_ip: RateLimitSetting = Field(
        RateLimit(1200, 60), description="Refreshes per client address (COUNT/SECONDS, or off)."
    )
    rate_limit_refresh_per_session: RateLimitSetting = Field(
        RateLimit(120, 60), description="Refreshes per session (COUNT/SECONDS, or off)."
    )
    rate_limit_login_per_ip: RateLimitSetting = Field(
        RateLimit(300, 60), description="Logins per client address (COUNT/SECONDS, or off)."
    )
    rate_limit_login_per_username_ip: RateLimitSetting = Field(
        RateLimit(30, 900), description="Logins per username and client address (COUNT/SECONDS, or off)."
    )
    http_head_timeout: float = Field(
        10.0, gt=0, description="keyturn serve: seconds for a request's line and headers to arrive (408)."
    )
    http_body_timeout: float = Field(
        10.0, gt=0, description="keyturn serve: seconds for a request's body to arrive after its head (408)."
    )
    http_idle_timeout: float = Field(
        5.0, gt=0, description="keyturn serve: seconds a kept-alive connection may sit idle."
    )
    http_max_header_bytes: int = Field(
        32_768, ge=1024, description="keyturn serve: bytes of request line and headers (431 past it)."
    )
    http_max_headers: int = Field(100, ge=8, description="keyturn serve: header fields per request (431).")
    http_max_connections: int = Field(
        1000, gt=0, description="keyturn serve: open connections; one more gets 503 and a logged warning."
    )
    trusted_proxies: Networks = Field(
        (),
        description="Proxies whose X-Forwarded-For is believed: addresses or networks, comma-separated.",
    )
    cors_origins: Origins = Field(
        (),
        description="Web origins whose pages may call the service from another origin (CORS), "
        "comma-separated; none: no CORS headers.",
    )
    # -- issue 18, the routes' half: the global login limit and the production switches --------------
    rate_limit_login_global: RateLimitSetting = Field(
        RateLimit(600, 60),
        description="Logins of the whole service, from any address (COUNT/SECONDS, or off).",
    )
    docs: bool = Field(
        False, description="Serve Swagger UI at /docs (its scripts come from a CDN); /openapi.json always."
    )
    metrics: bool = Field(True, description="Serve /metrics (Prometheus).")
    demo: bool = Field(True, description="Serve the demo page at /demo/.")
    cookie_host_prefix: bool = Field(
        False, description="Name the refresh cookie __Host-keyturn_refresh, with Path=/ (see Cookie mode)."
    )

    # -- issue 17: DPoP (RFC 9449) ------------------------------------------------------------------
    dpop: DpopMode = Field(
        "optional",
        description="DPoP: optional (a session started with a proof is bound to its key), required, or off "
        "(no new session is bound).",
    )
    dpop_bind_access_tokens: bool = Field(
        False, description="A bound session's access tokens are bound too (cnf.jkt, token_type DPoP)."
    )
    dpop_nonces: bool = Field(False, description="DPoP proofs must carry the service's nonce (DPoP-Nonce).")
    dpop_proof_max_age: int = Field(
        60, gt=0, le=600, description="Seconds a DPoP proof is accepted after its iat."
    )

    @model_validator(mode="after")
    def _lifetimes_fit(self) -> Self:
        if self.refresh_idle_lifetime > self.session_absolute_lifetime:
            raise ValueError("refresh_idle_lifetime must not exceed session_absolute_lifetime")
        if self.access_token_lifetime > self.refresh_idle_lifetime:
            raise ValueError("access_token_lifetime must not exceed refresh_idle_lifetime")
        return self

    @property
    def resolved_store_url(self) -> str:
        """The store URL, with the embedded SQLite default under ``data_dir``."""
        return self.store_url or f"sqlite:///{self.data_dir / 'keyturn.db'}"

    @property
    def store_url_for_display(self) -> str:
        """The store URL without its password, fit for logs and terminals."""
        url = _USERINFO_PASSWORD.sub(r"\1***@", self.resolved_store_url)
        return _QUERY_PASSWORD.sub(r"\1***", url)

    @property
    def revocation_lifetime(self) -> int:
        """How long after a revocation a matching access token can still be valid."""
        return self.access_token_lifetime + self.leeway


_NOT_ECHOED = frozenset({"secret_key", "store_url"})
"""Settings whose values may hold a secret: an error about them never repeats the value."""


def load_settings(**overrides: object) -> Settings:
    """``Settings`` from the environment and ``overrides``; a bad value raises :class:`ConfigError` naming
    the ``KEYTURN_*`` variable the user set (not pydantic's field name) and why it was refused."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(describe_error(exc)) from None


def describe_error(exc: ValidationError) -> str:
    """One line per refused setting: ``KEYTURN_NAME: why (got 'value')``."""
    lines = []
    for error in exc.errors(include_url=False):
        loc = [str(part) for part in error["loc"]]
        message = str(error["msg"])
        if not loc:
            lines.append(f"settings: {message}")
            continue
        name = loc[0]
        got = "" if name in _NOT_ECHOED or error["type"] == "missing" else f" (got {error['input']!r})"
        lines.append(f"{ENV_PREFIX}{name.upper()}: {message}{got}")
    return "; ".join(lines)


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """A warning for each ``KEYTURN_*`` variable in ``environ`` that is no setting (a misspelling is
    otherwise silently ignored), naming the setting it most looks like."""
    known = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}
    warnings = []
    for variable in sorted(environ):
        if not variable.startswith(ENV_PREFIX) or variable in known:
            continue
        close = difflib.get_close_matches(variable, known, n=1, cutoff=0.8)
        hint = f"; did you mean {close[0]}?" if close else ""
        warnings.append(f"{variable} is not a Keyturn setting and is ignored{hint}")
    return warnings
