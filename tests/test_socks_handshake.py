"""The SOCKS4/4a/5/5h handshake over mock backends: the bytes sent for each address type and
credential, and what each reply a proxy can send becomes, including the failures pproxy never
produces (it answers CONNECT before connecting, and hangs up instead of sending SOCKS error
replies): every one is a ProxyError."""

from __future__ import annotations

from typing import List, Tuple

import pytest
from socks_helpers import (
    AUTH_FAILED,
    AUTH_OK,
    CONNECTED,
    HELLO,
    HTTP_OK,
    NO_AUTH,
    REFUSED,
    SOCKS4_GRANTED,
    USER_PASS,
    RecordingBackend,
    mock_request,
)

import httpcore.socks
from httpcore.base import ConnectError, ProxyError
from httpcore.socks import SOCKSProxy

# -- mock backends: the bytes on the wire -------------------------------------------------------


def test_wire_socks5_no_auth_domain_name() -> None:
    backend, response = mock_request([NO_AUTH, CONNECTED, HTTP_OK], "http://example.com/")
    assert response.content == HELLO
    assert backend.connects == [("localhost", 1080, None)]
    assert backend.written[:2] == [
        b"\x05\x01\x00",
        b"\x05\x01\x00\x03\x0bexample.com\x00\x50",
    ]


def test_wire_socks5_auth() -> None:
    backend, response = mock_request(
        [USER_PASS, AUTH_OK, CONNECTED, HTTP_OK], proxy_auth=("username", "password")
    )
    assert response.status == 200
    assert backend.written[:3] == [
        b"\x05\x01\x02",
        b"\x01\x08username\x08password",
        b"\x05\x01\x00\x03\x0bexample.com\x00\x50",
    ]


@pytest.mark.parametrize(
    ("url", "command"),
    [
        ("http://127.0.0.1:8080/", b"\x05\x01\x00\x01\x7f\x00\x00\x01\x1f\x90"),
        (
            "http://[::1]:8080/",
            b"\x05\x01\x00\x04" + b"\x00" * 15 + b"\x01\x1f\x90",
        ),
        ("https://example.org/", b"\x05\x01\x00\x03\x0bexample.org\x01\xbb"),
    ],
)
def test_wire_socks5_addresses(url: str, command: bytes) -> None:
    backend, response = mock_request([NO_AUTH, CONNECTED, HTTP_OK], url)
    assert response.status == 200
    assert backend.written[1] == command


def test_wire_socks5h_sends_names() -> None:
    backend, _ = mock_request(
        [NO_AUTH, CONNECTED, HTTP_OK], "http://localhost/", proxy_url="socks5h://proxy"
    )
    assert backend.written[1] == b"\x05\x01\x00\x03\x09localhost\x00\x50"
    assert backend.connects == [("proxy", 1080, None)]


def test_wire_socks4() -> None:
    backend, response = mock_request(
        [SOCKS4_GRANTED, HTTP_OK], "http://127.0.0.1/", proxy_url="socks4://proxy"
    )
    assert response.content == HELLO
    assert backend.written[0] == b"\x04\x01\x00\x50\x7f\x00\x00\x01\x00"
    # With credentials, the username is the USERID (SOCKS4 has no password).
    backend, _ = mock_request(
        [SOCKS4_GRANTED, HTTP_OK],
        "http://127.0.0.1/",
        proxy_url="socks4://proxy",
        proxy_auth=("alice", "unused"),
    )
    assert backend.written[0] == b"\x04\x01\x00\x50\x7f\x00\x00\x01alice\x00"


def test_wire_socks4_resolves_locally() -> None:
    backend, _ = mock_request(
        [SOCKS4_GRANTED, HTTP_OK], "http://localhost:8080/", proxy_url="socks4://proxy"
    )
    assert backend.written[0] == b"\x04\x01\x1f\x90\x7f\x00\x00\x01\x00"


