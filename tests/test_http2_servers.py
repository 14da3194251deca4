"""HTTP/2 against real servers: hypercorn (conftest fixtures) and the misbehaving h2 servers of
`h2servers.py`. Every behaviour runs with threads (sync) and with asyncio and trio tasks."""

from __future__ import annotations

import concurrent.futures
import functools
import ssl
from typing import Any, Callable, Dict, List, Optional, Sequence

import anyio
import pytest
from h2servers import H2Server

import httpcore

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


def run_threads(function: Callable[[int], Any], count: int) -> List[Any]:
    """`function(i)` for i in range(count), all at once in threads; results or exceptions."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=count) as executor:
        futures = [executor.submit(function, i) for i in range(count)]
        results: List[Any] = []
        for future in futures:
            try:
                results.append(future.result(timeout=50))
            except Exception as exc:
                results.append(exc)
        return results


async def run_tasks(function: Callable[[int], Any], count: int) -> List[Any]:
    results: List[Any] = [None] * count

    async def one(i: int) -> None:
        try:
            results[i] = await function(i)
        except Exception as exc:
            results[i] = exc

    async with anyio.create_task_group() as tg:
        for i in range(count):
            tg.start_soon(one, i)
    return results


def h2c_pool(**kwargs: Any) -> httpcore.ConnectionPool:
    return httpcore.ConnectionPool(http1=False, http2=True, **kwargs)


def async_h2c_pool(**kwargs: Any) -> httpcore.AsyncConnectionPool:
    return httpcore.AsyncConnectionPool(http1=False, http2=True, **kwargs)


def failures(results: Sequence[Any]) -> List[Any]:
    return [r for r in results if isinstance(r, BaseException)]


# -- hypercorn ---------------------------------------------------------------------------------


def test_alpn_h2_over_tls(tls_server: Any, client_ssl_context: ssl.SSLContext) -> None:
    with httpcore.ConnectionPool(http2=True, ssl_context=client_ssl_context) as pool:
        response = pool.request("GET", tls_server.url + "/http_version")
        assert response.content == b"2"
        assert response.extensions["http_version"] == b"HTTP/2"
        assert response.extensions["stream_id"] == 1
        response = pool.request("GET", tls_server.url + "/")
        assert response.extensions["stream_id"] == 3
        assert len(pool.connections) == 1
        assert pool.connections[0].info().endswith("HTTP/2, IDLE, Request Count: 2")


@pytest.mark.anyio
async def test_async_alpn_h2_over_tls(tls_server: Any, client_ssl_context: ssl.SSLContext) -> None:
    async with httpcore.AsyncConnectionPool(http2=True, ssl_context=client_ssl_context) as pool:
        response = await pool.request("GET", tls_server.url + "/http_version")
        assert response.content == b"2"
        assert response.extensions["http_version"] == b"HTTP/2"


def test_h2c_prior_knowledge(server: Any) -> None:
    with h2c_pool() as pool:
        response = pool.request("GET", server.url + "/http_version")
        assert response.content == b"2"
        assert response.extensions["http_version"] == b"HTTP/2"


def test_sync_h2c_waits_for_each_call_s_own_timeout(server: Any) -> None:
    """One thread reads while others write: the plain socket is non-blocking and each call
    waits (poll) for its own timeout; the socket's one `settimeout()` would be raced on."""
    timeouts = {"timeout": {"read": 5.0, "write": 0.5}}
    with h2c_pool() as pool:
        response = pool.request("GET", server.url + "/", extensions=timeouts)
        assert response.content == b"Hello, world!"
        sock = response.extensions["network_stream"].get_extra_info("socket")
        assert sock.gettimeout() == 0.0
        assert pool.request("GET", server.url + "/", extensions=timeouts).status == 200


