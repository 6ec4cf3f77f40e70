"""Settings: DESIGN section 8's defaults, KEYTURN_* variables, constructor arguments, validation."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from keyturn.config import Settings, load_settings, unknown_variables
from keyturn.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with no KEYTURN_* variable, whatever the developer's shell has."""
    for name in list(os.environ):
        if name.upper().startswith("KEYTURN_"):
            monkeypatch.delenv(name)


# DESIGN section 8, as data.
DESIGN_DEFAULTS = {
    "access_token_lifetime": 900,
    "refresh_idle_lifetime": 1_209_600,
    "session_absolute_lifetime": 2_592_000,
    "grace_period": 30,
    "leeway": 30,
    "revocation_poll_interval": 1,
    "data_dir": Path(".keyturn"),
    "issuer": "keyturn",
    "audience": "keyturn-api",
    "access_token_algorithm": "ES256",
    "cookie_mode": False,
}


def test_defaults_are_those_of_the_design() -> None:
    """``keyturn serve`` with no setting must behave as documented."""
    settings = Settings()

    assert {name: getattr(settings, name) for name in DESIGN_DEFAULTS} == DESIGN_DEFAULTS
    assert settings.resolved_store_url == "sqlite:///.keyturn/keyturn.db"
    assert settings.secret_key is None


def test_settings_read_keyturn_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every setting has a KEYTURN_* variable of the same name in capitals."""
    monkeypatch.setenv("KEYTURN_ACCESS_TOKEN_LIFETIME", "600")
    monkeypatch.setenv("KEYTURN_GRACE_PERIOD", "10")
    monkeypatch.setenv("KEYTURN_ISSUER", "https://auth.example")
    monkeypatch.setenv("KEYTURN_ACCESS_TOKEN_ALGORITHM", "EdDSA")
    monkeypatch.setenv("KEYTURN_COOKIE_MODE", "true")
    monkeypatch.setenv("KEYTURN_SECRET_KEY", "from the environment")
    monkeypatch.setenv("KEYTURN_DATA_DIR", "/var/lib/keyturn")

    settings = Settings()

    assert settings.access_token_lifetime == 600
    assert settings.grace_period == 10
    assert settings.issuer == "https://auth.example"
    assert settings.access_token_algorithm == "EdDSA"
    assert settings.cookie_mode is True
    assert settings.secret_key is not None
    assert settings.secret_key.get_secret_value() == "from the environment"
    assert settings.resolved_store_url == "sqlite:////var/lib/keyturn/keyturn.db"


def test_constructor_arguments_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Code that builds Settings explicitly (tests, create_app) must get what it asked for."""
    monkeypatch.setenv("KEYTURN_LEEWAY", "5")
    monkeypatch.setenv("KEYTURN_AUDIENCE", "from-env")

    settings = Settings(leeway=7, audience="from-code")

    assert (settings.leeway, settings.audience) == (7, "from-code")


def test_secret_key_is_not_shown_in_repr() -> None:
    """Settings get logged; the master secret must not be."""
    settings = Settings(secret_key="very secret master key")

    assert "very secret master key" not in repr(settings)
    assert "very secret master key" not in str(settings.model_dump())


@pytest.mark.parametrize(
    "values",
    [
        {"refresh_idle_lifetime": 3000, "session_absolute_lifetime": 2000},
        {"access_token_lifetime": 2000, "refresh_idle_lifetime": 1000},
        {"access_token_lifetime": 0},
        {"grace_period": -1},
        {"leeway": 301},
        {"access_token_algorithm": "HS256"},
        {"access_token_algorithm": "none"},
        {"issuer": ""},
        {"route_prefix": "auth"},
        {"no_such_setting": 1},
    ],
    ids=lambda v: ",".join(f"{k}={v}" for k, v in v.items()),
)
def test_settings_that_do_not_fit_are_refused(values: dict[str, object]) -> None:
    """A session that could outlive its own limits, or a symmetric access algorithm, must not start."""
    with pytest.raises(ValidationError):
        Settings(**values)  # type: ignore[arg-type]


def test_lifetimes_that_do_not_fit_are_refused_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cross-field check applies to KEYTURN_* variables too, not only to arguments."""
    monkeypatch.setenv("KEYTURN_REFRESH_IDLE_LIFETIME", "99999999")

    with pytest.raises(ValidationError, match="session_absolute_lifetime"):
        Settings()


def test_settings_are_frozen() -> None:
    """Settings are built once at the edge and passed down; nobody may change them underway."""
    settings = Settings()

    with pytest.raises(ValidationError):
        settings.leeway = 0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://kt:s3cret-pw@db:5432/kt", "postgresql://kt:***@db:5432/kt"),
        (
            "postgresql://db/kt?sslmode=require&password=s3cret-pw",
            "postgresql://db/kt?sslmode=require&password=***",
        ),
        ("postgresql://db/kt?PASSWORD=s3cret-pw#x", "postgresql://db/kt?PASSWORD=***#x"),
        ("redis://:s3cret-pw@127.0.0.1:6379/0?prefix=kt:", "redis://:***@127.0.0.1:6379/0?prefix=kt:"),
        ("rediss://user:s3cret-pw@cache/1", "rediss://user:***@cache/1"),
        ("sqlite:///data/keyturn.db", "sqlite:///data/keyturn.db"),
        ("redis://user@cache/0", "redis://user@cache/0"),
    ],
)
def test_store_url_for_display_never_shows_a_password(url: str, shown: str) -> None:
    """Regression: `serve` and `migrate` printed the store URL, password and all, into logs and terminals."""
    assert Settings(store_url=url).store_url_for_display == shown


def test_a_refused_secret_is_named_but_never_repeated() -> None:
    """An error about a setting that may hold a secret names the variable, never the value."""
    with pytest.raises(ConfigError) as refused:
        load_settings(secret_key=918273645)

    assert "KEYTURN_SECRET_KEY" in str(refused.value)
    assert "918273645" not in str(refused.value)


def test_every_refused_setting_is_named() -> None:
    """Two bad values give two named lines, each with the value given."""
    with pytest.raises(ConfigError) as refused:
        load_settings(grace_period=-1, leeway="soon")

    message = str(refused.value)
    assert "KEYTURN_GRACE_PERIOD" in message
    assert "KEYTURN_LEEWAY" in message
    assert "'soon'" in message


def test_unknown_variables_are_found_and_settings_are_not() -> None:
    """Only KEYTURN_* names that are no setting are reported; other variables are not Keyturn's business."""
    warnings = unknown_variables(
        {"KEYTURN_GRACE_PERIOD": "5", "KEYTURN_GRACE_PERIDO": "5", "KEYTURN_WHATEVER": "1", "HOME": "/root"}
    )

    assert warnings == [
        "KEYTURN_GRACE_PERIDO is not a Keyturn setting and is ignored; did you mean KEYTURN_GRACE_PERIOD?",
        "KEYTURN_WHATEVER is not a Keyturn setting and is ignored",
    ]
