"""A Flask resource server behind Keyturn's WSGI middleware, run as its own process.

``python -m tests.e2e.apps.flask_resource --service URL --port N``; served by werkzeug's threaded server.
The verifier's other options come from the ``KEYTURN_*`` environment (``REVOCATION_POLL_INTERVAL``,
``LEEWAY`` and so on).

- ``GET /whoami``: the token's ``sub``, ``sid``, ``jti`` and ``kid`` (from ``request.environ``);
- ``GET /status``: the verifier's status, exempt from the token check.
"""

from __future__ import annotations

import argparse
import logging
import signal
from types import FrameType
from typing import Any

from flask import Flask, jsonify, request
from werkzeug.serving import make_server

from keyturn.config import Settings
from keyturn.middleware import AccessClaims, AccessTokenVerifier
from keyturn.middleware.wsgi import KeyturnWSGIMiddleware

from ._listening import announce


def make_app(verifier: AccessTokenVerifier) -> Flask:
    app = Flask(__name__)

    @app.get("/whoami")
    def whoami() -> Any:
        token: AccessClaims = request.environ["keyturn.token"]
        return jsonify(sub=token.sub, sid=token.sid, jti=token.jti, kid=token.kid)

    @app.get("/status")
    def status() -> Any:
        return jsonify(verifier.status())

    app.wsgi_app = KeyturnWSGIMiddleware(app.wsgi_app, verifier, exempt=["/status"])  # type: ignore[method-assign]
    return app


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--service", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no request lines
    verifier = AccessTokenVerifier.for_service(args.service, settings=Settings())
    server = make_server("127.0.0.1", args.port, make_app(verifier), threaded=True)
    announce(args.port)
    signal.signal(signal.SIGTERM, _stop)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        verifier.close()


if __name__ == "__main__":
    main()