def test_concurrent_requests_share_one_connection(
    tls_server: Any, client_ssl_context: ssl.SSLContext
) -> None:
    with httpcore.ConnectionPool(http2=True, ssl_context=client_ssl_context) as pool:
        pool.request("GET", tls_server.url + "/")  # the connection and its SETTINGS
        results = run_threads(
            lambda i: pool.request("GET", f"{tls_server.url}/bytes/{i * 100}").content, 50
        )
        assert results == [b"x" * (i * 100) for i in range(50)]
        assert len(pool.connections) == 1


@pytest.mark.anyio
async def test_async_concurrent_requests_share_one_connection(
    tls_server: Any, client_ssl_context: ssl.SSLContext
) -> None:
    async with httpcore.AsyncConnectionPool(http2=True, ssl_context=client_ssl_context) as pool:

        async def get(i: int) -> bytes:
            response = await pool.request("GET", f"{tls_server.url}/bytes/{i * 100}")
            return response.content

        results = await run_tasks(get, 100)
        assert results == [b"x" * (i * 100) for i in range(100)]
        assert len(pool.connections) == 1
        assert pool.connections[0].info().endswith("IDLE, Request Count: 100")


def test_flow_control_both_ways(server: Any) -> None:
    """Uploads and downloads larger than every window, several at once."""
    upload = bytes(range(256)) * 20_000  # 5 MB
    with h2c_pool() as pool:

        def exchange(i: int) -> None:
            if i % 2:
                response = pool.request("POST", server.url + "/echo", content=upload)
                assert response.content == upload
            else:
                response = pool.request("GET", server.url + "/bytes/20000000")
                assert len(response.content) == 20_000_000

        assert failures(run_threads(exchange, 6)) == []
        assert len(pool.connections) == 1


@pytest.mark.anyio
async def test_async_flow_control_both_ways(server: Any) -> None:
    upload = bytes(range(256)) * 20_000

    async def chunks() -> Any:
        view = memoryview(upload)
        for start in range(0, len(upload), 100_000):
            yield bytes(view[start : start + 100_000])

    async with async_h2c_pool() as pool:

        async def exchange(i: int) -> None:
            if i % 3 == 0:
                response = await pool.request("POST", server.url + "/echo", content=upload)
                assert response.content == upload
            elif i % 3 == 1:
                response = await pool.request("POST", server.url + "/echo", content=chunks())
                assert response.content == upload
            else:
                response = await pool.request("GET", server.url + "/stream/200/100000")
                assert len(response.content) == 20_000_000

        assert failures(await run_tasks(exchange, 6)) == []


@pytest.mark.anyio
async def test_slow_stream_does_not_hold_up_others(server: Any) -> None:
    async with async_h2c_pool() as pool:
        await pool.request("GET", server.url + "/")
        order: List[str] = []

        async def slow() -> None:
            await pool.request("GET", server.url + "/slow/1500")
            order.append("slow")

        async with anyio.create_task_group() as tg:
            tg.start_soon(slow)
            for _ in range(20):
                await pool.request("GET", server.url + "/bytes/1000")
            order.append("fast")
        assert order == ["fast", "slow"]
        assert len(pool.connections) == 1


@pytest.mark.anyio
@pytest.mark.parametrize("connected", [True, False], ids=["in-flight", "connecting"])
async def test_cancelling_one_stream_leaves_the_others_alone(server: Any, connected: bool) -> None:
    """The doomed request is either in flight on an open connection, or (`connecting`) the
    one opening the connection that the others wait for (one of them then opens another)."""
    async with async_h2c_pool() as pool:
        results: List[bytes] = []
        if connected:
            await pool.request("GET", server.url + "/")

        async def get(path: str) -> None:
            response = await pool.request("GET", server.url + path)
            results.append(response.content)

        async with anyio.create_task_group() as tg:
            with anyio.CancelScope() as scope:
                async with anyio.create_task_group() as doomed:
                    doomed.start_soon(get, "/slow/10000")
                    for _ in range(5):
                        tg.start_soon(get, "/slow/200")
                    # Every request written, all six waiting for their responses.
                    await anyio.wait_all_tasks_blocked()
                    scope.cancel()
        assert results == [b"ok"] * 5
        assert len(pool.connections) == 1
        connection = pool.connections[0]
        assert connection.is_idle() and connection.is_available()
        assert (await pool.request("GET", server.url + "/")).content == b"Hello, world!"


