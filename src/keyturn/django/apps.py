"""The ``keyturn.django`` app: checks ``settings.KEYTURN`` at start-up and listens to the user model;
its system checks warn of ``SIMPLE_JWT`` settings Keyturn does not honour (:mod:`.checks`)."""

from __future__ import annotations

from django.apps import AppConfig


class KeyturnConfig(AppConfig):
    name = "keyturn.django"
    label = "keyturn"
    verbose_name = "Keyturn"

    def ready(self) -> None:
        from django.core.checks import register

        from . import checks, conf, signals

        conf.load()  # ImproperlyConfigured now, not at the first request: a database it cannot use, say
        signals.connect()
        register(checks.simplejwt_settings, "keyturn")