def test_wire_socks4a() -> None:
    backend, _ = mock_request(
        [SOCKS4_GRANTED, HTTP_OK], "http://example.com/", proxy_url="socks4a://proxy"
    )
    assert backend.written[0] == b"\x04\x01\x00\x50\x00\x00\x00\x01\x00example.com\x00"
    backend, _ = mock_request(
        [SOCKS4_GRANTED, HTTP_OK], "http://10.0.0.1/", proxy_url="socks4a://proxy"
    )
    assert backend.written[0] == b"\x04\x01\x00\x50\x0a\x00\x00\x01\x00"


def test_socks4_ipv6_is_refused() -> None:
    with pytest.raises(ProxyError, match="IPv6"):
        mock_request([SOCKS4_GRANTED, HTTP_OK], "http://[::1]/", proxy_url="socks4a://proxy")


def test_fragmented_replies() -> None:
    buffer = [b"\x05", b"\x00\x05\x00", b"\x00\x01\x7f\x00", b"\x00\x01\x00", b"\x50", HTTP_OK]
    _, response = mock_request(buffer)
    assert response.content == HELLO


def test_reply_with_domain_name_and_ipv6_bound_address() -> None:
    domain = b"\x05\x00\x00\x03\x05proxy\x04\x38"
    _, response = mock_request([NO_AUTH, domain, HTTP_OK])
    assert response.status == 200
    ipv6 = b"\x05\x00\x00\x04" + b"\x00" * 16 + b"\x04\x38"
    _, response = mock_request([NO_AUTH, ipv6, HTTP_OK])
    assert response.status == 200


# -- mock backends: every failure is a ProxyError -------------------------------------------------


METHOD_NAMES = [
    (b"\x00", "NO AUTHENTICATION REQUIRED"),
    (b"\x01", "GSSAPI"),
    (b"\x02", "USERNAME/PASSWORD"),
    (b"\xff", "NO ACCEPTABLE METHODS"),
    (b"\x03", "UNKNOWN"),
    (b"\x80", "UNKNOWN"),
]


@pytest.mark.parametrize(("method", "name"), [m for m in METHOD_NAMES if m[0] != b"\x00"])
def test_method_mismatch_without_auth(method: bytes, name: str) -> None:
    message = f"Requested NO AUTHENTICATION REQUIRED from proxy server, but got {name}."
    with pytest.raises(ProxyError) as info:
        mock_request([b"\x05" + method, CONNECTED, HTTP_OK])
    assert str(info.value) == message


@pytest.mark.parametrize(("method", "name"), [m for m in METHOD_NAMES if m[0] != b"\x02"])
def test_method_mismatch_with_auth(method: bytes, name: str) -> None:
    message = f"Requested USERNAME/PASSWORD from proxy server, but got {name}."
    with pytest.raises(ProxyError) as info:
        mock_request([b"\x05" + method, AUTH_OK, CONNECTED], proxy_auth=("u", "p"))
    assert str(info.value) == message


@pytest.mark.parametrize("reply", [AUTH_FAILED, b"\x01\xff", b"\x05\x01"])
def test_auth_failed(reply: bytes) -> None:
    with pytest.raises(ProxyError) as info:
        mock_request([USER_PASS, reply, CONNECTED, HTTP_OK], proxy_auth=("u", "p"))
    assert str(info.value) == "Invalid username/password"


def test_auth_credentials_too_long() -> None:
    with pytest.raises(ProxyError, match="255 bytes"):
        mock_request([USER_PASS, AUTH_OK, CONNECTED], proxy_auth=("u" * 256, "p"))


@pytest.mark.parametrize(
    ("code", "name"),
    [
        (0x01, "General SOCKS server failure"),
        (0x02, "Connection not allowed by ruleset"),
        (0x03, "Network unreachable"),
        (0x04, "Host unreachable"),
        (0x05, "Connection refused"),
        (0x06, "TTL expired"),
        (0x07, "Command not supported"),
        (0x08, "Address type not supported"),
        (0x09, "UNKNOWN"),
        (0xFF, "UNKNOWN"),
    ],
)
def test_socks5_reply_codes(code: int, name: str) -> None:
    reply = b"\x05" + bytes([code]) + b"\x00\x01\x00\x00\x00\x00\x00\x00"
    with pytest.raises(ProxyError) as info:
        mock_request([NO_AUTH, reply])
    assert str(info.value) == f"Proxy Server could not connect: {name}."