@pytest.mark.anyio
async def test_cancellation_storm(tls_server: Any, client_ssl_context: ssl.SSLContext) -> None:
    """Many requests with bodies on one HTTP/2 connection over TLS, a fifth of them cancelled
    at whatever point their (random) deadline falls: every other request succeeds, whole, and
    the connection survives."""
    import random

    async with httpcore.AsyncConnectionPool(ssl_context=client_ssl_context, http2=True) as pool:
        completed: List[int] = []
        cancelled: List[int] = []
        spared = 0

        async def worker(seed: int) -> None:
            nonlocal spared
            rnd = random.Random(seed)
            for _ in range(15):
                body = b"y" * rnd.choice([0, 100, 70_000])  # 70 000: past the initial window
                doomed = rnd.random() < 0.2
                if not doomed:
                    spared += 1
                with anyio.move_on_after(rnd.random() * 0.02 if doomed else 30) as scope:
                    response = await pool.request("POST", tls_server.url + "/echo", content=body)
                    assert response.content == body
                    completed.append(seed)
                if scope.cancelled_caught:
                    cancelled.append(seed)

        async with anyio.create_task_group() as tg:
            for seed in range(20):
                tg.start_soon(worker, seed)
        assert len(completed) + len(cancelled) == 300
        assert len(completed) >= spared > 200
        assert len(pool.connections) == 1
        response = await pool.request("GET", tls_server.url + "/")
        assert response.extensions["http_version"] == b"HTTP/2"


UPLOAD = 32 * 1024 * 1024  # far beyond what the socket buffers hold


async def cancel_an_upload_behind_a_stall(
    pool: Any,
    srv: H2Server,
    get: Callable[[str], Any],
    upload_extensions: Optional[Dict[str, Any]] = None,
    resume: bool = False,
) -> None:
    """`get("/stall")` makes the server stop reading; an upload then blocks in its write,
    `get("/after")` queues its frames behind it, and the upload is cancelled (the server
    reading again at that moment if `resume`)."""
    async with anyio.create_task_group() as tg:
        tg.start_soon(get, "/stall")
        assert await anyio.to_thread.run_sync(srv.stalled.wait, 10)
        with anyio.CancelScope() as upload_scope:
            async with anyio.create_task_group() as doomed:
                doomed.start_soon(
                    functools.partial(
                        pool.request,
                        "POST",
                        srv.url + "/upload",
                        content=b"x" * UPLOAD,
                        extensions=upload_extensions or {},
                    )
                )
                await anyio.wait_all_tasks_blocked()
                tg.start_soon(get, "/after")
                await anyio.wait_all_tasks_blocked()
                upload_scope.cancel()
                if resume:
                    srv.resume.set()
        assert upload_scope.cancelled_caught


