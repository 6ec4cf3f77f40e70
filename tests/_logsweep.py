"""The log sweep: every log line the test suite makes is searched for tokens and passwords at the end.

DESIGN section 9 and issue 7: "never a token or password in a log line". One corpus (JSON lines in a
temporary directory of the session) is fed from three sources:

- **in-process records**: a tap on :meth:`logging.Logger.handle` sees every record any logger of the test
  process emits, whatever its handlers, level of its handlers or ``propagate`` (uvicorn's and Keyturn's
  server loggers do not propagate). Each record is kept whole, as the most talkative formatter would
  write it: the message with its arguments, the exception text and stack, and Keyturn's structured
  fields (what ``keyturn serve``'s JSON formatter writes); a secret one formatter would leave out is
  still seen. The ``keyturn`` loggers run at DEBUG for the session, so routine events such as
  ``session.rotated`` are emitted and swept too.
- **subprocess output**: the log files of ``keyturn serve`` (started at ``--log-level debug
  --access-log`` by ``tests/e2e/_server.py``), of the resource apps and of the SimpleJWT server are
  registered when launched (:func:`watch`) and collected when stopped (:func:`collect`) and, for any left,
  at the end; the captured output of CLI runs and client processes is recorded as it is read
  (:func:`record_output`).
- **a registry of secrets**: every password in ``tests/_secrets.MADE``, every password a test sends in an
  httpx request body or gives an in-process user directory to add, to set or, rightly, to check (a wrong
  guess that reached the directory from another client, a fuzzer's, is no one's secret); every token an
  in-process codec minted or an httpx response carried (body fields and the refresh cookie), kept by its
  signature.

A line leaks when it holds a JWT-shaped string (a base64url JSON header, a dot and at least part of a
payload: any whole or cut access or refresh token, Keyturn's or another issuer's), a registered token's
signature (as a base64url run of its own), or a registered password (anywhere, as a substring).
:func:`scan_lines` reports leaks without repeating the secret: its length and a fingerprint instead.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx

from ._secrets import MADE

JWT_SHAPED = re.compile(r"eyJ[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]{6,}(?:\.[A-Za-z0-9_-]*)?")
"""A base64url JSON object (``{"`` encodes as ``eyJ``), a dot, and at least the start of another segment
(and the signature, if there is one): every compact JWS/JWT, whole or cut short, and nothing that a log
legitimately holds."""

_RUN = re.compile(r"[A-Za-z0-9_-]{20,}")
"""A base64url run long enough to be a token's signature (HS256: 43 characters, ES256: 86)."""

MIN_PASSWORD_LENGTH = 8
"""Shorter strings sent as passwords (``"x"`` in a malformed-request test) are too common to search for."""

_MAX_INSPECTED_BODY = 64 * 1024
_TOKEN_FIELDS = ("access_token", "refresh_token", "access", "refresh", "token")
_REFRESH_COOKIES = ("keyturn_refresh", "__Host-keyturn_refresh")


@dataclass(frozen=True)
class Leak:
    """One line that holds a secret, described without the secret (see :func:`describe`)."""

    source: str
    kinds: tuple[str, ...]
    line: str

    def __str__(self) -> str:
        return f"{self.source}: {', '.join(self.kinds)} in: {self.line}"


def describe(secret: str) -> str:
    """A secret's length and fingerprint: enough to find it, not enough to use it."""
    return f"{len(secret)} chars, sha256 {hashlib.sha256(secret.encode()).hexdigest()[:12]}"


def mask(line: str, secrets: Iterable[str]) -> str:
    """``line`` with each secret replaced by :func:`describe`, so that a report is not a leak itself."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        line = line.replace(secret, f"<secret withheld: {describe(secret)}>")
    return line[:600]


@dataclass
class Registry:
    """Secrets the suite made or saw: passwords (as text) and tokens (by their signatures)."""

    passwords: set[str] = field(default_factory=set)
    signatures: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def password(self, value: object) -> None:
        if isinstance(value, str) and len(value) >= MIN_PASSWORD_LENGTH:
            with self._lock:
                self.passwords.add(value)

    def token(self, value: object) -> None:
        """Keep a compact token's signature; anything else is ignored."""
        if isinstance(value, str) and value.count(".") == 2:
            signature = value.rsplit(".", 1)[1]
            if len(signature) >= 20:
                with self._lock:
                    self.signatures.add(signature)

    def all_passwords(self) -> set[str]:
        with self._lock:
            return {p for p in self.passwords | MADE if len(p) >= MIN_PASSWORD_LENGTH}


def scan_lines(lines: Iterable[tuple[str, str]], registry: Registry) -> list[Leak]:
    """The leaks in ``(source, line)`` pairs, judged against ``registry``."""
    passwords = registry.all_passwords()
    signatures = registry.signatures
    found: dict[tuple[str, str], dict[str, str]] = {}  # (source, line) -> secret -> kind
    batch: list[tuple[str, str]] = []

    def flush() -> None:
        # Passwords are searched for in a whole batch at once (str.find runs at C speed); a hit is then
        # traced to its line. Cheaper than asking every line about every password.
        text = "\n".join(line for _, line in batch)
        for password in passwords:
            if password in text:
                for entry in batch:
                    if password in entry[1]:
                        found.setdefault(entry, {})[password] = "password"
        batch.clear()

    for entry in lines:
        line = entry[1]
        for match in JWT_SHAPED.finditer(line):
            found.setdefault(entry, {})[match.group()] = "JWT-shaped string"
        for run in _RUN.findall(line):
            if run in signatures:
                found.setdefault(entry, {})[run] = "token signature"
        batch.append(entry)
        if len(batch) >= 2000:
            flush()
    flush()
    return [
        Leak(source, tuple(sorted(set(secrets.values()))), mask(line, secrets))
        for (source, line), secrets in found.items()
    ]


# -- the corpus ------------------------------------------------------------------------------------

_PLAIN = logging.Formatter("%(name)s %(levelname)s %(message)s")


def render(record: logging.LogRecord) -> str:
    """Everything a formatter could print of ``record``, on one line."""
    parts = []
    try:
        parts.append(_PLAIN.format(record))
    except (TypeError, ValueError, KeyError):  # a record whose arguments do not fit its message
        parts.append(f"{record.name} {record.levelname} {record.msg!r} {record.args!r}")
    fields = getattr(record, "keyturn", None)
    if fields is not None:
        parts.append(json.dumps(fields, default=str))
    return " | ".join(parts).replace("\n", "\\n")


class Corpus:
    """Log lines by source, in a file of JSON lines; subprocess log files are read in as they end."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / "corpus.jsonl"
        self.registry = Registry()
        self._lock = threading.Lock()
        self._watched: dict[Path, str] = {}
        self._offsets: dict[Path, int] = {}
        self._out = self.path.open("a", encoding="utf-8")
        self._in = self.path.open(encoding="utf-8")  # still readable if someone cleans /tmp meanwhile

    def add(self, source: str, line: str) -> None:
        text = json.dumps({"source": source, "line": line}) + "\n"
        with self._lock:
            if not self._out.closed:  # a daemon thread may still log after the session has ended
                self._out.write(text)

    def add_record(self, record: logging.LogRecord) -> None:
        try:
            line = render(record)
        except Exception as exc:  # noqa: BLE001 - the tap must never break the code that logs
            line = f"{record.name} {record.levelname} <record not rendered: {type(exc).__name__}>"
        self.add(f"in-process {record.name}", line)

    def add_output(self, source: str, *outputs: str | bytes | None) -> None:
        for output in outputs:
            if output is None:
                continue
            text = output.decode(errors="replace") if isinstance(output, bytes) else output
            for line in text.splitlines():
                if line.strip():
                    self.add(source, line)

    def watch(self, path: Path, source: str) -> None:
        """Collect ``path`` (a subprocess's log file) when :meth:`collect` is called, or at the end."""
        with self._lock:
            self._watched[path] = source

    def collect(self, path: Path) -> None:
        """Read what ``path`` gained since it was last read (its process has ended, or the suite has)."""
        with self._lock:
            source = self._watched.get(path, path.name)
            start = self._offsets.get(path, 0)
        try:
            with path.open("rb") as file:
                file.seek(start)
                data = file.read()
        except OSError:
            return
        with self._lock:
            self._offsets[path] = start + len(data)
        self.add_output(f"subprocess {source}", data)

    def collect_all(self) -> None:
        with self._lock:
            paths = list(self._watched)
        for path in paths:
            self.collect(path)

    def lines(self) -> Iterator[tuple[str, str]]:
        """Every line so far, in order (a line still being written by another thread is left out)."""
        with self._lock:
            self._out.flush()
        self._in.seek(0)
        for raw in self._in:  # writers append through their own handle; this one only reads
            if raw.endswith("\n"):
                entry = json.loads(raw)
                yield entry["source"], entry["line"]

    def scan(self) -> list[Leak]:
        self.collect_all()
        return scan_lines(self.lines(), self.registry)

    def close(self) -> None:
        with self._lock:
            self._out.close()
            self._in.close()


# -- the session's corpus and taps -----------------------------------------------------------------

SWEEP: Corpus | None = None
"""The session's corpus while the suite runs (``None`` before the session starts and after it ends)."""

_undo: list[Callable[[], None]] = []


def watch(path: Path, source: str) -> None:
    if SWEEP is not None:
        SWEEP.watch(path, source)


def collect(path: Path) -> None:
    if SWEEP is not None:
        SWEEP.collect(path)


def record_output(source: str, *outputs: str | bytes | None) -> None:
    if SWEEP is not None:
        SWEEP.add_output(f"subprocess {source}", *outputs)


def _patch(owner: Any, name: str, make: Callable[[Any], Any]) -> None:
    original = owner.__dict__[name]
    setattr(owner, name, make(original))
    _undo.append(lambda: setattr(owner, name, original))


def _inspect_request(registry: Registry, request: httpx.Request) -> None:
    content_type = request.headers.get("content-type", "")
    try:
        content = request.content
    except httpx.RequestNotRead:  # a streamed body is left alone
        return
    if not content or len(content) > _MAX_INSPECTED_BODY:
        return
    fields: dict[str, object] = {}
    if content_type.startswith("application/x-www-form-urlencoded"):
        form = parse_qs(content.decode(errors="replace"), max_num_fields=16)
        fields = {name: values[0] for name, values in form.items()}
    elif content_type.startswith("application/json") and content.lstrip().startswith(b"{"):
        try:
            body = json.loads(content)
        except (ValueError, RecursionError):  # a test's deliberately broken body
            return
        if isinstance(body, dict):
            fields = body
    registry.password(fields.get("password"))
    for name in _TOKEN_FIELDS:
        registry.token(fields.get(name))


def _inspect_response(registry: Registry, response: httpx.Response) -> None:
    for header in response.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        if name.strip() in _REFRESH_COOKIES:
            registry.token(rest.split(";", 1)[0])
    if not response.headers.get("content-type", "").startswith("application/json"):
        return
    try:
        content = response.content
    except httpx.ResponseNotRead:  # a streamed response is left alone
        return
    if len(content) > _MAX_INSPECTED_BODY or (b"token" not in content and b'"access"' not in content):
        return
    try:
        body = json.loads(content)
    except (ValueError, RecursionError):
        return
    if isinstance(body, dict):
        for name in _TOKEN_FIELDS:
            registry.token(body.get(name))


def _install_taps(corpus: Corpus) -> None:
    from keyturn.tokens import TokenCodec
    from keyturn.users import UserDirectory

    registry = corpus.registry

    def handle(original: Callable[[logging.Logger, logging.LogRecord], None]) -> Any:
        @functools.wraps(original)
        def tapped(self: logging.Logger, record: logging.LogRecord) -> None:
            corpus.add_record(record)
            original(self, record)

        return tapped

    def sync_send(original: Callable[..., httpx.Response]) -> Any:
        @functools.wraps(original)
        def tapped(self: httpx.Client, request: httpx.Request, **kwargs: Any) -> httpx.Response:
            _inspect_request(registry, request)
            response = original(self, request, **kwargs)
            _inspect_response(registry, response)
            return response

        return tapped

    def async_send(original: Callable[..., Any]) -> Any:
        @functools.wraps(original)
        async def tapped(self: httpx.AsyncClient, request: httpx.Request, **kwargs: Any) -> httpx.Response:
            _inspect_request(registry, request)
            response: httpx.Response = await original(self, request, **kwargs)
            _inspect_response(registry, response)
            return response

        return tapped

    def minted(original: Callable[..., str]) -> Any:
        @functools.wraps(original)
        def tapped(*args: Any, **kwargs: Any) -> str:
            token = original(*args, **kwargs)
            registry.token(token)
            return token

        return tapped

    def password_at(index: int, *, if_right: bool = False) -> Callable[[Callable[..., Any]], Any]:
        """Registers the password argument; with ``if_right``, only when the call returns (it was right).

        Schemathesis logs in with Hypothesis's strings, which include the suite's own literals: a
        "password" of ``/auth/refresh`` would make every access log line a leak.
        """

        def make(original: Callable[..., Any]) -> Any:
            @functools.wraps(original)
            async def tapped(*args: Any, **kwargs: Any) -> Any:
                password = kwargs.get("password", args[index] if len(args) > index else None)
                if not if_right:
                    registry.password(password)
                result = await original(*args, **kwargs)
                if if_right:
                    registry.password(password)
                return result

            return tapped

        return make

    _patch(logging.Logger, "handle", handle)
    _patch(httpx.Client, "send", sync_send)
    _patch(httpx.AsyncClient, "send", async_send)
    _patch(TokenCodec, "encode_access", minted)
    _patch(TokenCodec, "encode_refresh", minted)
    for method in ("add", "set_password"):
        _patch(UserDirectory, method, password_at(2))  # (self, username, password)
    _patch(UserDirectory, "authenticate", password_at(2, if_right=True))
    keyturn_logger = logging.getLogger("keyturn")
    level = keyturn_logger.level
    keyturn_logger.setLevel(logging.DEBUG)
    _undo.append(lambda: keyturn_logger.setLevel(level))


def start() -> Corpus:
    """Open the session's corpus (in ``KEYTURN_LOG_SWEEP_DIR`` if set) and install the taps."""
    global SWEEP
    corpus = Corpus(
        Path(tempfile.mkdtemp(prefix="keyturn-logsweep-", dir=os.environ.get("KEYTURN_LOG_SWEEP_DIR")))
    )
    _install_taps(corpus)
    SWEEP = corpus
    return corpus


def finish(keep: bool) -> Path | None:
    """Remove the taps; delete the corpus unless ``keep`` or ``KEYTURN_KEEP_LOG_SWEEP`` (then return
    where it is)."""
    global SWEEP
    corpus, SWEEP = SWEEP, None
    while _undo:
        _undo.pop()()
    if corpus is None:
        return None
    corpus.close()
    if keep or os.environ.get("KEYTURN_KEEP_LOG_SWEEP"):
        return corpus.directory
    shutil.rmtree(corpus.directory, ignore_errors=True)
    return None
