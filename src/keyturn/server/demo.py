"""The demo page at ``/demo/``: static files beside this module, with the browser client's bundle.

``make run`` (and ``make test``) build the bundle from ``clients/js`` into ``demo/keyturn.js``. The page
talks to this same service in cookie mode, so it needs no configuration.
"""

from __future__ import annotations

from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

__all__ = ["DEMO_DIR", "DemoFiles"]

DEMO_DIR = Path(__file__).with_name("demo")

SECURITY_HEADERS = {
    # Only this origin's scripts, styles and calls; never framed by another site.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class DemoFiles(StaticFiles):
    """The page's files, each answer with the security headers above."""

    def __init__(self) -> None:
        super().__init__(directory=DEMO_DIR, html=True)

    async def get_response(self, path: str, scope: Scope) -> Response:
        if scope["method"] not in ("GET", "HEAD"):  # StaticFiles' own 405 names no Allow (RFC 9110 15.5.6)
            raise HTTPException(status_code=405, headers={"Allow": "GET, HEAD"})
        response = await super().get_response(path, scope)
        response.headers.update(SECURITY_HEADERS)
        return response