def stall_server(
    transport: str,
    h2_server: Callable[..., H2Server],
    ca: Any,
    monkeypatch: pytest.MonkeyPatch,
    **options: Any,
) -> H2Server:
    if transport == "h2c":
        return h2_server(stall=True, **options)
    if transport == "memory-tls":
        # What the asyncio backend does before Python 3.11 and through HTTPS proxies (and
        # what the trio backend always does).
        import httpcore.aio._asyncio

        monkeypatch.setattr(httpcore.aio._asyncio, "NATIVE_TLS_LIMITED", True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    context.set_alpn_protocols(["h2"])
    return h2_server(stall=True, ssl_context=context, **options)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "anyio_backend, transport",
    [
        ("asyncio", "h2c"),
        ("asyncio", "tls"),
        ("asyncio", "memory-tls"),
        ("trio", "h2c"),
        ("trio", "tls"),
    ],
)
async def test_cancelled_upload_in_the_middle_of_a_write(
    anyio_backend: str,
    transport: str,
    h2_server: Callable[..., H2Server],
    ca: Any,
    monkeypatch: pytest.MonkeyPatch,
    client_ssl_context: ssl.SSLContext,
) -> None:
    """The request holding the connection's write role is cancelled while its socket write
    is blocked (the server stopped reading): what it had taken (its own frames and others')
    still goes out whole, so the other requests and the connection are unharmed."""
    srv = stall_server(transport, h2_server, ca, monkeypatch)
    url = srv.url
    upload_events: List[str] = []

    async def trace(name: str, info: Any) -> None:
        upload_events.append(name)

    async with httpcore.AsyncConnectionPool(
        http1=url.startswith("https"), http2=True, ssl_context=client_ssl_context
    ) as pool:
        results: List[bytes] = []

        async def get(path: str) -> None:
            results.append((await pool.request("GET", url + path)).content)

        # The connection is open and the server's SETTINGS are in (so that nothing below
        # waits for the network except on purpose).
        await get("/warm")
        async with anyio.create_task_group() as tg:
            tg.start_soon(get, "/stall")
            assert await anyio.to_thread.run_sync(srv.stalled.wait, 10)
            with anyio.CancelScope() as upload_scope:
                async with anyio.create_task_group() as doomed:
                    doomed.start_soon(
                        functools.partial(
                            pool.request,
                            "POST",
                            url + "/upload",
                            content=b"x" * UPLOAD,
                            extensions={"trace": trace},
                        )
                    )
                    await anyio.wait_all_tasks_blocked()
                    assert "http2.send_request_body.started" in upload_events
                    if anyio_backend == "trio":
                        # Blocked in the middle of sending its body. (asyncio transports take
                        # any write whole, so there the body is "sent" and the request waits.)
                        assert "http2.send_request_body.complete" not in upload_events
                    # Queued behind the interrupted write, sent by whoever finishes it.
                    tg.start_soon(get, "/after")
                    await anyio.wait_all_tasks_blocked()
                    upload_scope.cancel()
                    srv.resume.set()
            assert upload_scope.cancelled_caught
        assert sorted(results) == [b"ok /after", b"ok /stall", b"ok /warm"]
        assert (await pool.request("GET", url + "/again")).content == b"ok /again"
        assert len(pool.connections) == 1
    assert srv.connections == 1
    assert srv.protocol_errors == 0
    # Reset before the end (what trio had not sent), or complete (asyncio's transport had
    # taken it all): never torn.
    assert srv.bodies.get(b"/upload") in (None, UPLOAD)
    assert srv.partial_bodies.get(b"/upload", 0) <= UPLOAD


@pytest.mark.anyio
@pytest.mark.parametrize(
    "anyio_backend, transport", [("asyncio", "memory-tls"), ("trio", "h2c"), ("trio", "tls")]
)
async def test_a_cancelled_upload_whose_resumed_write_fails(
    anyio_backend: str,
    transport: str,
    h2_server: Callable[..., H2Server],
    ca: Any,
    monkeypatch: pytest.MonkeyPatch,
    client_ssl_context: ssl.SSLContext,
) -> None:
    """As above, but the server drops the connection while the cancelled request finishes its
    write: the cancelled request still ends with its cancellation, the connection fails (the
    other requests get a network error, none hangs) and the next request gets a new one."""
    srv = stall_server(transport, h2_server, ca, monkeypatch, drop_on_resume=True)
    url = srv.url
    async with httpcore.AsyncConnectionPool(
        http1=url.startswith("https"), http2=True, ssl_context=client_ssl_context
    ) as pool:
        outcomes: List[Any] = []

        async def get(path: str) -> None:
            try:
                outcomes.append((await pool.request("GET", url + path)).content)
            except httpcore.NetworkError as exc:
                outcomes.append(type(exc).__name__)
            except httpcore.RemoteProtocolError as exc:
                outcomes.append(type(exc).__name__)

        await get("/warm")
        with anyio.fail_after(20):
            await cancel_an_upload_behind_a_stall(pool, srv, get, resume=True)
        assert outcomes[0] == b"ok /warm"
        assert len(outcomes) == 3
        assert all(isinstance(outcome, str) for outcome in outcomes[1:]), outcomes
        assert (await pool.request("GET", url + "/again")).content == b"ok /again"
        assert len(pool.connections) == 1
    assert srv.connections == 2


