"""The session contract under one prefix: ``path("api/auth/", include("keyturn.django.urls"))``.

``login``, ``refresh``, ``me``, ``logout``, ``logout-all``, ``sessions``, ``sessions/<id>``, ``revoke``,
``revocations`` and ``.well-known/jwks.json`` answer as ``keyturn serve``'s ``/auth/*`` and JWKS do; any
other path under the prefix answers 404 ``invalid_request``.
"""

from __future__ import annotations

from django.urls import path, re_path

from . import views
from .views import endpoint

app_name = "keyturn"

urlpatterns = [
    path("login", endpoint(("POST",), views.login_flow, "login"), name="login"),
    path("refresh", endpoint(("POST",), views.refresh_flow, "refresh"), name="refresh"),
    path("me", endpoint(("GET",), views.me_flow, "me", resource=True), name="me"),
    path("logout", endpoint(("POST",), views.logout_flow, "logout", resource=True), name="logout"),
    path("logout-all", endpoint(("POST",), views.logout_all_flow, "logout_all"), name="logout-all"),
    path("sessions", endpoint(("GET",), views.sessions_flow, "sessions"), name="sessions"),
    path(
        "sessions/<str:session_id>",
        endpoint(("DELETE",), views.session_flow, "session"),
        name="session",
    ),
    path("revoke", endpoint(("POST",), views.revoke_flow, "revoke"), name="revoke"),
    path("revocations", endpoint(("GET",), views.revocations_flow, "revocations"), name="revocations"),
    path(".well-known/jwks.json", endpoint(("GET",), views.jwks_flow, "jwks"), name="jwks"),
    re_path(r"^.*$", endpoint(("GET", "POST", "PUT", "PATCH", "DELETE"), views.not_found_flow, "nf")),
]
