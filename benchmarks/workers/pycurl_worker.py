"""pycurl worker: libcurl through its C binding, the native-code reference for sequential GETs.

One ``Curl`` handle is reused, so libcurl keeps the connection alive between requests.
"""

from __future__ import annotations

import argparse

import pycurl
from common import Result, check_size, main, run_sync


class _Sink:
    """Counts the body bytes libcurl hands over (nothing is kept)."""

    __slots__ = ("size",)

    def __init__(self) -> None:
        self.size = 0

    def write(self, data: bytes) -> None:
        self.size += len(data)


def measure(args: argparse.Namespace) -> Result:
    if args.scenario not in ("seq", "https-seq"):
        raise ValueError(f"pycurl worker has no scenario {args.scenario!r}")
    size = args.size
    curl = pycurl.Curl()
    curl.setopt(pycurl.URL, args.url)
    curl.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_1_1)
    if args.scenario == "https-seq":
        curl.setopt(pycurl.CAINFO, args.cafile)
    sink = _Sink()
    curl.setopt(pycurl.WRITEFUNCTION, sink.write)

    def one() -> int:
        sink.size = 0
        curl.perform()
        status = curl.getinfo(pycurl.RESPONSE_CODE)
        if status != 200:
            raise RuntimeError(f"status {status}")
        return check_size(sink.size, size)

    try:
        return run_sync(one, args)
    finally:
        curl.close()


if __name__ == "__main__":
    main(measure, {"version": pycurl.version.split()[0]})