@pytest.mark.anyio
async def test_cancelled_upload_in_the_middle_of_a_write_with_anyio_streams(
    h2_server: Callable[..., H2Server],
) -> None:
    """anyio's streams cannot say how much of an interrupted write went out, so there the
    connection is lost: its other requests fail with WriteError unless their response had
    arrived (none hangs), the pool drops it and the next request gets a new connection."""
    srv = h2_server(stall=True)
    async with async_h2c_pool(network_backend=httpcore.AnyIOBackend()) as pool:
        outcomes: List[Any] = []

        async def get(path: str) -> None:
            try:
                outcomes.append((await pool.request("GET", srv.url + path)).content)
            except httpcore.WriteError as exc:
                outcomes.append(type(exc))

        await get("/warm")
        async with anyio.create_task_group() as tg:
            tg.start_soon(get, "/stall")
            assert await anyio.to_thread.run_sync(srv.stalled.wait, 10)
            with anyio.CancelScope() as upload_scope:
                async with anyio.create_task_group() as doomed:
                    doomed.start_soon(
                        functools.partial(
                            pool.request, "POST", srv.url + "/upload", content=b"x" * UPLOAD
                        )
                    )
                    await anyio.wait_all_tasks_blocked()
                    upload_scope.cancel()
            srv.resume.set()
        assert upload_scope.cancelled_caught
        # A response that had arrived whole is still delivered.
        assert outcomes[0] == b"ok /warm"
        assert outcomes[1] in (b"ok /stall", httpcore.WriteError)
        assert pool.connections == []
        assert (await pool.request("GET", srv.url + "/again")).content == b"ok /again"
        assert [c.is_idle() for c in pool.connections] == [True]
    assert srv.connections == 2


@pytest.mark.anyio
async def test_streaming_response_closed_early(server: Any) -> None:
    async with async_h2c_pool() as pool:
        async with pool.stream("GET", server.url + "/bytes/10000000") as response:
            async for chunk in response.aiter_stream():
                assert chunk
                break
        # The abandoned stream was reset; the connection serves the next request.
        response = await pool.request("GET", server.url + "/bytes/10")
        assert response.content == b"x" * 10
        assert len(pool.connections) == 1


# -- misbehaving servers -----------------------------------------------------------------------


def test_goaway_with_requests_in_flight(h2_server: Callable[..., H2Server]) -> None:
    srv = h2_server(hold=3, refuse_held=1)
    with h2c_pool() as pool:
        results = run_threads(lambda i: pool.request("GET", f"{srv.url}/{i}").content, 3)
    assert sorted(results) == [b"ok /0", b"ok /1", b"ok /2"]
    assert srv.goaways == 1
    assert srv.connections == 2


@pytest.mark.anyio
async def test_async_goaway_with_requests_in_flight(h2_server: Callable[..., H2Server]) -> None:
    srv = h2_server(hold=3, refuse_held=1)
    async with async_h2c_pool() as pool:

        async def get(i: int) -> bytes:
            return (await pool.request("GET", f"{srv.url}/{i}")).content

        results = await run_tasks(get, 3)
    assert sorted(results) == [b"ok /0", b"ok /1", b"ok /2"]
    assert srv.connections == 2


