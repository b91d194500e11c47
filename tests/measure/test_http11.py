"""The lean HTTP/1.1 transport: framing, keep-alive, and every malformed answer as a typed error.

Each case is a raw asyncio server writing exact bytes, so the client sees precisely what a
faulty or unusual server would send. (The provider contract suite and the fault matrix also run
through this transport: tests/providers/test_contract.py, tests/reliability/test_faults.py.)
"""

from __future__ import annotations

import asyncio
import gc
import gzip
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from tests.measure.test_netbackend import _tls_server, cert  # noqa: F401  (fixture)
from workbench.config import load_contenders
from workbench.measure.http11 import MAX_HEAD_BYTES, Http11Transport, LeanClient
from workbench.measure.probe import make_client, probe
from workbench.measure.target import Target
from workbench.providers.base import HttpRequest
from workbench.types import Prompt

pytestmark = pytest.mark.timeout(30)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _serve(answers: list[bytes], *, close_after: bool = False) -> tuple[asyncio.Server, int, list[int]]:
    """A server that answers the k-th request (over all connections) with answers[k].
    `conns` gets a 1 per connection, and a -1 when its handler has finished."""
    state = {"k": 0}
    conns: list[int] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conns.append(1)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                if length:
                    await reader.readexactly(length)
                k = state["k"]
                state["k"] += 1
                writer.write(answers[min(k, len(answers) - 1)])
                await writer.drain()
                if close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            conns.append(-1)

    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], conns


def _run(answers: list[bytes], body: Callable[[httpx.AsyncClient, str], Awaitable[None]],
         close_after: bool = False) -> int:
    """Run `body` against the server; the number of connections it took."""
    async def go() -> int:
        server, port, conns = await _serve(answers, close_after=close_after)
        async with server:
            async with LeanClient(timeout_s=5.0, max_idle=4) as client:
                await body(client, f"http://127.0.0.1:{port}")
            for _ in range(200):  # the client closed its connections: let every handler see it
                if sum(conns) == 0:
                    break
                await asyncio.sleep(0.01)
        return conns.count(1)

    return asyncio.run(go())


