from api import views
from django.conf import settings
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/me/", views.me),
    path("api/status/", views.status),
]

if settings.TOKENS == "keyturn":
    from api import sso

    from keyturn.django.oauth_views import server_metadata

    urlpatterns += [
        path("api/sso/", sso.sso),  # the project's own sign-in: keyturn.django.start_session
        path("api/sso-async/", sso.sso_async),
        path("api/", include("keyturn.django.simplejwt_urls")),  # SimpleJWT's four routes, served by Keyturn
        path("api/auth/", include("keyturn.django.urls")),  # Keyturn's own session API
        path("oauth/", include("keyturn.django.oauth_urls")),  # OAuth 2.0: token, revoke, introspect
        path(".well-known/oauth-authorization-server", server_metadata),  # RFC 8414, at the root
    ]
else:
    from rest_framework_simplejwt.views import (
        TokenBlacklistView,
        TokenObtainPairView,
        TokenRefreshView,
        TokenVerifyView,
    )

    urlpatterns += [
        path("api/token/", TokenObtainPairView.as_view(), name="token_obtain_pair"),
        path("api/token/refresh/", TokenRefreshView.as_view(), name="token_refresh"),
        path("api/token/verify/", TokenVerifyView.as_view(), name="token_verify"),
        path("api/token/blacklist/", TokenBlacklistView.as_view(), name="token_blacklist"),
    ]
