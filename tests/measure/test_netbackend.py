"""The asyncio network backend under httpx: TLS, certificate checks, timeouts, dead keep-alives."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from workbench.config import load_contenders
from workbench.measure.netbackend import async_transport, shared_ssl_context
from workbench.measure.probe import make_client, probe
from workbench.measure.target import Target
from workbench.serve.mock import MockScript, MockServer
from workbench.types import Prompt

LIMITS = httpx.Limits(max_connections=4, max_keepalive_connections=4)
CFG = MockScript.timed(ttft_ms=20, itl_ms=5, n_chunks=4)


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not installed")
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(d / "key.pem"),
         "-out", str(d / "cert.pem"), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True)
    return d / "cert.pem", d / "key.pem"


async def _tls_server(cert: tuple[Path, Path]) -> tuple[asyncio.Server, int]:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    mock = MockServer(CFG)
    server = await mock.listen(ssl=ctx)
    return server, mock.port


def test_streams_over_tls_with_a_trusted_certificate(cert: tuple[Path, Path]) -> None:
    async def go() -> None:
        server, port = await _tls_server(cert)
        trusting = ssl.create_default_context(cafile=str(cert[0]))
        c = load_contenders().get("qwen2.5-coder-0.5b")
        async with server, httpx.AsyncClient(transport=async_transport(LIMITS, ssl_context=trusting)) as client:
            for _ in range(3):  # the second and third reuse the TLS connection
                rec = await probe(client, Target(c, f"https://localhost:{port}/v1"), Prompt("p", "x"))
                assert rec.ok, rec.error_message
                assert rec.n_chunks == CFG.n_chunks and rec.output_tokens == CFG.n_chunks
                assert rec.ttft_s is not None and rec.ttft_s >= CFG.ttft_s * 0.9
            r = await client.get(f"https://127.0.0.1:{port}/v1/models")
            assert r.status_code == 200 and r.json()["data"][0]["id"] == "mock-model"

    asyncio.run(go())


def test_an_untrusted_certificate_is_refused(cert: tuple[Path, Path]) -> None:
    async def go() -> None:
        server, port = await _tls_server(cert)
        c = load_contenders().get("qwen2.5-coder-0.5b")
        async with server, make_client(2, 5.0) as client:
            rec = await probe(client, Target(c, f"https://localhost:{port}/v1"), Prompt("p", "x"))
        assert rec.error_class == "connection" and "CERTIFICATE_VERIFY_FAILED" in (rec.error_message or "")

    asyncio.run(go())


def test_the_tls_context_is_shared_and_verifies() -> None:
    ctx = shared_ssl_context()
    assert ctx is shared_ssl_context()
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname


def test_read_timeout_and_a_keepalive_the_server_closed() -> None:
    """A silent server times out as a ReadTimeout; an idle connection the server closed is
    noticed (EOF in the protocol) and replaced, so the next request does not fail on it."""

    async def go() -> None:
        conns = 0

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal conns
            conns += 1
            try:
                head = await reader.readuntil(b"\r\n\r\n")
                if b"/silent" in head:
                    await asyncio.sleep(5)
                else:
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    await writer.drain()
                    await asyncio.sleep(0.05)
            except (asyncio.IncompleteReadError, asyncio.CancelledError, ConnectionError):
                pass
            finally:
                writer.close()  # keep-alive offered, then closed by the server

        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server, httpx.AsyncClient(transport=async_transport(LIMITS)) as client:
            with pytest.raises(httpx.ReadTimeout):
                await client.get(f"http://127.0.0.1:{port}/silent", timeout=0.2)
            assert (await client.get(f"http://127.0.0.1:{port}/a")).text == "ok"
            await asyncio.sleep(0.2)  # the server has closed the idle connection by now
            assert (await client.get(f"http://127.0.0.1:{port}/b")).text == "ok"
        assert conns == 3
        with pytest.raises(httpx.ConnectError):
            async with httpx.AsyncClient(transport=async_transport(LIMITS)) as client:
                await client.get(f"http://127.0.0.1:{port}/")  # server closed: refused

    asyncio.run(go())


def test_stamps_arrival_per_piece_and_send_at_the_wire() -> None:
    """A read returns one received piece with the time it arrived (not the time it was read);
    the send stamp is the connect start for a connection's first request, then each request's
    first written byte."""
    from workbench.measure.netbackend import AsyncioBackend, AsyncioStream, arrival_clock, wire_start_ns

    async def go() -> None:
        both_sent = asyncio.Event()

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                for _ in range(2):
                    await reader.readuntil(b"\r\n\r\n")
                    writer.write(b"one")
                    await writer.drain()
                    await asyncio.sleep(0.05)
                    writer.write(b"two")
                    await writer.drain()
                    both_sent.set()
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            before_connect = time.perf_counter_ns()
            stream = await AsyncioBackend().connect_tcp("127.0.0.1", port, timeout=5)
            assert isinstance(stream, AsyncioStream)
            clock = arrival_clock(stream)
            await asyncio.sleep(0.02)  # nothing sent yet: no request stamp
            assert wire_start_ns(stream) is None
            await stream.write(b"GET / HTTP/1.1\r\n\r\n")
            start = wire_start_ns(stream)
            assert start is not None and before_connect <= start == stream.connect_started_ns
            await both_sent.wait()  # both pieces arrive while nobody reads
            while stream._protocol.size < len(b"onetwo"):
                await asyncio.sleep(0)  # ... and the transport has handed them over
            t_read = time.perf_counter_ns()
            assert await stream.read(100) == b"one"
            first = clock()
            assert await stream.read(100) == b"two"
            second = clock()
            assert first < second < t_read and second - first > 30_000_000  # arrived ~50 ms apart
            before_write = time.perf_counter_ns()
            await stream.write(b"GET / HTTP/1.1\r\n")  # the second request: two writes, one stamp
            await stream.write(b"\r\n")
            start2 = wire_start_ns(stream)
            assert start2 is not None and start2 >= before_write and stream.requests_sent == 2
            assert await stream.read(100) == b"one"
            assert await stream.read(100) == b"two"
            assert await stream.read(100) == b""  # the server closed
            await stream.aclose()
        assert arrival_clock(object()) is time.perf_counter_ns and wire_start_ns(object()) is None

    asyncio.run(go())


def test_probe_times_from_the_wire_and_reports_the_send_delay() -> None:
    """TTFT and E2E run from the request's first byte on the wire; the client's own time before
    that is `send_delay_s`. Held against the server's truth notes (same process, same clock) and
    the caller's own watch, not against wall-clock margins: the server's time from reading the
    request to its first byte lies inside TTFT, and send delay plus E2E fit in the call."""

    async def go() -> None:
        mock = MockServer(CFG)
        server = await mock.listen()
        port = mock.port
        c = load_contenders().get("qwen2.5-coder-0.5b")
        async with server, make_client(2, 5.0) as client:
            for lean in (False, True):
                async with make_client(2, 5.0, lean=lean) as cl:
                    for i in range(2):
                        t0 = time.perf_counter()
                        rec = await probe(cl, Target(c, f"http://127.0.0.1:{port}/v1"), Prompt("p", f"x{i}"))
                        call_s = time.perf_counter() - t0
                        assert rec.ok and rec.ttft_s is not None and rec.e2e_s is not None
                        (read_ns, first_sent_ns, _, _), = mock.take_truth().values()
                        assert rec.send_delay_s is not None and rec.send_delay_s >= 0
                        assert CFG.ttft_s <= (first_sent_ns - read_ns) / 1e9 <= rec.ttft_s <= rec.e2e_s
                        assert rec.send_delay_s + rec.e2e_s <= call_s
            del client

    asyncio.run(go())
