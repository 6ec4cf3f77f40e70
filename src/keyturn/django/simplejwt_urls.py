"""djangorestframework-simplejwt's routes, served by Keyturn: ``path("api/", include(...))`` gives
``api/token/``, ``api/token/refresh/``, ``api/token/verify/`` and ``api/token/blacklist/``, named as
SimpleJWT's documentation names them (see :mod:`keyturn.django.simplejwt`)."""

from __future__ import annotations

from django.urls import path

from . import simplejwt

urlpatterns = [
    path("token/", simplejwt.obtain_pair, name="token_obtain_pair"),
    path("token/refresh/", simplejwt.refresh, name="token_refresh"),
    path("token/verify/", simplejwt.verify, name="token_verify"),
    path("token/blacklist/", simplejwt.blacklist, name="token_blacklist"),
]
