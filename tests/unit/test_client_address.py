"""The client address rate limits and sessions see: the socket's peer, or X-Forwarded-For from a trusted
proxy only, read from the right."""

from __future__ import annotations

import ipaddress

import pytest

from keyturn.config import Settings
from keyturn.ratelimit import address_key
from keyturn.server.proxies import client_address

PROXIES = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8:ffff::/48"))


def test_without_trusted_proxies_the_peer_is_the_client_whatever_the_header() -> None:
    """Any client can write X-Forwarded-For: believed from nobody by default."""
    assert client_address("192.0.2.7", ["203.0.113.9"], ()) == "192.0.2.7"


def test_an_untrusted_peer_cannot_name_another_address() -> None:
    """A client that sends the header itself, directly, keeps its own address (and its own bucket)."""
    assert client_address("192.0.2.7", ["203.0.113.9, 10.0.0.1"], PROXIES) == "192.0.2.7"


def test_behind_a_trusted_proxy_the_right_most_untrusted_address_is_the_client() -> None:
    """Everything left of what the trusted proxies appended is the client's own say, so not believed."""
    assert client_address("10.0.0.2", ["198.51.100.1, 203.0.113.9, 10.0.0.1"], PROXIES) == "203.0.113.9"


def test_several_headers_are_read_as_one_list() -> None:
    """Repeated headers are one comma-separated list (RFC 9110), in order."""
    assert client_address("10.0.0.2", ["198.51.100.1", "203.0.113.9", "10.0.0.1"], PROXIES) == "203.0.113.9"


def test_when_every_hop_is_a_trusted_proxy_the_farthest_one_is_the_client() -> None:
    """As uvicorn does: the request started at a trusted machine."""
    assert client_address("10.0.0.2", ["10.0.0.5, 10.0.0.1"], PROXIES) == "10.0.0.5"


def test_a_trusted_peer_without_the_header_is_the_client() -> None:
    assert client_address("10.0.0.2", [], PROXIES) == "10.0.0.2"


def test_ports_brackets_and_ipv6_are_understood() -> None:
    """Some proxies add the port; IPv6 then comes in brackets."""
    assert client_address("10.0.0.2", ["203.0.113.9:51234"], PROXIES) == "203.0.113.9"
    assert client_address("10.0.0.2", ['"[2001:db8::7]:443"'], PROXIES) == "2001:db8::7"
    assert client_address("2001:db8:ffff::1", ["2001:db8:1::9"], PROXIES) == "2001:db8:1::9"
    assert client_address("::ffff:10.0.0.2", ["203.0.113.9"], PROXIES) == "203.0.113.9"


def test_a_hop_that_is_no_address_ends_the_walk_at_the_nearest_known_one() -> None:
    """ "unknown" (a proxy on a Unix socket) must not become a client address anyone can share or forge."""
    assert client_address("10.0.0.2", ["203.0.113.9, unknown, 10.0.0.1"], PROXIES) == "10.0.0.1"
    assert client_address("10.0.0.2", ["garbage"], PROXIES) == "10.0.0.2"


def test_no_peer_stays_no_peer() -> None:
    assert client_address(None, ["203.0.113.9"], PROXIES) is None


def test_ipv6_clients_share_a_bucket_per_64_and_mapped_ipv4_is_ipv4() -> None:
    """One host or home has a whole /64: per address would let it take 2**64 buckets."""
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert address_key("192.0.2.7") == "192.0.2.7"
    assert address_key("testclient\x00\n") == "testclient??"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", ()),
        ("127.0.0.1", ("127.0.0.1/32",)),
        ("10.0.0.0/8, ::1 192.168.1.7/24", ("10.0.0.0/8", "::1/128", "192.168.1.0/24")),
    ],
)
def test_trusted_proxies_setting_takes_addresses_and_networks(
    value: str, expected: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """KEYTURN_TRUSTED_PROXIES is a comma- (or space-) separated list, as operators write one."""
    monkeypatch.setenv("KEYTURN_TRUSTED_PROXIES", value)
    assert tuple(str(n) for n in Settings().trusted_proxies) == expected
    assert Settings(trusted_proxies=list(expected)).trusted_proxies == Settings().trusted_proxies


def test_a_trusted_proxy_that_is_no_address_is_refused_at_start_up() -> None:
    with pytest.raises(ValueError, match="not an IP address or network"):
        Settings(trusted_proxies="proxy.internal")