def _many_requests(pool: httpcore.ConnectionPool, url: str, total: int, concurrency: int) -> None:
    def worker(w: int) -> int:
        done = 0
        for i in range(w, total, concurrency):
            assert pool.request("GET", f"{url}/{i}").content == f"ok /{i}".encode()
            done += 1
        return done

    results = run_threads(worker, concurrency)
    assert failures(results) == []
    assert sum(results) == total


def test_server_closing_after_n_requests(h2_server: Callable[..., H2Server]) -> None:
    """nginx-style: GOAWAY after every 100 requests, 1000 requests, 100 at a time."""
    srv = h2_server(max_requests=100)
    with h2c_pool() as pool:
        _many_requests(pool, srv.url, total=1000, concurrency=100)
    assert srv.requests == 1000
    assert srv.goaways >= 9


@pytest.mark.anyio
async def test_async_server_closing_after_n_requests(h2_server: Callable[..., H2Server]) -> None:
    srv = h2_server(max_requests=100)
    total, concurrency = 1000, 100
    async with async_h2c_pool() as pool:

        async def worker(w: int) -> int:
            done = 0
            for i in range(w, total, concurrency):
                response = await pool.request("GET", f"{srv.url}/{i}")
                assert response.content == f"ok /{i}".encode()
                done += 1
            return done

        results = await run_tasks(worker, concurrency)
    assert failures(results) == []
    assert sum(results) == total
    assert srv.requests == total


def test_server_lowers_max_concurrent_streams(h2_server: Callable[..., H2Server]) -> None:
    srv = h2_server(max_concurrent_streams=100, lower_after=20, lower_streams_to=2)
    with h2c_pool(max_connections=1) as pool:
        results = run_threads(lambda i: pool.request("GET", f"{srv.url}/{i}").content, 50)
        assert results == [f"ok /{i}".encode() for i in range(50)]
        connection = pool.connections[0]._connection
        assert connection._max_streams == 2
    assert srv.violations == 0


@pytest.mark.anyio
async def test_async_server_lowers_max_concurrent_streams(
    h2_server: Callable[..., H2Server],
) -> None:
    srv = h2_server(max_concurrent_streams=100, lower_after=20, lower_streams_to=2)
    async with async_h2c_pool(max_connections=1) as pool:

        async def get(i: int) -> bytes:
            return (await pool.request("GET", f"{srv.url}/{i}")).content

        results = await run_tasks(get, 50)
        assert results == [f"ok /{i}".encode() for i in range(50)]
    assert srv.violations == 0


def test_lowered_limit_opens_another_connection(h2_server: Callable[..., H2Server]) -> None:
    srv = h2_server(max_concurrent_streams=100, lower_after=20, lower_streams_to=2)
    with h2c_pool(max_connections=4) as pool:
        results = run_threads(lambda i: pool.request("GET", f"{srv.url}/{i}").content, 40)
        assert results == [f"ok /{i}".encode() for i in range(40)]
    assert srv.violations == 0


def _reset_or_ok(results: List[Any], reset: Sequence[int]) -> None:
    for i, result in enumerate(results):
        if i in reset:
            assert isinstance(result, httpcore.RemoteProtocolError), result
            assert "StreamReset" in str(result)
        else:
            assert result == f"ok /{i}".encode()


def test_rst_stream_fails_only_that_request(h2_server: Callable[..., H2Server]) -> None:
    srv = h2_server()
    with h2c_pool() as pool:
        pool.request("GET", srv.url + "/")

        def get(i: int) -> bytes:
            path = "/reset" if i in (3, 7) else f"/{i}"
            return pool.request("GET", srv.url + path).content

        _reset_or_ok(run_threads(get, 10), reset=(3, 7))
        assert len(pool.connections) == 1
        assert pool.connections[0].is_available()
        assert pool.request("GET", srv.url + "/again").content == b"ok /again"


