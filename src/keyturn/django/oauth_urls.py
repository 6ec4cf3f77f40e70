"""The OAuth 2.0 endpoints under one prefix: ``path("oauth/", include("keyturn.django.oauth_urls"))``.

``token``, ``revoke`` and ``introspect`` answer as ``keyturn serve``'s ``/oauth/*`` do, ``jwks.json`` is the
JWKS the metadata's ``jwks_uri`` names; any other path under the prefix answers 404 ``invalid_request`` in
RFC 6749's form. The metadata document (RFC 8414) lives at the host's root, which the project routes
itself: ``path(".well-known/oauth-authorization-server", oauth_views.server_metadata)``.
"""

from __future__ import annotations

from django.urls import path, re_path

from ..http import OAUTH_ERRORS
from . import oauth_views, views
from .views import endpoint

app_name = oauth_views.NAMESPACE

urlpatterns = [
    path("token", endpoint(("POST",), oauth_views.token_flow, "token", form=OAUTH_ERRORS), name="token"),
    path("revoke", endpoint(("POST",), oauth_views.revoke_flow, "revoke", form=OAUTH_ERRORS), name="revoke"),
    path(
        "introspect",
        endpoint(("POST",), oauth_views.introspect_flow, "introspect", form=OAUTH_ERRORS),
        name="introspect",
    ),
    path("jwks.json", endpoint(("GET",), views.jwks_flow, "jwks"), name="jwks"),
    re_path(
        r"^.*$",
        endpoint(
            ("GET", "POST", "PUT", "PATCH", "DELETE"), oauth_views.not_found_flow, "nf", form=OAUTH_ERRORS
        ),
    ),
]
