"""The I/O-free half of happy eyeballs (RFC 8305), shared by the sync and asyncio backends.

The backends resolve the host, pass the results through `candidates()` (family chosen by the
local address, then interleaved by family) and, when more than one address is left, run the
attempts as `Schedule` says: one at a time, the next one starting `STAGGER` seconds after the
previous started, or at once when an attempt fails; the first connection wins.
"""

from __future__ import annotations

import socket
from collections import deque
from typing import Deque, List, Optional, Sequence, Tuple

__all__ = ["STAGGER", "AddrInfo", "Schedule", "candidates", "interleave", "is_ip_literal"]

#: RFC 8305 §5 "Connection Attempt Delay": 250 ms recommended.
STAGGER = 0.25

#: One `socket.getaddrinfo()` result: (family, type, proto, canonname, sockaddr).
AddrInfo = Tuple[socket.AddressFamily, socket.SocketKind, int, str, Tuple[object, ...]]


def is_ip_literal(host: str) -> bool:
    """Whether `host` is an IPv4 or IPv6 address (nothing to resolve, nothing to race)."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except (OSError, ValueError):
            continue
        return True
    return False


def local_family(local_address: Optional[str]) -> Optional[int]:
    """The address family a local address binds to (None when there is none)."""
    if local_address is None:
        return None
    return socket.AF_INET6 if ":" in local_address else socket.AF_INET


def interleave(infos: Sequence[AddrInfo]) -> List[AddrInfo]:
    """Order addresses as RFC 8305 §4: the family of the first result first, then alternate
    families, each family keeping the resolver's order. Duplicates are dropped."""
    seen = set()
    first: List[AddrInfo] = []
    other: List[AddrInfo] = []
    for info in infos:
        key = (info[0], info[4])
        if key in seen:
            continue
        seen.add(key)
        (first if info[0] == infos[0][0] else other).append(info)
    result: List[AddrInfo] = []
    for index in range(max(len(first), len(other))):
        result.extend(first[index : index + 1])
        result.extend(other[index : index + 1])
    return result


def candidates(infos: Sequence[AddrInfo], local_address: Optional[str]) -> List[AddrInfo]:
    """The addresses to try, in order: only the local address's family when one is given."""
    if len(infos) == 1 and local_address is None:
        return list(infos)  # the common case: nothing to choose or order
    family = local_family(local_address)
    if family is not None:
        infos = [info for info in infos if info[0] == family]
    return interleave(infos)


class Schedule:
    """When to start which attempt. Times are the caller's clock (monotonic seconds)."""

    __slots__ = ("_next_start", "_pending", "running")

    def __init__(self, infos: Sequence[AddrInfo]) -> None:
        self._pending: Deque[AddrInfo] = deque(infos)
        self._next_start = float("-inf")
        self.running = 0

    def start(self, now: float) -> Optional[AddrInfo]:
        """The address to try now, if it is time for another attempt."""
        if not self._pending or (self.running and now < self._next_start):
            return None
        self.running += 1
        self._next_start = now + STAGGER
        return self._pending.popleft()

    def failed(self) -> None:
        """An attempt failed (or could not start): the next one may start at once."""
        self.running -= 1
        self._next_start = float("-inf")

    @property
    def exhausted(self) -> bool:
        """Every attempt was made and failed."""
        return not self._pending and not self.running

    def wait(self, now: float, deadline: Optional[float]) -> Optional[float]:
        """How long to wait for attempts in progress before calling `start()` again
        (None: until one completes)."""
        wake = self._next_start if self._pending else None
        if deadline is not None and (wake is None or deadline < wake):
            wake = deadline
        return None if wake is None else max(0.0, wake - now)
