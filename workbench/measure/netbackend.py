"""An httpcore network backend on plain asyncio transports, and the one shared TLS context.

httpx's default backend goes through anyio: every read and write opens a cancel scope
(`fail_after`), every idle-connection check polls the socket through anyio's typed-attribute
lookup, and sniffio is asked for the running library each time. Under load that is most of the
client's CPU outside h11 (see bench/README.md). This backend implements httpcore's documented
extension point (`AsyncNetworkBackend` / `AsyncNetworkStream`) on an `asyncio.Protocol`:
data the loop has read waits in a buffer, a read takes all of it (up to `max_bytes`) at once,
timeouts are one `call_later` handle, and "is this idle connection readable?" is answered from
the protocol's own state (EOF, error, or unread bytes) without a system call.

HTTP itself (h11, the pool, limits, timeouts, redirects, the httpx API) is still httpx's and
httpcore's: `async_transport()` builds a stock `httpx.AsyncHTTPTransport` and swaps in an
`httpcore.AsyncConnectionPool` that uses this backend. TLS goes through `loop.start_tls` with
the shared context from `shared_ssl_context()` (certifi's roots, loaded once per process:
loading them costs ~40 ms of CPU, which many small clients would otherwise pay each).
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import socket
import ssl
import time
import typing

import httpcore
import httpx

__all__ = ["AsyncioBackend", "AsyncioStream", "arrival_clock", "async_transport", "resent_stale", "shared_ssl_context",
           "wire_start_ns"]

_SSL_CONTEXT: ssl.SSLContext | None = None

#: The connection the current task's request last went out on (`_Pool` reads it after a failure).
_WRITTEN_ON: contextvars.ContextVar[AsyncioStream | None] = contextvars.ContextVar("workbench_written_on", default=None)

# A read buffer above this pauses the socket until the reader catches up.
_HIGH_WATER = 1 << 20


def shared_ssl_context() -> ssl.SSLContext:
    """One verifying client context (httpx's defaults: certifi roots, TLS ≥ 1.2) per process."""
    global _SSL_CONTEXT
    if _SSL_CONTEXT is None:
        _SSL_CONTEXT = httpx.create_ssl_context(verify=True, trust_env=False)
    return _SSL_CONTEXT


class _Protocol(asyncio.Protocol):
    """Bytes the loop has read, a waiting reader, and write flow control for one connection."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.chunks: collections.deque[bytes] = collections.deque()
        self.stamps: collections.deque[int] = collections.deque()  # arrival ns, one per chunk
        self.size = 0
        self.received = 0  # bytes the loop has read on this connection, ever
        self.eof = False
        self.exc: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.drain_waiter: asyncio.Future[None] | None = None
        self.paused_reading = False
        self.paused_writing = False

    # -- asyncio callbacks ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.stamps.append(time.perf_counter_ns())
        self.chunks.append(data)
        self.size += len(data)
        self.received += len(data)
        if self.size > _HIGH_WATER and not self.paused_reading and self.transport is not None:
            self.paused_reading = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool | None:
        self.eof = True
        self._wake()
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        if exc is not None:
            self.exc = exc
        self._wake()
        w = self.drain_waiter
        if w is not None and not w.done():
            if exc is None:
                w.set_result(None)
            else:
                w.set_exception(exc)

    def pause_writing(self) -> None:
        self.paused_writing = True

    def resume_writing(self) -> None:
        self.paused_writing = False
        w = self.drain_waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _wake(self) -> None:
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)

    # -- stream side -------------------------------------------------------------------------
    def take(self, max_bytes: int) -> tuple[bytes, int]:
        """The oldest unread piece (at most `max_bytes` of it) and when it arrived.

        One piece per read keeps each piece's own arrival time; several pieces wait here only
        when the reader is behind, and then each read is as cheap as a deque pop."""
        data = self.chunks.popleft()
        if len(data) > max_bytes:
            self.chunks.appendleft(data[max_bytes:])
            stamp = self.stamps[0]
            data = data[:max_bytes]
        else:
            stamp = self.stamps.popleft()
        self.size -= len(data)
        if self.paused_reading and self.size <= _HIGH_WATER // 4 and self.transport is not None:
            self.paused_reading = False
            self.transport.resume_reading()
        return data, stamp


def arrival_clock(network_stream: object) -> typing.Callable[[], int]:
    """A clock for "when did the bytes just read arrive": the stream's arrival stamp when it is
    an `AsyncioStream` that has read something, else `time.perf_counter_ns()` (the moment of
    parsing — what any other backend, or HTTP/2, can offer)."""
    if isinstance(network_stream, AsyncioStream):
        def stamp() -> int:
            t = network_stream.last_arrival_ns
            return t if t is not None else time.perf_counter_ns()
        return stamp
    return time.perf_counter_ns


def wire_start_ns(network_stream: object) -> int | None:
    """When the request just answered on `network_stream` went out: the start of the connect
    when the connection was opened for it (its first request), else its first written byte.
    None when the stream is not an `AsyncioStream` (then the caller's own clock stands)."""
    if not isinstance(network_stream, AsyncioStream) or network_stream.request_sent_ns is None:
        return None
    if network_stream.requests_sent == 1 and network_stream.connect_started_ns is not None:
        return network_stream.connect_started_ns
    return network_stream.request_sent_ns


def _expire(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_exception(TimeoutError())


async def _wait(loop: asyncio.AbstractEventLoop, fut: asyncio.Future[None], timeout: float | None) -> None:
    if timeout is None:
        await fut
        return
    handle = loop.call_later(timeout, _expire, fut)
    try:
        await fut
    finally:
        handle.cancel()


async def _park(p: _Protocol, slot: str, timeout: float | None) -> None:
    """Wait on a fresh future put in `p.<slot>` ("waiter": data, "drain_waiter": write room)
    until the protocol resolves it or `timeout` passes (TimeoutError); the slot is cleared after."""
    fut = p.loop.create_future()
    setattr(p, slot, fut)
    try:
        await _wait(p.loop, fut, timeout)
    finally:
        setattr(p, slot, None)


class AsyncioStream(httpcore.AsyncNetworkStream):
    """One connection (plain or TLS) as httpcore sees it.

    httpx hands it to callers as `response.extensions["network_stream"]` (HTTP/1.1)."""

    def __init__(self, transport: asyncio.Transport, protocol: _Protocol,
                 connect_started_ns: int | None = None) -> None:
        self._transport = transport
        self._protocol = protocol
        #: `time.perf_counter_ns()` when the bytes of the latest read reached this process.
        self.last_arrival_ns: int | None = None
        #: when the connect that opened this connection began
        self.connect_started_ns = connect_started_ns
        #: when the current request's first byte was written, and how many requests so far
        #: (HTTP/1.1, no pipelining: the first write after a read starts the next request)
        self.request_sent_ns: int | None = None
        self.requests_sent = 0
        self._between_requests = True
        self._received_at_request = 0
        #: this connection was opened to send again a request that a stale kept-alive one
        #: dropped unanswered (`stale_failure`); its first request is that one (`resent_stale`)
        self.opened_for_resend = False

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self._between_requests = True
        p = self._protocol
        if not p.size:
            if p.exc is not None:
                raise httpcore.ReadError(str(p.exc) or repr(p.exc)) from p.exc
            if p.eof:
                return b""
            try:
                await _park(p, "waiter", timeout)
            except TimeoutError as exc:
                raise httpcore.ReadTimeout(f"no data within {timeout} s") from exc
            if not p.size:
                if p.exc is not None:
                    raise httpcore.ReadError(str(p.exc) or repr(p.exc)) from p.exc
                return b""  # EOF
        data, self.last_arrival_ns = p.take(max_bytes)
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        if self._between_requests:
            self._between_requests = False
            self.requests_sent += 1
            self.request_sent_ns = time.perf_counter_ns()
            self._received_at_request = self._protocol.received
            _WRITTEN_ON.set(self)
        p = self._protocol
        if p.exc is not None or self._transport.is_closing():
            raise httpcore.WriteError("connection closed" if p.exc is None else repr(p.exc))
        try:
            self._transport.write(buffer)
        except (OSError, RuntimeError) as exc:
            raise httpcore.WriteError(repr(exc)) from exc
        if p.paused_writing:
            try:
                await _park(p, "drain_waiter", timeout)
            except TimeoutError as exc:
                raise httpcore.WriteTimeout(f"could not write within {timeout} s") from exc
            except OSError as exc:
                raise httpcore.WriteError(repr(exc)) from exc

    def stale_failure(self) -> bool:
        """True when the current request went out on a connection kept alive from an earlier
        request and nothing at all has come back since: the server closed it while it sat idle
        (a keep-alive timeout, or a server that closes after each response without saying
        `Connection: close`) and the FIN or reset crossed the request on the wire. Such an attempt
        is not a request the server answered any part of; the transports send it again, once, on
        a new connection (`workbench.measure.http11`, `async_transport`)."""
        return self.requests_sent > 1 and self._protocol.received == self._received_at_request

    async def aclose(self) -> None:
        self._transport.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = self._protocol.loop
        try:
            new = await loop.start_tls(self._transport, self._protocol, ssl_context,
                                       server_hostname=server_hostname, ssl_handshake_timeout=timeout)
        except TimeoutError as exc:
            self._transport.close()
            raise httpcore.ConnectTimeout(f"TLS handshake did not finish within {timeout} s") from exc
        except (OSError, ssl.SSLError, ConnectionError) as exc:
            self._transport.close()
            raise httpcore.ConnectError(str(exc) or repr(exc)) from exc
        if new is None:  # pragma: no cover - the connection closed during the handshake
            raise httpcore.ConnectError("connection closed during the TLS handshake")
        self._protocol.transport = new
        # Pieces now arrive decrypted, stamped alike; the handshake was part of the connect.
        return AsyncioStream(new, self._protocol, self.connect_started_ns)

    def get_extra_info(self, info: str) -> typing.Any:
        if info == "is_readable":
            # An idle keep-alive connection is "readable" when the server closed it or sent
            # something unasked; the loop has already moved any such bytes into the protocol.
            p = self._protocol
            return p.eof or p.exc is not None or p.size > 0 or self._transport.is_closing()
        if info == "ssl_object":
            return self._transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return self._transport.get_extra_info("sockname")
        if info == "server_addr":
            return self._transport.get_extra_info("peername")
        if info == "socket":
            return self._transport.get_extra_info("socket")
        return None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """Connects with `loop.create_connection` (TCP_NODELAY is asyncio's default)."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        local_addr = (local_address, 0) if local_address else None
        return await _connect(lambda p: loop.create_connection(p, host, port, local_addr=local_addr),
                              f"{host}:{port}", timeout, socket_options)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        return await _connect(lambda p: loop.create_unix_connection(p, path), path, timeout, socket_options)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


_Opener = typing.Callable[[typing.Callable[[], _Protocol]], typing.Awaitable[tuple[asyncio.BaseTransport, typing.Any]]]


async def _connect(
    open_: _Opener,
    where: str,
    timeout: float | None,
    socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None,
) -> AsyncioStream:
    """Open a connection with `open_` (a loop.create_* call) under one timeout, stamping its start."""
    protocol = _Protocol(asyncio.get_running_loop())
    started = time.perf_counter_ns()
    try:
        async with asyncio.timeout(timeout):
            transport, _ = await open_(lambda: protocol)
    except TimeoutError as exc:
        raise httpcore.ConnectTimeout(f"cannot connect to {where} within {timeout} s") from exc
    except OSError as exc:
        raise httpcore.ConnectError(str(exc) or repr(exc)) from exc
    stream = typing.cast(asyncio.Transport, transport)
    _set_options(stream, socket_options)
    return AsyncioStream(stream, protocol, started)


def _set_options(transport: asyncio.Transport,
                 options: typing.Iterable[httpcore.SOCKET_OPTION] | None) -> None:
    sock: socket.socket | None = transport.get_extra_info("socket")
    if sock is None:
        return
    for option in options or ():
        sock.setsockopt(*option)


class _ResendStaleStream:
    """The body of a response read on a one-off connection (`_Pool`): closing it closes that
    connection."""

    def __init__(self, stream: typing.AsyncIterable[bytes], connection: httpcore.AsyncConnectionInterface) -> None:
        self._stream = stream
        self._connection = connection

    async def __aiter__(self) -> typing.AsyncIterator[bytes]:
        async for part in self._stream:
            yield part

    async def aclose(self) -> None:
        try:
            close = getattr(self._stream, "aclose", None)
            if close is not None:
                await close()
        finally:
            await self._connection.aclose()


class _Pool(httpcore.AsyncConnectionPool):
    """httpcore's pool, plus what it does not do: a request that went out on a kept-alive
    connection the server had already closed (`AsyncioStream.stale_failure`: nothing came back)
    is sent again, once, on a new connection of its own — closed with its response, outside the
    pool's count, which lost the stale one. httpcore raises "Server disconnected without sending
    a response" there instead. A request whose body cannot be replayed is not resent."""

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        token = _WRITTEN_ON.set(None)
        try:
            return await super().handle_async_request(request)
        except (httpcore.RemoteProtocolError, httpcore.ReadError, httpcore.WriteError):
            stream = _WRITTEN_ON.get()
            if stream is None or not stream.stale_failure() or not isinstance(
                    request.stream, httpx.ByteStream):
                raise
        finally:
            _WRITTEN_ON.reset(token)
        connection = self.create_connection(request.url.origin)
        try:
            response = await connection.handle_async_request(request)
        except BaseException:
            await connection.aclose()
            raise
        network_stream = response.extensions.get("network_stream")
        if isinstance(network_stream, AsyncioStream):
            network_stream.opened_for_resend = True
        assert isinstance(response.stream, typing.AsyncIterable)
        return httpcore.Response(status=response.status, headers=response.headers,
                                 content=_ResendStaleStream(response.stream, connection),
                                 extensions=response.extensions)


def resent_stale(network_stream: object) -> bool:
    """True when the request just answered on `network_stream` had first gone out on a stale
    kept-alive connection and was sent again on this new one (`AsyncioStream.stale_failure`)."""
    return (isinstance(network_stream, AsyncioStream) and network_stream.opened_for_resend
            and network_stream.requests_sent == 1)


def async_transport(
    limits: httpx.Limits, *, http2: bool = False, ssl_context: ssl.SSLContext | None = None
) -> httpx.AsyncHTTPTransport:
    """httpx's own transport (request/response mapping, exception mapping) over a connection
    pool that uses `AsyncioBackend` and the shared TLS context (or `ssl_context`) and sends a
    request a stale kept-alive connection dropped again on a new one (`_Pool`); no proxies, no
    environment."""
    ctx = ssl_context or shared_ssl_context()
    transport = httpx.AsyncHTTPTransport(verify=ctx, limits=limits, http2=http2, trust_env=False)
    transport._pool = _Pool(
        ssl_context=ctx,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        http1=True,
        http2=http2,
        network_backend=AsyncioBackend(),
    )
    return transport