@pytest.mark.anyio
async def test_async_rst_stream_fails_only_that_request(
    h2_server: Callable[..., H2Server],
) -> None:
    srv = h2_server()
    async with async_h2c_pool() as pool:

        async def get(i: int) -> bytes:
            path = "/reset" if i in (3, 7) else f"/{i}"
            return (await pool.request("GET", srv.url + path)).content

        _reset_or_ok(await run_tasks(get, 10), reset=(3, 7))
        assert (await pool.request("GET", srv.url + "/again")).content == b"ok /again"
        assert len(pool.connections) == 1


def test_connection_closed_mid_stream(h2_server: Callable[..., H2Server]) -> None:
    srv = h2_server()
    with h2c_pool() as pool:
        assert pool.request("GET", srv.url + "/").content == b"ok /"
        with pytest.raises(httpcore.RemoteProtocolError, match="Server disconnected"):
            pool.request("GET", srv.url + "/die")
        # The broken connection is not used again.
        assert pool.request("GET", srv.url + "/after").content == b"ok /after"
        assert [c for c in pool.connections if c.is_available()] != []
        assert srv.connections == 2


@pytest.mark.anyio
async def test_async_connection_closed_mid_stream(h2_server: Callable[..., H2Server]) -> None:
    srv = h2_server()
    async with async_h2c_pool() as pool:
        with pytest.raises(httpcore.RemoteProtocolError, match="Server disconnected"):
            await pool.request("GET", srv.url + "/die")
        assert (await pool.request("GET", srv.url + "/after")).content == b"ok /after"
        assert srv.connections == 2


def test_ping_is_answered(h2_server: Callable[..., H2Server]) -> None:
    srv = h2_server(ping=True)
    with h2c_pool() as pool:
        results = run_threads(lambda i: pool.request("GET", f"{srv.url}/{i}").content, 5)
    assert results == [f"ok /{i}".encode() for i in range(5)]
    assert srv.pings_acked == 5


@pytest.mark.anyio
async def test_async_ping_is_answered(h2_server: Callable[..., H2Server]) -> None:
    srv = h2_server(ping=True)
    async with async_h2c_pool() as pool:

        async def get(i: int) -> bytes:
            return (await pool.request("GET", f"{srv.url}/{i}")).content

        assert await run_tasks(get, 5) == [f"ok /{i}".encode() for i in range(5)]
    assert srv.pings_acked == 5


def test_pool_timeout_while_waiting_for_a_stream_slot(
    h2_server: Callable[..., H2Server],
) -> None:
    srv = h2_server(max_concurrent_streams=1, hold=3)
    extensions = {"timeout": {"pool": 0.2, "read": 2.0}}
    with h2c_pool(max_connections=1) as pool:

        def get(i: int) -> Optional[bytes]:
            return pool.request("GET", f"{srv.url}/{i}", extensions=extensions).content

        results = run_threads(get, 2)
    assert any(isinstance(r, httpcore.PoolTimeout) for r in results)


@pytest.mark.anyio
async def test_httpx_requests_refused_by_goaway_are_retried(
    h2_server: Callable[..., H2Server],
) -> None:
    """httpx sends its own in-memory body stream: a stream refused by GOAWAY is replayable
    and goes to a new connection, as the library's own requests do."""
    import httpx

    srv = h2_server(max_requests=100)
    total, concurrency = 500, 100
    transport = httpx.AsyncHTTPTransport(http1=False, http2=True)
    async with httpx.AsyncClient(transport=transport) as client:

        async def worker(w: int) -> int:
            done = 0
            for i in range(w, total, concurrency):
                response = await client.get(f"{srv.url}/{i}")
                assert response.content == f"ok /{i}".encode()
                done += 1
            return done

        results = await run_tasks(worker, concurrency)
    assert failures(results) == []
    assert sum(results) == total
    assert srv.requests == total
