"""The example project's settings with a password hasher that counts its hashes, one line each in the file
``HASH_COUNT_FILE`` names (every worker process appends to it), for test_dpop's count of a login's hashes.

Loaded by the example's processes (``DJANGO_SETTINGS_MODULE=_counting_settings``, this directory on
``PYTHONPATH``), never by pytest itself.
"""

import os

from django.contrib.auth.hashers import MD5PasswordHasher
from project.settings import *  # noqa: F403

PASSWORD_HASHERS = ["_counting_settings.CountingHasher"]


class CountingHasher(MD5PasswordHasher):
    """The tests' cheap hasher (the same ``md5`` hashes), each hash it computes counted: ``verify``
    (a login's check) and ``set_password`` (``ModelBackend``'s for an unknown user) both encode."""

    def encode(self, password: str, salt: str) -> str:
        with open(os.environ["HASH_COUNT_FILE"], "a") as count:
            count.write(f"{os.getpid()}\n")
        return super().encode(password, salt)
