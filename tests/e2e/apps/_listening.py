"""The line each app prints once it holds its port: its launcher trusts no answer on the port before it.

Another process (another pytest-xdist worker's server) can take the port the launcher found free before the
app binds it; that process would answer the launcher's readiness probe while the app is still starting.
"""

from __future__ import annotations

from typing import Any

LISTENING = "listening on http://127.0.0.1:{port}\n"


def announce(port: int) -> None:
    """Print :data:`LISTENING`: call it once the app's listening socket is bound."""
    print(LISTENING.format(port=port), end="", flush=True)


def serve_uvicorn(app: Any, port: int, **options: Any) -> None:
    """``uvicorn.run(app, host="127.0.0.1", port=port, **options)``, announced once the socket is bound."""
    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=port, **options)
    sock = config.bind_socket()  # exits with uvicorn's error if the port is taken
    announce(port)
    uvicorn.Server(config).run(sockets=[sock])