def test_refused_leaves_pool_empty() -> None:
    backend = RecordingBackend([NO_AUTH, REFUSED])
    with SOCKSProxy("socks5://localhost:8080/", network_backend=backend) as proxy:
        with pytest.raises(ProxyError) as info:
            proxy.request("GET", "https://example.com/")
        assert str(info.value) == "Proxy Server could not connect: Connection refused."
        assert proxy.connections == []
        assert backend.streams[0]._closed


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (0x5B, "Request rejected or failed"),
        (0x5C, "cannot connect to identd"),
        (0x5D, "different user-id"),
        (0x42, "UNKNOWN"),
    ],
)
def test_socks4_reply_codes(code: int, text: str) -> None:
    reply = b"\x00" + bytes([code]) + b"\x00\x50\x7f\x00\x00\x01"
    with pytest.raises(ProxyError, match=r"^Proxy Server could not connect: ") as info:
        mock_request([reply], "http://127.0.0.1/", proxy_url="socks4://proxy")
    assert text in str(info.value)


@pytest.mark.parametrize(
    ("buffer", "proxy_url"),
    [
        ([b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"], "socks5://proxy"),
        ([b"\x04\x5a"], "socks5://proxy"),
        ([NO_AUTH, b"HTTP/1.1 400 Bad Request\r\n\r\n"], "socks5://proxy"),
        ([b"HTTP/1.1 400 Bad Request\r\n\r\n"], "socks4://proxy"),
    ],
)
def test_not_a_socks_peer(buffer: List[bytes], proxy_url: str) -> None:
    with pytest.raises(ProxyError, match="did not answer in SOCKS") as info:
        mock_request(buffer, "http://127.0.0.1/", proxy_url=proxy_url)
    assert info.value.__cause__ is None or not type(info.value.__cause__).__module__.startswith(
        "socksio"
    )


@pytest.mark.parametrize(
    "buffer",
    [
        [],
        [b"\x05"],
        [NO_AUTH],
        [NO_AUTH, b"\x05\x00\x00\x01\x7f"],
    ],
)
def test_proxy_hangs_up(buffer: List[bytes]) -> None:
    with pytest.raises(ProxyError, match="closed the connection during the SOCKS handshake"):
        mock_request(buffer)


def test_malformed_replies() -> None:
    with pytest.raises(ProxyError, match="address type 0x05"):
        mock_request([NO_AUTH, b"\x05\x00\x00\x05\x00\x00\x00\x00\x00\x00"])
    with pytest.raises(ProxyError, match="unexpected data"):
        mock_request([NO_AUTH, CONNECTED + b"HTTP/1.1 200 OK\r\n", HTTP_OK])


# -- found by mutation testing (scripts/mutation) --------------------------------------------


def test_socks4_reply_version_4_is_accepted() -> None:
    # VN is 0 per the protocol; some servers answer 4, which works all the same.
    reply = b"\x04\x5a\x00\x50\x7f\x00\x00\x01"
    _, response = mock_request([reply, HTTP_OK], "http://127.0.0.1/", proxy_url="socks4://proxy")
    assert response.content == HELLO


def test_not_a_socks4_peer_names_socks4() -> None:
    with pytest.raises(ProxyError) as info:
        mock_request([b"\x05\x00" * 4], "http://127.0.0.1/", proxy_url="socks4://proxy")
    assert str(info.value).startswith(
        "The proxy server did not answer in SOCKS4: is it a SOCKS4 proxy? (received "
    )


def test_socks5_credentials_of_1_and_255_bytes_are_sent() -> None:
    backend, response = mock_request(
        [USER_PASS, AUTH_OK, CONNECTED, HTTP_OK], proxy_auth=("u" * 255, "p")
    )
    assert response.content == HELLO
    assert backend.written[1] == b"\x01\xff" + b"u" * 255 + b"\x01p"


@pytest.mark.parametrize("auth", [("user", ""), ("", "pass")], ids=["password", "username"])
def test_empty_socks5_credentials_are_refused(auth: Tuple[str, str]) -> None:
    with pytest.raises(ProxyError, match="1 to 255 bytes"):
        mock_request([USER_PASS, AUTH_OK, CONNECTED, HTTP_OK], proxy_auth=auth)


@pytest.mark.parametrize(("port", "wire"), [(1, b"\x00\x01"), (65535, b"\xff\xff")])
def test_the_lowest_and_highest_ports_go_through_socks(port: int, wire: bytes) -> None:
    url = f"http://example.com:{port}/"
    backend, response = mock_request([NO_AUTH, CONNECTED, HTTP_OK], url)
    assert response.content == HELLO
    assert backend.written[1].endswith(b"example.com" + wire)


def test_socks5_password_over_255_bytes_is_refused() -> None:
    with pytest.raises(ProxyError, match="255 bytes"):
        mock_request([USER_PASS, AUTH_OK, CONNECTED], proxy_auth=("u", "p" * 256))


def test_not_a_socks5_reply_to_connect_names_socks5() -> None:
    with pytest.raises(ProxyError) as info:
        mock_request([NO_AUTH, b"\x04\x5a\x00\x50\x7f\x00\x00\x01"])
    assert str(info.value).startswith(
        "The proxy server did not answer in SOCKS5: is it a SOCKS5 proxy? (received "
    )


def test_unexpected_data_after_the_reply_shows_its_first_16_bytes() -> None:
    with pytest.raises(ProxyError) as info:
        mock_request([NO_AUTH, CONNECTED + b"0123456789abcdefXYZ"])
    assert str(info.value).endswith("CONNECT command: b'0123456789abcdef'")


def test_socks4_local_resolution_failure_is_a_connect_error() -> None:
    # `.invalid` never resolves (RFC 6761 §6.4); the error is the resolver's, not the proxy's.
    with pytest.raises(ConnectError):
        mock_request([SOCKS4_GRANTED, HTTP_OK], "http://name.invalid/", proxy_url="socks4://p")


def test_a_malformed_socks5_reply_is_a_proxy_error() -> None:
    # A bound address of type "domain name" that is not text: socksio refuses the reply.
    reply = b"\x05\x00\x00\x03\x02\xff\xfe\x00\x50"
    with pytest.raises(ProxyError, match="Malformed reply from the SOCKS5 proxy"):
        mock_request([NO_AUTH, reply, HTTP_OK])


def test_a_port_out_of_range_is_refused_before_the_handshake() -> None:
    # (A URL's port 0 stands for the scheme's default port: it never gets here.)
    port = 65536
    url = httpcore.URL(scheme=b"http", host=b"example.com", port=port, target=b"/")
    backend = RecordingBackend([NO_AUTH, CONNECTED, HTTP_OK])
    with SOCKSProxy("socks5://proxy", network_backend=backend) as proxy:
        with pytest.raises(ProxyError) as info:
            proxy.request("GET", url)
    assert str(info.value) == f"Cannot connect to port {port} through a SOCKS proxy."
    assert backend.written == []


def test_a_host_name_too_long_for_socks5_is_a_proxy_error() -> None:
    host = ".".join(["a" * 60] * 5)  # 304 bytes; SOCKS5 carries at most 255
    with pytest.raises(ProxyError, match="Cannot send"):
        mock_request([NO_AUTH, CONNECTED, HTTP_OK], f"http://{host}/")


def test_socks5_credentials_of_255_bytes_each_are_sent() -> None:
    backend, response = mock_request(
        [USER_PASS, AUTH_OK, CONNECTED, HTTP_OK], proxy_auth=("u" * 255, "p" * 255)
    )
    assert response.content == HELLO
    assert backend.written[1] == b"\x01\xff" + b"u" * 255 + b"\xff" + b"p" * 255
