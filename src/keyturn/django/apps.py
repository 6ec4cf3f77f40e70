"""The ``keyturn.django`` app: checks ``settings.KEYTURN`` at start-up and listens to the user model."""

from __future__ import annotations

from django.apps import AppConfig


class KeyturnConfig(AppConfig):
    name = "keyturn.django"
    label = "keyturn"
    verbose_name = "Keyturn"

    def ready(self) -> None:
        from . import conf, signals

        conf.load()  # ImproperlyConfigured now, not at the first request: a database it cannot use, say
        signals.connect()
