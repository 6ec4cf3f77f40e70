"""keyturn.testing: the helpers users import into their own test suites."""

from __future__ import annotations

import inspect

from keyturn import testing
from keyturn.clock import FrozenClock


def test_public_helpers_are_not_collected_as_tests() -> None:
    """``from keyturn.testing import *`` in a test module must not make pytest run a helper as a test."""
    test_like = {
        name
        for name in testing.__all__
        if name.startswith("test_") or (inspect.isclass(getattr(testing, name)) and name.startswith("Test"))
    }
    assert test_like == {"TestService"}  # a new test-like name must be added here on purpose
    for name in test_like:
        assert getattr(testing, name).__test__ is False, f"pytest would collect keyturn.testing.{name}"


def test_frozen_clock_moves_only_when_told() -> None:
    """Tests control time completely, so expiry tests never sleep."""
    clock = FrozenClock(100)

    assert clock.now() == clock.now() == 100.0
    clock.advance(2.5)
    assert clock.now() == 102.5
    clock.set(7)
    assert clock.now() == 7.0


def test_make_settings_ignores_nothing_it_is_given() -> None:
    """Overrides reach the settings, and each call gets its own master secret."""
    first, second = testing.make_settings(leeway=3), testing.make_settings()

    assert first.leeway == 3
    assert first.store_url == "memory://"
    assert first.secret_key is not None
    assert second.secret_key is not None
    assert first.secret_key.get_secret_value() != second.secret_key.get_secret_value()
