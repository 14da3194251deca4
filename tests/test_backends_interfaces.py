"""The network backend interfaces apart from real sockets: the abstract base classes, the
placeholders and lazy imports when anyio and trio are missing, and the mock backends."""

from __future__ import annotations

import ssl
import subprocess
import sys
import textwrap
from typing import Any

import backend_helpers
import pytest

import httpcore.base._exceptions as exc_mod
from httpcore.base._backends import (
    AsyncNetworkBackend,
    AsyncNetworkStream,
    NetworkBackend,
    NetworkStream,
)
from httpcore.base._mock import AsyncMockBackend, AsyncMockStream, MockBackend, MockStream

anyio_backend = backend_helpers.anyio_backend


# --------------------------------------------------------------------------------------------
# Interfaces


def test_interfaces_are_abstract() -> None:
    stream = NetworkStream()
    backend = NetworkBackend()
    with pytest.raises(NotImplementedError):
        stream.read(1)
    with pytest.raises(NotImplementedError):
        stream.write(b"x")
    with pytest.raises(NotImplementedError):
        stream.close()
    with pytest.raises(NotImplementedError):
        stream.start_tls(ssl.create_default_context())
    assert stream.get_extra_info("ssl_object") is None
    with pytest.raises(NotImplementedError):
        backend.connect_tcp("127.0.0.1", 1)
    with pytest.raises(NotImplementedError):
        backend.connect_unix_socket("/nonexistent")
    backend.sleep(0)


@pytest.mark.anyio
async def test_async_interfaces_are_abstract() -> None:
    stream = AsyncNetworkStream()
    backend = AsyncNetworkBackend()
    with pytest.raises(NotImplementedError):
        await stream.read(1)
    with pytest.raises(NotImplementedError):
        await stream.write(b"x")
    with pytest.raises(NotImplementedError):
        await stream.aclose()
    with pytest.raises(NotImplementedError):
        await stream.start_tls(ssl.create_default_context())
    assert stream.get_extra_info("ssl_object") is None
    with pytest.raises(NotImplementedError):
        await backend.connect_tcp("127.0.0.1", 1)
    with pytest.raises(NotImplementedError):
        await backend.connect_unix_socket("/nonexistent")
    with pytest.raises(NotImplementedError):
        await backend.sleep(0)


def test_socket_option_alias() -> None:
    from httpcore.base._backends import SOCKET_OPTION

    assert str(SOCKET_OPTION).startswith("typing.Union[")


# --------------------------------------------------------------------------------------------
# Without anyio / trio installed


def _run_isolated(code: str, tmp_path: Any) -> None:
    """Run `code` in a fresh interpreter where `anyio` is absent and `trio` fails to import
    with `NotImplementedError` (as on an unsupported platform)."""
    fake = tmp_path / "fake"
    (fake / "trio").mkdir(parents=True)
    (fake / "trio" / "__init__.py").write_text("raise NotImplementedError('unsupported')\n")
    prelude = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(fake)!r})
        sys.modules["anyio"] = None
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_placeholders_without_anyio_and_trio(tmp_path: Any) -> None:
    _run_isolated(
        """
        import asyncio
        import httpcore.aio._anyio, httpcore.aio._trio, httpcore.aio._auto
        from httpcore.aio._anyio import AnyIOBackend
        from httpcore.aio._trio import TrioBackend
        from httpcore.aio._auto import AutoBackend

        try:
            AnyIOBackend()
        except RuntimeError as exc:
            assert str(exc) == (
                "Attempted to use 'httpcore.AnyIOBackend' but 'anyio' is not installed."
            ), exc
        else:
            raise AssertionError("AnyIOBackend() did not raise")

        try:
            TrioBackend()
        except RuntimeError as exc:
            assert str(exc) == (
                "Attempted to use 'httpcore.TrioBackend' but 'trio' is not installed."
            ), exc
        else:
            raise AssertionError("TrioBackend() did not raise")

        async def main():
            await AutoBackend().connect_tcp("127.0.0.1", 1)

        try:
            asyncio.run(main())
        except RuntimeError as exc:
            assert str(exc) == (
                "Running with asyncio requires installation of 'httpcore[asyncio]'."
            ), exc
        else:
            raise AssertionError("AutoBackend did not raise")
        """,
        tmp_path,
    )


