"""A lean HTTP/1.1 transport for httpx: the load generator's request path.

httpx's default transport goes httpx → httpcore (pool, locks, per-request state machine) → h11
(a general, pure-Python HTTP/1.1 parser): measured at ~2.6 ms of client CPU per streamed request
against the synthetic server, which caps one client process at ~350 requests/s on one core and
makes a closed loop of 512 workers on 700 ms requests (730 requests/s) lag by hundreds of ms —
the generator, not the server, would set the numbers (see bench/README.md).

This transport keeps everything above the transport — `httpx.AsyncClient`, `httpx.Request`
and `httpx.Response`, content decoding, timeouts' meaning, httpx's exception types — and
replaces httpcore + h11 with the little a client of JSON/SSE APIs needs: one request at a time
per connection (no pipelining), keep-alive, `content-length` / `chunked` / close-delimited
bodies, interim 1xx responses skipped, TLS through `workbench.measure.netbackend` (the same connections
and arrival/send stamps the probe times with). Anything it does not understand — a malformed
status line or header, a bad chunk size, a body that ends early — is an
`httpx.RemoteProtocolError` (the probe records `protocol`), never a guess.

`LeanClient` is an `httpx.AsyncClient` whose `send` hands requests straight to this transport
(no auth flow, no redirects — the probe follows none — no event hooks) and whose reads carry no
per-read timer: the probe bounds each whole request with one deadline, which bounds every read
too, and a timer per chunk was ~8% of the client's CPU. `workbench.measure.probe.make_client(...,
lean=True)` builds one; the load runs use it.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import AsyncIterator

import httpcore
import httpx

from workbench.measure.netbackend import AsyncioBackend, AsyncioStream, shared_ssl_context

__all__ = ["MAX_HEAD_BYTES", "Http11Transport", "LeanClient"]

#: A response head (status line + headers) longer than this is refused as a protocol error.
MAX_HEAD_BYTES = 64 * 1024
_READ = 64 * 1024
_DEFAULT_PORT = {b"http": 80, b"https": 443}

_MAP: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
)


def _mapped(exc: Exception, request: httpx.Request) -> Exception:
    for theirs, ours in _MAP:
        if isinstance(exc, theirs):
            return ours(str(exc), request=request)
    return exc


class _Conn:
    """One connection and what is left over from its last read."""

    __slots__ = ("idle_since", "key", "stream")

    def __init__(self, key: tuple[bytes, bytes, int], stream: AsyncioStream) -> None:
        self.key = key
        self.stream = stream
        self.idle_since = 0.0

    def reusable(self) -> bool:
        return not self.stream.get_extra_info("is_readable")


class Http11Transport(httpx.AsyncBaseTransport):
    """HTTP/1.1 over `workbench.measure.netbackend` connections, kept alive per (scheme, host, port).

    There is no connection cap: a request that finds no idle connection opens one (the load
    generator sizes its clients to its concurrency, so a cap would only hide a wait inside the
    measured latency)."""

    def __init__(self, *, ssl_context: ssl.SSLContext | None = None, keepalive_expiry: float = 30.0,
                 max_idle: int = 1024, read_timeouts: bool = True) -> None:
        self._ssl = ssl_context
        self._read_timeouts = read_timeouts
        self._expiry = keepalive_expiry
        self._max_idle = max_idle
        self._idle: dict[tuple[bytes, bytes, int], list[_Conn]] = {}
        self._n_idle = 0
        self._open: set[_Conn] = set()
        self._backend = AsyncioBackend()
        self._closed = False

    # -- connections -------------------------------------------------------------------------
    def _take_idle(self, key: tuple[bytes, bytes, int]) -> _Conn | None:
        pool = self._idle.get(key)
        now = time.monotonic()
        while pool:
            conn = pool.pop()
            self._n_idle -= 1
            if conn.reusable() and now - conn.idle_since < self._expiry:
                return conn
            self._discard(conn)
        return None

    async def _connect(self, key: tuple[bytes, bytes, int], request: httpx.Request,
                       timeout: float | None) -> _Conn:
        scheme, host, port = key
        try:
            stream = await self._backend.connect_tcp(host.decode("ascii"), port, timeout=timeout)
            if scheme == b"https":
                ctx = self._ssl or shared_ssl_context()
                try:
                    tls = await stream.start_tls(ctx, server_hostname=host.decode("ascii"), timeout=timeout)
                except BaseException:  # cancelled mid-handshake included: never leak the socket
                    await stream.aclose()
                    raise
                assert isinstance(tls, AsyncioStream)
                stream = tls
        except (httpcore.NetworkError, httpcore.TimeoutException) as exc:
            raise _mapped(exc, request) from exc
        assert isinstance(stream, AsyncioStream)
        conn = _Conn(key, stream)
        self._open.add(conn)
        return conn

    def _release(self, conn: _Conn, keep: bool) -> None:
        if keep and not self._closed and self._n_idle < self._max_idle and conn.reusable():
            conn.idle_since = time.monotonic()
            self._idle.setdefault(conn.key, []).append(conn)
            self._n_idle += 1
        else:
            self._discard(conn)

    def _discard(self, conn: _Conn) -> None:
        self._open.discard(conn)
        conn.stream._transport.close()

    # -- one request -------------------------------------------------------------------------
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed:
            raise RuntimeError("this transport (or its client) is closed")
        url = request.url
        scheme = url.raw_scheme
        if scheme not in _DEFAULT_PORT:
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {url.scheme!r}", request=request)
        key = (scheme, url.raw_host, url.port or _DEFAULT_PORT[scheme])
        timeouts = request.extensions.get("timeout", {})
        read_timeout = timeouts.get("read") if self._read_timeouts else None
        body = await request.aread()
        head = [request.method.encode("ascii"), b" ", url.raw_path, b" HTTP/1.1\r\n"]
        for name, value in request.headers.raw:
            head += [name, b": ", value, b"\r\n"]
        head.append(b"\r\n")
        payload = b"".join(head) + body
        conn = self._take_idle(key) or await self._connect(key, request, timeouts.get("connect"))
        stream = conn.stream
        try:
            await stream.write(payload, timeouts.get("write"))
            status, reason, headers, rest = await _read_head(stream, read_timeout)
        except (httpcore.NetworkError, httpcore.TimeoutException) as exc:
            self._discard(conn)
            raise _mapped(exc, request) from exc
        except BaseException:  # a protocol error, or cancelled mid-request: never reuse it
            self._discard(conn)
            raise
        keep_alive = True
        chunked = False
        length: int | None = None
        for name, value in headers:
            lname = name.lower()
            if lname == b"connection":
                keep_alive = b"close" not in value.lower()
            elif lname == b"transfer-encoding":
                chunked = value.strip().lower().endswith(b"chunked")
            elif lname == b"content-length":
                try:
                    length = int(value.strip())
                except ValueError:
                    self._discard(conn)
                    raise httpx.RemoteProtocolError(f"bad content-length {value!r}", request=request) from None
        if request.method == "HEAD" or status in (204, 304):
            rest, length, chunked = b"", None, False  # no body at all
        elif chunked:
            length = None
        elif length is None:
            length, keep_alive = -1, False  # the body ends when the server closes
        body_iter = _Body(self, conn, request, rest, length, chunked, keep_alive, read_timeout)
        return httpx.Response(
            status, headers=headers, stream=body_iter,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason, "network_stream": stream},
        )

    async def aclose(self) -> None:
        self._closed = True
        for conn in list(self._open):
            self._discard(conn)
        self._idle.clear()
        self._n_idle = 0


async def _read_head(stream: AsyncioStream, timeout: float | None
                     ) -> tuple[int, bytes, list[tuple[bytes, bytes]], bytes]:
    """(status, reason, headers, bytes after the head); interim 1xx responses are skipped."""
    buf = b""
    while True:
        end = buf.find(b"\r\n\r\n")
        while end < 0:
            if len(buf) > MAX_HEAD_BYTES:
                raise httpx.RemoteProtocolError(f"response head longer than {MAX_HEAD_BYTES} bytes")
            data = await stream.read(_READ, timeout)
            if not data:
                raise httpx.RemoteProtocolError(
                    "server closed the connection without sending a complete response head")
            buf += data
            end = buf.find(b"\r\n\r\n")
        if end > MAX_HEAD_BYTES:
            raise httpx.RemoteProtocolError(f"response head longer than {MAX_HEAD_BYTES} bytes")
        lines = buf[:end].split(b"\r\n")
        buf = buf[end + 4:]
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit() or len(parts[1]) != 3:
            raise httpx.RemoteProtocolError(f"malformed status line {lines[0][:100]!r}")
        status = int(parts[1])
        headers: list[tuple[bytes, bytes]] = []
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep or not name or name != name.strip():
                raise httpx.RemoteProtocolError(f"malformed header line {line[:100]!r}")
            headers.append((name, value.strip()))
        if 100 <= status < 200 and status != 101:
            continue  # 100 Continue, 103 Early Hints: the real answer follows
        return status, parts[2] if len(parts) > 2 else b"", headers, buf


class _Body(httpx.AsyncByteStream):
    """A response body, yielded once per network read (so each piece keeps its arrival stamp).

    `length`: bytes expected (content-length), -1 = until the server closes, None with
    `chunked` = chunked framing. The connection goes back to the pool only when the body was
    read to its exact end and the server allowed keep-alive."""

    def __init__(self, transport: Http11Transport, conn: _Conn, request: httpx.Request, rest: bytes,
                 length: int | None, chunked: bool, keep_alive: bool, timeout: float | None) -> None:
        self.transport = transport
        self.conn = conn
        self.request = request
        self.rest = rest
        self.length = length
        self.chunked = chunked
        self.keep_alive = keep_alive
        self.timeout = timeout
        self.done = length is None and not chunked  # no body at all
        self.released = False

    async def _read(self) -> bytes:
        try:
            return await self.conn.stream.read(_READ, self.timeout)
        except (httpcore.NetworkError, httpcore.TimeoutException) as exc:
            raise _mapped(exc, self.request) from exc

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self.done:
            pass
        elif self.chunked:
            async for piece in self._chunked():
                yield piece
        elif self.length is not None and self.length >= 0:
            left = self.length
            data, self.rest = self.rest, b""
            while True:
                if len(data) > left:
                    data = data[:left]  # bytes past the body: not ours; the connection is not reused
                    self.keep_alive = False
                left -= len(data)
                if data:
                    yield data
                if left == 0:
                    break
                data = await self._read()
                if not data:
                    raise httpx.RemoteProtocolError(
                        f"server closed the connection {left} bytes before the end of the body",
                        request=self.request)
        else:
            data, self.rest = self.rest, b""
            while True:
                if data:
                    yield data
                data = await self._read()
                if not data:
                    break
        self.done = True
        await self.aclose()

    async def _chunked(self) -> AsyncIterator[bytes]:
        buf, self.rest = self.rest, b""
        pos = 0
        need = -1  # bytes of chunk data still due; -1 = a size line is next
        while True:
            out: list[bytes] = []
            while True:
                if need > 0:
                    take = buf[pos:pos + need]
                    if take:
                        out.append(take)
                        need -= len(take)
                        pos += len(take)
                    if need > 0:
                        break
                    need = -2  # the CRLF after the data
                if need == -2:
                    if len(buf) - pos < 2:
                        break
                    if buf[pos:pos + 2] != b"\r\n":
                        raise httpx.RemoteProtocolError("chunk data not followed by CRLF", request=self.request)
                    pos += 2
                    need = -1
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    if len(buf) - pos > 1024:
                        raise httpx.RemoteProtocolError("chunk size line too long", request=self.request)
                    break
                size_text = buf[pos:eol].split(b";", 1)[0].strip()
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise httpx.RemoteProtocolError(f"bad chunk size {size_text[:40]!r}",
                                                    request=self.request) from None
                pos = eol + 2
                if size == 0:
                    if out:
                        yield b"".join(out)
                    await self._trailers(buf[pos:])
                    return
                need = size
            if out:
                yield b"".join(out) if len(out) > 1 else out[0]
            buf = buf[pos:]
            pos = 0
            data = await self._read()
            if not data:
                raise httpx.RemoteProtocolError("server closed the connection inside a chunked body",
                                                request=self.request)
            buf += data

    async def _trailers(self, buf: bytes) -> None:
        """Skip trailer fields up to the empty line that ends a chunked body."""
        while True:
            if buf.startswith(b"\r\n"):
                if len(buf) > 2:
                    self.keep_alive = False  # bytes beyond the response: do not reuse
                return
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                if len(buf) > end + 4:
                    self.keep_alive = False
                return
            if len(buf) > MAX_HEAD_BYTES:
                raise httpx.RemoteProtocolError("trailers too long", request=self.request)
            data = await self._read()
            if not data:
                raise httpx.RemoteProtocolError("server closed the connection inside the trailers",
                                                request=self.request)
            buf += data

    async def aclose(self) -> None:
        if not self.released:
            self.released = True
            self.transport._release(self.conn, self.keep_alive and self.done)


class LeanClient(httpx.AsyncClient):
    """`httpx.AsyncClient` on `Http11Transport`, with `send` going straight to the transport.

    What httpx's `send` adds around the transport — the auth flow, redirect handling, event
    hooks, the elapsed-time wrapper — is nothing the probe uses, and it was ~15% of the
    client's CPU per request. Asking for auth or redirects here is an error, not ignored."""

    def __init__(self, *, timeout_s: float, max_idle: int, keepalive_expiry: float = 30.0) -> None:
        self._lean = Http11Transport(keepalive_expiry=keepalive_expiry, max_idle=max_idle, read_timeouts=False)
        super().__init__(transport=self._lean, timeout=httpx.Timeout(timeout_s), trust_env=False)

    async def send(
        self,
        request: httpx.Request,
        *,
        stream: bool = False,
        auth: httpx._types.AuthTypes | httpx._client.UseClientDefault | None = httpx.USE_CLIENT_DEFAULT,
        follow_redirects: bool | httpx._client.UseClientDefault = httpx.USE_CLIENT_DEFAULT,
    ) -> httpx.Response:
        if auth is not httpx.USE_CLIENT_DEFAULT and auth is not None:
            raise ValueError("LeanClient sends no auth flow: put credentials in the request headers")
        if follow_redirects is True:
            raise ValueError("LeanClient follows no redirects")
        response = await self._lean.handle_async_request(request)
        response.request = request
        self.cookies.extract_cookies(response)
        if not stream:
            try:
                await response.aread()
            except BaseException:
                await response.aclose()
                raise
        return response