def test_content_length_bodies_share_one_keepalive_connection() -> None:
    answers = [b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-a: 1\r\n\r\nhello"]

    async def body(client: httpx.AsyncClient, url: str) -> None:
        for _ in range(3):
            r = await client.post(url + "/v1/x", json={"a": 1})
            assert r.status_code == 200 and r.text == "hello" and r.headers["x-a"] == "1"
            assert r.extensions["http_version"] == b"HTTP/1.1" and r.extensions["reason_phrase"] == b"OK"

    assert _run(answers, body) == 1


def test_chunked_with_extensions_and_trailers_then_reuse() -> None:
    chunked = (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
               b"5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nx-trailer: t\r\n\r\n")

    async def body(client: httpx.AsyncClient, url: str) -> None:
        for _ in range(2):
            r = await client.get(url)
            assert r.text == "hello world"

    assert _run([chunked], body) == 1


def test_chunked_body_arriving_byte_by_byte() -> None:
    """Framing split anywhere (inside the size line, the data, the CRLF) decodes the same."""
    payload = b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"

    async def go() -> str:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                for i in range(len(payload)):
                    writer.write(payload[i:i + 1])
                    await writer.drain()
                    await asyncio.sleep(0.002)
            finally:
                writer.close()

        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server, LeanClient(timeout_s=5.0, max_idle=2) as client, \
                client.stream("GET", f"http://127.0.0.1:{port}/") as r:
            pieces = [p async for p in r.aiter_raw()]
        assert len(pieces) > 1  # streamed as it came, not buffered to the end
        return b"".join(pieces).decode()

    assert asyncio.run(go()) == "abcdefg"


def test_close_delimited_body_and_connection_close_are_not_reused() -> None:
    answers = [b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil close"]

    async def body(client: httpx.AsyncClient, url: str) -> None:
        for _ in range(2):
            assert (await client.get(url)).text == "until close"

    assert _run(answers, body, close_after=True) == 2


def test_interim_1xx_is_skipped_and_204_has_no_body() -> None:
    answers = [b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
               b"HTTP/1.1 204 No Content\r\n\r\n"]

    async def body(client: httpx.AsyncClient, url: str) -> None:
        assert (await client.get(url)).text == "ok"
        r = await client.get(url)
        assert r.status_code == 204 and r.content == b""

    assert _run(answers, body) == 1


def test_gzip_is_decoded_above_the_transport() -> None:
    data = gzip.compress(b'{"ok": true}')
    answers = [b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: %d\r\n\r\n%s" % (len(data), data)]

    async def body(client: httpx.AsyncClient, url: str) -> None:
        assert (await client.get(url)).json() == {"ok": True}

    _run(answers, body)


@pytest.mark.parametrize(("answer", "message"), [
    (b"HTTP/1.1 2OO OK\r\ncontent-length: 0\r\n\r\n", "malformed status line"),
    (b"SMTP ready\r\n\r\n", "malformed status line"),
    (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "malformed header line"),
    (b"HTTP/1.1 200 OK\r\ncontent-length: ten\r\n\r\n", "bad content-length"),
    (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", "bad chunk size"),
    (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabcXX0\r\n\r\n", "not followed by CRLF"),
    (b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort", "5 bytes before the end"),
    (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nab", "inside a chunked body"),
    (b"HTTP/1.1 200 O", "without sending a complete response head"),
])
def test_malformed_or_cut_answers_are_protocol_errors(answer: bytes, message: str) -> None:
    async def body(client: httpx.AsyncClient, url: str) -> None:
        with pytest.raises(httpx.RemoteProtocolError, match=message):
            await client.get(url)

    _run([answer], body, close_after=True)


def test_a_head_larger_than_the_limit_is_refused() -> None:
    huge = b"HTTP/1.1 200 OK\r\n" + b"x-pad: " + b"a" * (MAX_HEAD_BYTES + 10) + b"\r\n\r\n"

    async def body(client: httpx.AsyncClient, url: str) -> None:
        with pytest.raises(httpx.RemoteProtocolError, match="response head longer"):
            await client.get(url)

    _run([huge], body, close_after=True)


def test_refused_connect_timeouts_and_a_stale_keepalive() -> None:
    async def go() -> None:
        # refused
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        async with LeanClient(timeout_s=2.0, max_idle=2) as lean:
            with pytest.raises(httpx.ConnectError):
                await lean.get(f"http://127.0.0.1:{port}/")
        # a silent server: the transport with read timeouts raises ReadTimeout
        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await asyncio.sleep(3)
            finally:
                writer.close()

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server, httpx.AsyncClient(transport=Http11Transport()) as client:
            with pytest.raises(httpx.ReadTimeout):
                await client.get(f"http://127.0.0.1:{port}/", timeout=0.2)

    asyncio.run(go())

    # an idle connection the server closed is dropped, not used
    answers = [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"]

    async def body(client: httpx.AsyncClient, url: str) -> None:
        assert (await client.get(url)).text == "ok"
        await asyncio.sleep(0.1)  # the server closes after each answer (close_after)
        assert (await client.get(url)).text == "ok"

    assert _run(answers, body, close_after=True) == 2


def test_an_abandoned_stream_closes_its_connection() -> None:
    answers = [b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello"]  # 5 of 10 bytes, then silence

    async def body(client: httpx.AsyncClient, url: str) -> None:
        async with client.stream("GET", url) as r:
            async for _ in r.aiter_raw():
                break  # the caller stops reading: the connection must not go back to the pool
        assert client._lean._n_idle == 0  # type: ignore[attr-defined]

    _run(answers, body)


def test_tls_streams_through_the_probe_and_an_untrusted_certificate_is_refused(
        cert: tuple[Path, Path]) -> None:  # noqa: F811
    async def go() -> None:
        server, port = await _tls_server(cert)
        url = f"https://localhost:{port}/v1"
        trusting = ssl.create_default_context(cafile=str(cert[0]))
        c = load_contenders().get("qwen2.5-coder-0.5b")
        async with server:
            async with httpx.AsyncClient(transport=Http11Transport(ssl_context=trusting)) as client:
                for _ in range(2):  # the second reuses the TLS connection
                    rec = await probe(client, Target(c, url), Prompt("p", "x"))
                    assert rec.ok and rec.n_chunks == 4, rec.error_message
            async with make_client(2, 5.0, lean=True) as client:  # the shared context: certifi roots
                rec = await probe(client, Target(c, url), Prompt("p", "x"))
            assert rec.error_class == "connection" and "CERTIFICATE_VERIFY_FAILED" in (rec.error_message or "")
            await asyncio.sleep(0.2)  # let the server's TLS connections finish closing

    asyncio.run(go())


def test_lean_client_refuses_auth_and_redirects_and_keeps_cookies() -> None:
    answers = [b"HTTP/1.1 200 OK\r\nset-cookie: a=1; Path=/\r\ncontent-length: 2\r\n\r\nok"]

    async def body(client: httpx.AsyncClient, url: str) -> None:
        with pytest.raises(ValueError, match="no auth"):
            await client.get(url, auth=("u", "p"))
        with pytest.raises(ValueError, match="no redirects"):
            await client.get(url, follow_redirects=True)
        for lean in (True, False):  # make_client's jar looks only at responses that set a cookie
            async with make_client(1, 5.0, lean=lean) as made:
                assert not made.cookies
                await made.get(url)
                assert made.cookies.get("a") == "1"

    _run(answers, body)


def test_a_closed_client_sends_nothing() -> None:
    async def go() -> None:
        client = LeanClient(timeout_s=1.0, max_idle=1)
        await client.aclose()
        with pytest.raises(RuntimeError):
            await client.get("http://127.0.0.1:9/")

    asyncio.run(go())


def test_unsupported_scheme() -> None:
    async def go() -> None:
        async with httpx.AsyncClient(transport=Http11Transport()) as client:
            with pytest.raises(httpx.UnsupportedProtocol):
                await client.send(httpx.Request("GET", "ftp://127.0.0.1/"))

    asyncio.run(go())


# -- the load path: prepare + send_raw --------------------------------------------------------

async def _capture(answer: bytes | list[bytes]) -> tuple[asyncio.Server, int, list[bytes]]:
    """A server that keeps each request's exact bytes (head and body) and answers `answer` (the
    k-th request `answer[k]`, the last one over again, when given a list)."""
    seen: list[bytes] = []
    answers = answer if isinstance(answer, list) else [answer]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                seen.append(head + await reader.readexactly(length))
                writer.write(answers[min(len(seen), len(answers)) - 1])
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], seen


def _json(body: object) -> bytes:
    return HttpRequest("POST", "", {}, body, False).content()  # type: ignore[arg-type]


async def _raw_body(client: LeanClient, url: str, headers: dict[str, str], body: object) -> tuple[int, bytes]:
    prepared = client.prepare("POST", url, headers, _json(body))
    assert prepared is not None
    response = await client.send_raw(prepared)
    try:
        return response.status_code, b"".join([p async for p in response.aiter_bytes()])
    finally:
        await response.aclose()


def test_raw_requests_are_byte_for_byte_what_httpx_sends() -> None:
    """The bytes path writes what `build_request` + `send` write: httpx's own head (its default
    headers, Host with the port, their order), the Content-Length of each body, the same JSON."""
    answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-ratelimit-remaining-requests: 9\r\n\r\nok"

    async def go() -> list[bytes]:
        server, port, seen = await _capture(answer)
        url = f"http://127.0.0.1:{port}/v1/chat/completions?x=1"
        headers = {"authorization": "Bearer k", "Content-Type": "application/json", "x-extra": "v"}
        bodies: list[object] = [{"a": "ü", "n": [1, 2.5, None]}, {"b": "a much longer body " * 40}]
        async with server, LeanClient(timeout_s=5.0, max_idle=2) as client:
            for body in bodies:
                await client.send(client.build_request("POST", url, headers=headers, json=body))
                status, got = await _raw_body(client, url, headers, body)
                assert (status, got) == (200, b"ok")
            prepared = client.prepare("POST", url, {"authorization": "Bearer k"}, _json({"c": 1}))
            assert prepared is not None and b"Content-Type: application/json\r\n" in prepared.payload
            response = await client.send_raw(prepared)
            assert response.header_items()[1] == ("x-ratelimit-remaining-requests", "9")
            assert response.headers["X-RateLimit-Remaining-Requests"] == "9"
            await response.aclose()
        return seen

    seen = asyncio.run(go())
    assert len(seen) == 5 and seen[0] == seen[1] and seen[2] == seen[3] and seen[0] != seen[2]


def test_raw_responses_undo_gzip_and_keep_cookies_then_requests_carry_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """A cookie a response sets goes with the next requests, as httpx sends it, and stops once it
    has expired (kept heads are rebuilt every COOKIE_REFRESH_S while the jar holds any)."""
    from workbench.measure import http11

    data = gzip.compress(b'{"ok": true}')
    first = (b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\nset-cookie: lb=7; Path=/; Max-Age=1\r\n"
             b"content-length: %d\r\n\r\n%s" % (len(data), data))
    then = b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: %d\r\n\r\n%s" % (len(data), data)
    monkeypatch.setattr(http11, "COOKIE_REFRESH_S", 0.2)

    async def go() -> list[bytes]:
        server, port, seen = await _capture([first, then])
        url = f"http://127.0.0.1:{port}/v1/x"
        async with server, LeanClient(timeout_s=5.0, max_idle=2) as client:
            assert await _raw_body(client, url, {}, {}) == (200, b'{"ok": true}')  # gzip undone
            assert client.cookies.get("lb") == "7"  # set for one second
            await client.send(client.build_request("POST", url, json={}))  # httpx's way, cookie included
            await _raw_body(client, url, {}, {})  # the bytes path: the same bytes
            await asyncio.sleep(1.3)  # lb=7 has expired
            await _raw_body(client, url, {}, {})
        return seen

    seen = asyncio.run(go())
    assert b"cookie" not in seen[0].lower()
    assert b"Cookie: lb=7\r\n" in seen[1] and seen[1] == seen[2]
    assert b"cookie" not in seen[3].lower()


def test_raw_requests_through_the_probe_keep_the_wire_and_rate_limit_headers() -> None:
    """A load client (lean) and a plain httpx client send the same request for the same prompt,
    and both records carry the rate-limit headers."""
    body = (b'{"choices":[{"message":{"content":"hi"},"finish_reason":"stop"}],'
            b'"usage":{"prompt_tokens":3,"completion_tokens":1}}')
    answer = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-ratelimit-limit-requests: 60\r\n"
              b"content-length: %d\r\n\r\n%s" % (len(body), body))
    c = load_contenders().get("qwen2.5-coder-0.5b")

    async def go() -> list[bytes]:
        server, port, seen = await _capture(answer)
        target = Target(c, f"http://127.0.0.1:{port}/v1", stream=False)
        async with server:
            for lean in (True, False):
                async with make_client(1, 5.0, lean=lean) as client:
                    rec = await probe(client, target, Prompt("p", "hello"))
                assert rec.ok and rec.output_text == "hi" and rec.output_tokens == 1, rec.error_message
                assert rec.rate_limit == {"x-ratelimit-limit-requests": "60"}
                assert rec.send_delay_s is not None and rec.e2e_s is not None
        return seen

    seen = asyncio.run(go())
    assert len(seen) == 2 and seen[0] == seen[1]


def test_a_load_run_leaves_no_cyclic_garbage() -> None:
    """A load run holds the cyclic collector off, so anything the request path leaves in a
    reference cycle stays in memory until the run ends (llhttp's parser and its callbacks did:
    ~13 objects per response, a forced full collection every ~65,000 requests)."""
    from workbench.measure.load import closed_loop

    body = b'{"choices":[{"message":{"content":"hi"},"finish_reason":"stop"}]}'
    answer = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
    c = load_contenders().get("qwen2.5-coder-0.5b")

    async def go() -> int:
        server, port, _ = await _capture(answer)
        async with server:
            target = Target(c, f"http://127.0.0.1:{port}/v1", stream=False, keep_itl=False)
            await closed_loop(target, [Prompt("p", "x")], concurrency=8, n_requests=16, max_duration_s=10)
            gc.collect()
            gc.disable()  # the monitor then leaves it off after the run too
            res = await closed_loop(target, [Prompt("p", "x")], concurrency=8, n_requests=600, max_duration_s=20)
            assert sum(r.ok for r in res.records) == 600
            return gc.collect()

    try:
        found = asyncio.run(go())
    finally:
        gc.enable()
    assert found < 200, f"{found} objects in cycles after 600 requests"