def test_async_backends_import_lazily(tmp_path: Any) -> None:
    code = """
        import sys
        del sys.modules["anyio"]
        import httpcore.aio._anyio, httpcore.aio._trio, httpcore.aio._auto
        loaded = sorted(name for name in ("anyio", "trio") if name in sys.modules)
        assert not loaded, loaded
    """
    _run_isolated(code, tmp_path)


# --------------------------------------------------------------------------------------------
# Mock backends


def test_mock_backend() -> None:
    backend = MockBackend([b"one", b"two"])
    stream = backend.connect_tcp("example.com", 80)
    assert isinstance(stream, MockStream)
    assert repr(stream) == "<httpcore.MockStream>"
    stream.write(b"ignored")
    assert stream.read(1) == b"one"  # whole chunks, whatever max_bytes
    assert stream.start_tls(ssl.create_default_context()) is stream
    assert stream.read(100) == b"two"
    assert stream.read(100) == b""
    assert stream.get_extra_info("ssl_object").selected_alpn_protocol() == "http/1.1"
    assert stream.get_extra_info("is_readable") is None
    stream.close()
    with pytest.raises(exc_mod.ReadError, match=r"^Connection closed$"):
        stream.read(100)
    # Every connection replays the whole buffer.
    again = backend.connect_unix_socket("/tmp/sock")
    assert again.read(100) == b"one"
    assert backend._buffer == [b"one", b"two"]
    backend.sleep(1000)


def test_mock_backend_http2_and_subclassing() -> None:
    class FlippingStream(MockStream):
        def start_tls(self, *args: Any, **kwargs: Any) -> NetworkStream:
            self._http2 = True
            return self

    class Backend(MockBackend):
        def __init__(self, buffer: list[bytes], http2: bool = False) -> None:
            super().__init__(buffer, http2)

        def connect_tcp(self, *args: Any, **kwargs: Any) -> NetworkStream:
            return FlippingStream(list(self._buffer), http2=self._http2)

    assert MockBackend([], http2=True).connect_tcp("h", 1).get_extra_info(
        "ssl_object"
    ).selected_alpn_protocol() == ("h2")
    stream = Backend([b"x"]).connect_tcp("h", 1)
    assert stream.get_extra_info("ssl_object").selected_alpn_protocol() == "http/1.1"
    stream.start_tls(ssl.create_default_context())
    assert stream.get_extra_info("ssl_object").selected_alpn_protocol() == "h2"


@pytest.mark.anyio
async def test_async_mock_backend() -> None:
    class Backend(AsyncMockBackend):
        def __init__(self, buffer: list[bytes], http2: bool = False) -> None:
            super().__init__(buffer, http2)

    backend = Backend([b"one", b"two"], True)
    assert backend._buffer == [b"one", b"two"]
    assert backend._http2 is True
    stream = await backend.connect_tcp("example.com", 443)
    assert isinstance(stream, AsyncMockStream)
    assert repr(stream) == "<httpcore.AsyncMockStream>"
    assert await stream.start_tls(ssl.create_default_context()) is stream
    assert stream.get_extra_info("ssl_object").selected_alpn_protocol() == "h2"
    await stream.write(b"ignored")
    assert await stream.read(1) == b"one"
    assert await stream.read(1) == b"two"
    assert await stream.read(1) == b""
    await stream.aclose()
    with pytest.raises(exc_mod.ReadError, match=r"^Connection closed$"):
        await stream.read(1)
    again = await backend.connect_unix_socket("/tmp/sock")
    assert await again.read(100) == b"one"
    await backend.sleep(1000)
