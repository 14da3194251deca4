"""I/O-free parts of HTTP/3: the Alt-Svc bookkeeping of discovery (`httpcore.base._altsvc`)
and the GOAWAY watcher of `httpcore.http3._quic`."""

from __future__ import annotations

from typing import List

from httpcore import Origin
from httpcore.base._altsvc import AltSvcCache, parse_alt_svc

ORIGIN = Origin(b"https", b"example.com", 443)
OTHER = Origin(b"https", b"example.org", 443)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def cache() -> tuple[AltSvcCache, Clock]:
    clock = Clock()
    return AltSvcCache(broken_for=300.0, clock=clock), clock


def test_parse() -> None:
    assert parse_alt_svc(b"clear") is None
    assert parse_alt_svc(b'h3=":443"; ma=3600, h3-29=":8443"') == [
        ("h3", "", 443, 3600.0),
        ("h3-29", "", 8443, 86400.0),
    ]
    assert parse_alt_svc(b'h3="alt.example.com:443";ma=60;persist=1') == [
        ("h3", "alt.example.com", 443, 60.0)
    ]
    assert parse_alt_svc(b'h3="[::1]:443"') == [("h3", "::1", 443, 86400.0)]
    # Malformed alternatives are skipped, the good ones kept.
    assert parse_alt_svc(b'h3=":0", h3=":x", h3=443, h3=":443"; ma=bad, h3=":444"') == [
        ("h3", "", 444, 86400.0)
    ]
    assert parse_alt_svc(b"") == []


def test_h3_on_the_same_host_is_used() -> None:
    alt, _ = cache()
    alt.update(ORIGIN, [b'h2=":443", h3=":8443"; ma=60'])
    assert alt.lookup(ORIGIN) == 8443
    assert alt.lookup(OTHER) is None


def test_other_hosts_and_protocols_are_ignored() -> None:
    alt, _ = cache()
    alt.update(ORIGIN, [b'h3="evil.example.net:443"', b'h3-29=":443"'])
    assert alt.lookup(ORIGIN) is None
    alt.update(ORIGIN, [b'h3="EXAMPLE.com:9443"'])
    assert alt.lookup(ORIGIN) == 9443


def test_max_age() -> None:
    alt, clock = cache()
    alt.update(ORIGIN, [b'h3=":443"; ma=60'])
    clock.now += 59
    assert alt.lookup(ORIGIN) == 443
    clock.now += 2
    assert alt.lookup(ORIGIN) is None
    alt.update(ORIGIN, [b'h3=":443"; ma=0'])  # expired at once
    assert alt.lookup(ORIGIN) is None
    alt.update(ORIGIN, [b'h3=":443"'])  # default: 24 hours
    clock.now += 86399
    assert alt.lookup(ORIGIN) == 443


def test_clear_and_replacement() -> None:
    alt, _ = cache()
    alt.update(ORIGIN, [b'h3=":443"'])
    alt.update(ORIGIN, [b'h3=":444"'])
    assert alt.lookup(ORIGIN) == 444
    alt.update(ORIGIN, [b'h2=":443"'])  # nothing about h3: what was known stays
    assert alt.lookup(ORIGIN) == 444
    alt.update(ORIGIN, [b"clear"])
    assert alt.lookup(ORIGIN) is None


def test_broken_origins_back_off() -> None:
    alt, clock = cache()
    alt.update(ORIGIN, [b'h3=":443"; ma=100000'])
    waits: List[float] = []
    for _ in range(3):
        alt.mark_broken(ORIGIN)
        start = clock.now
        while alt.lookup(ORIGIN) is None:
            clock.now += 10
        waits.append(clock.now - start)
    assert waits == [300.0, 600.0, 1200.0]
    alt.mark_working(ORIGIN)
    alt.mark_broken(ORIGIN)
    assert alt.lookup(ORIGIN) is None
    clock.now += 300
    assert alt.lookup(ORIGIN) == 443


def test_goaway_watcher_reads_the_control_stream_in_pieces() -> None:
    from aioquic.buffer import encode_uint_var

    from httpcore.http3._quic import GoawayWatcher

    def frame(kind: int, payload: bytes) -> bytes:
        return encode_uint_var(kind) + encode_uint_var(len(payload)) + payload

    watcher = GoawayWatcher()
    assert watcher.feed(2, b"\x00") is None  # a client stream: not looked at
    assert watcher.feed(7, b"\x02abc") is None  # QPACK encoder stream: ignored
    control = (
        b"\x00"
        + frame(0x04, b"\x01\x00")  # SETTINGS
        + frame(0x21, b"x" * 70000)  # a big reserved frame, skipped as it comes
        + frame(0x07, encode_uint_var(16))  # GOAWAY
    )
    found = [watcher.feed(3, control[i : i + 1000]) for i in range(0, len(control), 1000)]
    assert [value for value in found if value is not None] == [16]
    assert watcher.feed(7, frame(0x07, b"\x04")) is None  # not the control stream
    assert watcher.feed(3, frame(0x07, encode_uint_var(8))) == 8


def test_the_client_announces_its_field_section_limit() -> None:
    # RFC 9114 §4.2.2: a server should not send a bigger response head; one that does has that
    # request failed (tests/test_http3_chaos.py, "oversized-headers").
    from aioquic.h3.connection import Setting
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.quic.connection import QuicConnection

    from httpcore.http3._h3conn import MAX_FIELD_SECTION, ClientH3Connection

    quic = QuicConnection(configuration=QuicConfiguration(is_client=True, alpn_protocols=["h3"]))
    connection = ClientH3Connection(quic)
    sent = connection._sent_settings
    assert sent is not None
    assert sent[Setting.MAX_FIELD_SECTION_SIZE] == MAX_FIELD_SECTION == 65536
