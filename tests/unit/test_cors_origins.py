"""``KEYTURN_CORS_ORIGINS``: a list of web origins as browsers send them in ``Origin``; ``*`` refused."""

from __future__ import annotations

import pytest

from keyturn.config import Settings, load_settings
from keyturn.errors import ConfigError


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", ()),
        ("https://app.example.com", ("https://app.example.com",)),
        (
            "https://App.Example.com, http://localhost:5173 http://[::1]:8080",
            ("https://app.example.com", "http://localhost:5173", "http://[::1]:8080"),
        ),
        ("https://a.example.com,https://a.example.com", ("https://a.example.com",)),
    ],
)
def test_origins_are_a_comma_or_space_separated_list(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: tuple[str, ...]
) -> None:
    monkeypatch.setenv("KEYTURN_CORS_ORIGINS", value)
    assert Settings().cors_origins == expected
    assert Settings(cors_origins=list(expected)).cors_origins == expected
    assert Settings().model_dump(mode="json")["cors_origins"] == ",".join(expected)


def test_unset_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KEYTURN_CORS_ORIGINS", raising=False)
    assert Settings().cors_origins == ()


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("*", "credentials"),
        ("https://app.example.com, *", "credentials"),
        ("https://app.example.com/", "trailing /"),
        ("https://app.example.com/app", "no path"),
        ("https://app.example.com:443", "default port 443"),
        ("http://localhost:80", "default port 80"),
        ("app.example.com", "http(s)://host[:port]"),
        ("null", "http(s)://host[:port]"),
        ("file://", "http(s)://host[:port]"),
        ("https://user@app.example.com", "http(s)://host[:port]"),
        ("https://app.example.com:99999", "not an origin"),
    ],
)
def test_what_no_browser_sends_as_an_origin_is_refused(value: str, why: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(cors_origins=value)
    assert str(refused.value).startswith("KEYTURN_CORS_ORIGINS: ")
    assert why in str(refused.value)


@pytest.mark.parametrize(
    ("value", "canonical"),
    [
        ("https://app.example.com:08443", "https://app.example.com:8443"),
        ("https://app.example.com:", "https://app.example.com"),
        ("https://app.example.com.", "https://app.example.com"),
        ("https://bücher.example", "https://xn--bcher-kva.example"),
        ("https://Bücher.example:8443", "https://xn--bcher-kva.example:8443"),
        ("http://[0:0:0:0:0:0:0:1]:8080", "http://[::1]:8080"),
    ],
)
def test_an_origin_written_otherwise_than_browsers_send_it_is_refused_naming_their_form(
    value: str, canonical: str
) -> None:
    """Such an origin would never equal a browser's ``Origin`` (``:8443``, no empty port, punycode), so no
    page of it could ever call the service; the error says what to write instead."""
    with pytest.raises(ConfigError) as refused:
        load_settings(cors_origins=value)
    assert f"write it as {canonical}" in str(refused.value)
    assert Settings(cors_origins=canonical).cors_origins == (canonical,)


@pytest.mark.parametrize("value", ["https://a..example", "https://" + "a" * 64 + ".example"])
def test_a_host_that_is_no_domain_name_is_refused(value: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(cors_origins=value)
    assert "is not an origin" in str(refused.value)
