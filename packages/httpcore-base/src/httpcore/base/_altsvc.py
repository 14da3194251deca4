"""HTTP/3 discovery: what `Alt-Svc` response headers (RFC 7838) said about each origin, and
which origins failed over QUIC. I/O-free; a pool with `http3=True` keeps one `AltSvcCache`.

Rules:
1. Only `h3` alternatives on the same host are used (`h3=":443"` or `h3="same.host:443"`);
   an alternative on another host would need that host's certificate checked against the
   origin's name, which is not done.
2. `ma=N` (seconds, default 24 hours, RFC 7838 §3.1) bounds how long an advertisement is
   used; a newer header for the origin replaces the older one entirely; `clear` forgets it.
   A header without any `h3` alternative leaves what was known alone.
3. An origin whose QUIC handshake failed or timed out (UDP blocked, say) is not tried over
   QUIC for `broken_for` seconds; each failure in a row doubles that (up to a day), a
   success resets it.
4. Malformed headers are ignored (they are the server's advice, not a protocol element).
"""

from __future__ import annotations

import time
from typing import Callable, Dict, Iterable, List, Optional, Tuple

from ._models import Origin

DEFAULT_MAX_AGE = 86400.0
MAX_BROKEN_FOR = 86400.0


def parse_alt_svc(value: bytes) -> Optional[List[Tuple[str, str, int, float]]]:
    """The alternatives of one Alt-Svc field value as (protocol, host, port, max age).

    None for `clear`; an empty list for a malformed or empty value.
    """
    text = value.decode("latin-1").strip()
    if text == "clear":
        return None
    alternatives: List[Tuple[str, str, int, float]] = []
    for item in _split(text, ","):
        parts = _split(item, ";")
        if not parts or "=" not in parts[0]:
            continue
        protocol, _, authority = parts[0].partition("=")
        protocol = protocol.strip()
        authority = authority.strip()
        if len(authority) < 2 or authority[0] != '"' or authority[-1] != '"':
            continue
        host, sep, port_text = authority[1:-1].rpartition(":")
        if not sep or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            continue
        max_age = DEFAULT_MAX_AGE
        for parameter in parts[1:]:
            name, _, param_value = parameter.partition("=")
            if name.strip().lower() == "ma":
                try:
                    max_age = float(int(param_value.strip().strip('"')))
                except ValueError:
                    max_age = -1.0
        if max_age < 0:
            continue
        alternatives.append((protocol, host.strip("[]"), int(port_text), max_age))
    return alternatives


def _split(text: str, separator: str) -> List[str]:
    """`text` split at `separator` outside double quotes, items stripped, empty ones left out."""
    items = []
    current: List[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == separator and not quoted:
            items.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    items.append("".join(current).strip())
    return [item for item in items if item]


class AltSvcCache:
    """Where each origin can be reached over HTTP/3, and where QUIC failed (rules at the top)."""

    __slots__ = ("_broken", "_clock", "_entries", "broken_for")

    def __init__(
        self, broken_for: float = 300.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.broken_for = broken_for
        self._clock = clock
        self._entries: Dict[Origin, Tuple[int, float]] = {}  # origin -> (UDP port, expiry)
        # origin -> (tried again from, failures in a row)
        self._broken: Dict[Origin, Tuple[float, int]] = {}

    def update(self, origin: Origin, values: Iterable[bytes]) -> None:
        """Take in the Alt-Svc header values of a response from `origin` (over TCP)."""
        best: Optional[Tuple[int, float]] = None
        host = origin.host.decode("ascii", "replace").lower()
        now = self._clock()
        for value in values:
            alternatives = parse_alt_svc(value)
            if alternatives is None:
                self._entries.pop(origin, None)
                return
            for protocol, alt_host, port, max_age in alternatives:
                if protocol != "h3" or (alt_host and alt_host.lower() != host):
                    continue
                if best is None:
                    best = (port, now + max_age)
        if best is not None:
            if best[1] <= now:
                self._entries.pop(origin, None)
            else:
                self._entries[origin] = best

    def lookup(self, origin: Origin) -> Optional[int]:
        """The UDP port to reach `origin` over HTTP/3 now, or None."""
        entry = self._entries.get(origin)
        if entry is None:
            return None
        now = self._clock()
        if entry[1] <= now:
            del self._entries[origin]
            return None
        broken = self._broken.get(origin)
        if broken is not None and now < broken[0]:
            return None
        return entry[0]

    def mark_broken(self, origin: Origin) -> None:
        """The QUIC handshake to `origin` failed: use TCP for a while."""
        failures = self._broken.get(origin, (0.0, 0))[1] + 1
        delay = min(self.broken_for * 2 ** (failures - 1), MAX_BROKEN_FOR)
        self._broken[origin] = (self._clock() + delay, failures)

    def mark_working(self, origin: Origin) -> None:
        """A QUIC handshake to `origin` succeeded."""
        self._broken.pop(origin, None)
