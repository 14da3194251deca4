"""Top-level `httpcore.request()` / `httpcore.stream()` (API.md §11) and pools under load
against the local `server` fixture (hypercorn on 127.0.0.1)."""

from __future__ import annotations

import json
import threading

import anyio
import pytest

import httpcore


def test_request(server):
    response = httpcore.request("GET", server.url + "/")
    assert response.status == 200
    assert response.content == b"Hello, world!"
    assert response.extensions["http_version"] == b"HTTP/1.1"
    assert isinstance(response.extensions["reason_phrase"], bytes)


def test_request_with_body(server):
    body = b'{"hello":"world"}'
    response = httpcore.request("POST", server.url + "/echo", content=body)
    assert response.status == 200
    assert response.content == body
    assert (b"x-received-length", b"17") in response.headers


def test_request_sends_content_length_and_host(server):
    response = httpcore.request(
        "POST", server.url + "/echo_headers", headers={"X-Test": "1"}, content=b"abc"
    )
    headers = json.loads(response.content)["headers"]
    assert ["host", f"127.0.0.1:{server.port}"] in headers
    assert ["content-length", "3"] in headers
    assert ["x-test", "1"] in headers


def test_request_with_iterator_body(server):
    response = httpcore.request("POST", server.url + "/echo", content=iter([b"ab", b"cd"]))
    assert response.content == b"abcd"


def test_stream(server):
    with httpcore.stream("GET", server.url + "/stream/3/5") as response:
        assert response.status == 200
        with pytest.raises(RuntimeError):
            response.content  # noqa: B018 - not read yet
        chunks = list(response.iter_stream())
    assert b"".join(chunks) == b"x" * 15


def test_request_errors():
    with pytest.raises(httpcore.UnsupportedProtocol):
        httpcore.request("GET", "ftp://127.0.0.1/")


def test_request_connect_error():
    # Port 1 on localhost is essentially never listening.
    with pytest.raises(httpcore.ConnectError):
        httpcore.request("GET", "http://127.0.0.1:1/", extensions={"timeout": {"connect": 2.0}})


def test_threaded_stress(server):
    threads, per_thread = 16, 50
    url = server.url + "/"
    results = []
    errors = []
    max_seen = [0]
    with httpcore.ConnectionPool(max_connections=4) as pool:

        def worker():
            try:
                for _ in range(per_thread):
                    response = pool.request("GET", url)
                    results.append((response.status, response.content))
                    max_seen[0] = max(max_seen[0], len(pool.connections))
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)

        workers = [threading.Thread(target=worker) for _ in range(threads)]
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join(50)
        assert not errors, errors[:3]
        assert len(results) == threads * per_thread
        assert set(results) == {(200, b"Hello, world!")}
        assert max_seen[0] <= 4
        assert 1 <= len(pool.connections) <= 4
        assert all(conn.is_idle() for conn in pool.connections)
        assert repr(pool).startswith("<ConnectionPool [Requests: 0 active, 0 queued | ")
    assert pool.connections == []


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request):
    return request.param


@pytest.mark.anyio
async def test_async_concurrency_against_server(server):
    url = server.url + "/stream/4/100"
    results = []
    async with httpcore.AsyncConnectionPool(max_connections=3) as pool:

        async def worker():
            for _ in range(10):
                async with pool.stream("GET", url) as response:
                    body = b"".join([chunk async for chunk in response.aiter_stream()])
                results.append((response.status, body))
                assert len(pool.connections) <= 3

        async with anyio.create_task_group() as tg:
            for _ in range(8):
                tg.start_soon(worker)
        assert set(results) == {(200, b"x" * 400)} and len(results) == 80
        # The 8 workers enter the pool before a connection is up: 3 are opened, all kept.
        assert len(pool.connections) == 3
        assert all(conn.is_idle() for conn in pool.connections)
        assert repr(pool).startswith("<AsyncConnectionPool [Requests: 0 active, 0 queued | ")
