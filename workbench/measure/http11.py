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
and arrival/send stamps the probe times with). Responses are parsed by llhttp (Node.js's
HTTP parser, in C) through `httptools` — what uvicorn uses — fed each network read as it
arrives; what is hand-written here is only what llhttp leaves to its caller: the connection
pool, the end of a close-delimited body, the head-size limit, skipping interim responses, and
turning llhttp's errors into httpx's. Anything malformed — a bad status line or header, a bad
chunk size, a body that ends early — is an `httpx.RemoteProtocolError` (the probe records
`protocol`), never a guess.

`LeanClient` is an `httpx.AsyncClient` whose `send` hands requests straight to this transport
(no auth flow, no redirects — the probe follows none — no event hooks) and whose reads carry no
per-read timer: the probe bounds each whole request with one deadline, which bounds every read
too, and a timer per chunk was ~8% of the client's CPU. `workbench.measure.probe.make_client(...,
lean=True)` builds one; the load runs use it.

The load path goes one step lower: `LeanClient.prepare` + `send_raw` send a JSON request as
bytes and return a `RawResponse` (status, raw headers, the body by network read) without an
`httpx.Request` or `httpx.Response` per request — building those was ~40% of the client's CPU
per request, and halved the requests one core can send (null server, c=64: 5,250 → ~10,000–11,000
requests/s; bench/README.md). The head is still httpx's, built by `build_request` once per
endpoint and header set, so the wire is byte for byte what `send` writes (tests/measure/
test_http11.py), cookies included; anything that is not a JSON POST takes `send`.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import AsyncIterator, Mapping

import httpcore
import httptools
import httpx

from workbench.measure.netbackend import AsyncioBackend, AsyncioStream, shared_ssl_context

__all__ = ["COOKIE_REFRESH_S", "MAX_HEAD_BYTES", "Http11Transport", "LeanClient", "RawRequest", "RawResponse"]

#: A response head (status line + headers) longer than this is refused as a protocol error.
MAX_HEAD_BYTES = 64 * 1024
_READ = 64 * 1024
_DEFAULT_PORT = {b"http": 80, b"https": 443}
#: Request heads a client keeps (one per method, URL and header set; cleared when full).
_MAX_HEADS = 256
#: While a client holds cookies, its kept request heads are rebuilt this often (seconds), so a
#: cookie that expired stops going out.
COOKIE_REFRESH_S = 1.0

_MAP: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
)


def _mapped(exc: Exception, request: httpx.Request | None) -> Exception:
    for theirs, ours in _MAP:
        if isinstance(exc, theirs):
            return ours(str(exc), request=request)
    return exc


def _conn_key(url: httpx.URL, request: httpx.Request | None) -> tuple[bytes, bytes, int]:
    """(scheme, host, port): the connections a request to `url` may share."""
    scheme = url.raw_scheme
    if scheme not in _DEFAULT_PORT:
        raise httpx.UnsupportedProtocol(f"unsupported URL scheme {url.scheme!r}", request=request)
    return scheme, url.raw_host, url.port or _DEFAULT_PORT[scheme]


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

    async def _connect(self, key: tuple[bytes, bytes, int], request: httpx.Request | None,
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
        key = _conn_key(request.url, request)
        timeouts = request.extensions.get("timeout", {})
        body = await request.aread()
        head = [request.method.encode("ascii"), b" ", request.url.raw_path, b" HTTP/1.1\r\n"]
        for name, value in request.headers.raw:
            head += [name, b": ", value, b"\r\n"]
        head.append(b"\r\n")
        raw = await self.exchange(key, b"".join(head) + body, timeouts, request, head_only=request.method == "HEAD")
        return httpx.Response(
            raw.status_code, headers=raw.raw_headers, stream=raw.body,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": raw.reason, "network_stream": raw.stream},
        )

    async def exchange(self, key: tuple[bytes, bytes, int], payload: bytes, timeouts: dict[str, float | None],
                       request: httpx.Request | None, *, head_only: bool = False) -> RawResponse:
        """Write one whole request (`payload`: head and body) on a kept-alive or new connection to
        `key` and read the response head; the body follows through the returned response.
        `timeouts` has httpx's keys (connect, write, read).

        A request written on a kept-alive connection that the server had closed while it was idle
        (`AsyncioStream.stale_failure`: it failed before a single byte came back) is written
        again, once, on a new connection — what a mature client does for an idle-close race; the
        answer's network stream says so (`workbench.measure.netbackend.resent_stale`)."""
        if self._closed:
            raise RuntimeError("this transport (or its client) is closed")
        read_timeout = timeouts.get("read") if self._read_timeouts else None
        conn = self._take_idle(key)
        if conn is None:
            conn = await self._connect(key, request, timeouts.get("connect"))
            parse = await self._send(conn, payload, timeouts, read_timeout, request)
        else:
            try:
                parse = await self._send(conn, payload, timeouts, read_timeout, request)
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
                if not conn.stream.stale_failure():
                    raise
                # Closed by the server while it sat idle: nothing of this request was answered.
                # Sent again, once, on a new connection (whose connect starts its clock).
                conn = await self._connect(key, request, timeouts.get("connect"))
                conn.stream.opened_for_resend = True
                parse = await self._send(conn, payload, timeouts, read_timeout, request)
        if head_only:
            parse.body_ends_at_head()  # llhttp cannot know there is no body
        return RawResponse(parse, _Body(self, conn, parse, read_timeout), conn.stream)

    async def _send(self, conn: _Conn, payload: bytes, timeouts: dict[str, float | None], read_timeout: float | None,
                    request: httpx.Request | None) -> _Parse:
        """Write `payload` on `conn` and parse the response head; on any failure the connection
        is dropped and the error raised as httpx's."""
        stream = conn.stream
        parse = _Parse(request)
        try:
            await stream.write(payload, timeouts.get("write"))
            fed = 0
            while not parse.head_done:
                data = await stream.read(_READ, read_timeout)
                if not data:
                    raise httpx.RemoteProtocolError(
                        "server closed the connection without sending a complete response head", request=request)
                fed += len(data)
                parse.feed(data)
                if not parse.head_done and fed > MAX_HEAD_BYTES:
                    raise httpx.RemoteProtocolError(f"response head longer than {MAX_HEAD_BYTES} bytes",
                                                    request=request)
        except (httpcore.NetworkError, httpcore.TimeoutException) as exc:
            self._discard(conn)
            parse.close()
            raise _mapped(exc, request) from exc
        except BaseException:  # a protocol error, or cancelled mid-request: never reuse it
            self._discard(conn)
            parse.close()
            raise
        return parse

    async def aclose(self) -> None:
        self._closed = True
        for conn in list(self._open):
            self._discard(conn)
        self._idle.clear()
        self._n_idle = 0


class _Parse:
    """llhttp's callbacks for one response (`httptools.HttpResponseParser`): the head, then the
    body pieces each network read completes. Interim 1xx responses are skipped, trailers
    ignored, and anything after the end of the response only marks the connection unusable."""

    __slots__ = ("body_left", "chunked", "complete", "extra", "head_done", "head_len", "headers", "keep_alive",
                 "parser", "pieces", "reason", "request", "status")

    def __init__(self, request: httpx.Request | None) -> None:
        self.request = request
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_len = 0
        self.head_done = False
        self.complete = False
        self.extra = False  # bytes past the end of the response: not ours, do not reuse
        self.keep_alive = False
        self.chunked = False
        self.body_left: int | None = None  # content-length bytes still due (None: not length-framed)
        self.pieces: list[bytes] = []

    # -- llhttp callbacks ----------------------------------------------------------------------
    def on_message_begin(self) -> None:
        if self.complete or self.head_done:
            self.extra = True
        else:  # the first response, or the one after an interim 1xx
            self.reason, self.headers, self.head_len = b"", [], 0

    def on_status(self, reason: bytes) -> None:
        self.reason += reason  # llhttp may deliver it in pieces

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.head_done:
            return  # a trailer field
        self.head_len += len(name) + len(value) + 4
        if self.head_len > MAX_HEAD_BYTES:
            raise httpx.RemoteProtocolError(f"response head longer than {MAX_HEAD_BYTES} bytes", request=self.request)
        self.headers.append((name, value.strip()))

    def on_headers_complete(self) -> None:
        if self.head_done:
            return
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            return  # 100 Continue, 103 Early Hints: the real answer follows
        self.status, self.head_done = status, True
        for name, value in self.headers:
            lname = name.lower()
            if lname == b"transfer-encoding":
                self.chunked = value.lower().endswith(b"chunked")
            elif lname == b"content-length":
                self.body_left = int(value)  # llhttp has checked it is digits
        if self.chunked:
            self.body_left = None

    def on_body(self, body: bytes) -> None:
        if not self.complete:
            self.pieces.append(body)
            if self.body_left is not None:
                self.body_left -= len(body)

    def on_message_complete(self) -> None:
        if self.head_done and not self.complete:
            self.complete = True
            self.keep_alive = self.parser.should_keep_alive()

    # -- the transport's side ------------------------------------------------------------------
    def close(self) -> None:
        """Drop the parser. It holds these callbacks and they hold it: a reference cycle that only
        the cyclic collector frees — which a load run holds off (`workbench.measure.load.monitor`),
        so without this every response would stay in memory until the run ends (~13 objects each)."""
        del self.parser

    def feed(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, httpx.RemoteProtocolError):
                raise exc.__context__ from None
            raise self._error(exc) from exc
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            if self.complete:
                self.extra = True  # garbage after a complete response: ours is intact
                return
            raise self._error(exc) from exc

    def _error(self, exc: Exception) -> httpx.RemoteProtocolError:
        reason = str(exc)
        if isinstance(exc, httptools.HttpParserUpgrade):
            what = "protocol upgrade (101) is not supported"
        elif not self.reason and not self.headers and not self.head_done:
            what = f"malformed status line ({reason})"
        elif "Content-Length" in reason:
            what = f"bad content-length ({reason})"
        elif not self.head_done:
            what = f"malformed header line ({reason})"
        elif "chunk size" in reason:
            what = f"bad chunk size ({reason})"
        elif "after chunk data" in reason:
            what = f"chunk data not followed by CRLF ({reason})"
        else:
            what = f"malformed response body ({reason})"
        return httpx.RemoteProtocolError(what, request=self.request)

    def body_ends_at_head(self) -> None:
        """A response with no body whatever its head says (HEAD): done, and the connection is not
        reused (where llhttp stopped reading in it is not known)."""
        self.pieces.clear()
        self.complete, self.keep_alive = True, False

    def take(self) -> bytes:
        """The body bytes parsed since the last take."""
        pieces, self.pieces = self.pieces, []
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def eof_error(self) -> httpx.RemoteProtocolError | None:
        """None when the end of the connection ends the body (close-delimited), else what it cut."""
        if self.body_left is not None:
            return httpx.RemoteProtocolError(
                f"server closed the connection {self.body_left} bytes before the end of the body", request=self.request)
        if self.chunked:
            return httpx.RemoteProtocolError("server closed the connection inside a chunked body", request=self.request)
        return None


class _Body(httpx.AsyncByteStream):
    """A response body, yielded once per network read (so each piece keeps its arrival stamp).

    The connection goes back to the pool only when the body was read to its exact end and the
    server allowed keep-alive."""

    def __init__(self, transport: Http11Transport, conn: _Conn, parse: _Parse, timeout: float | None) -> None:
        self.transport = transport
        self.conn = conn
        self.parse = parse
        self.timeout = timeout
        self.released = False

    async def _read(self) -> bytes:
        try:
            return await self.conn.stream.read(_READ, self.timeout)
        except (httpcore.NetworkError, httpcore.TimeoutException) as exc:
            raise _mapped(exc, self.parse.request) from exc

    async def __aiter__(self) -> AsyncIterator[bytes]:
        parse = self.parse
        while True:
            data = parse.take()
            if data:
                yield data
            if parse.complete:
                break
            data = await self._read()
            if not data:
                err = parse.eof_error()
                if err is not None:
                    raise err
                break  # close-delimited: the end of the connection is the end of the body
            parse.feed(data)
        await self.aclose()

    async def aclose(self) -> None:
        if not self.released:
            self.released = True
            parse = self.parse
            parse.close()
            self.transport._release(self.conn, parse.complete and parse.keep_alive and not parse.extra)


class RawResponse:
    """A response as this transport read it: what the probe needs of an `httpx.Response` (status,
    headers, the network stream, the body by network read, close) without building one.

    `headers` is an `httpx.Headers` made on first use (an error's classification, the rate-limit
    headers); `aiter_bytes` undoes a content-encoding through `httpx.Response`'s own decoders,
    made only when the response is encoded."""

    __slots__ = ("_headers", "body", "raw_headers", "reason", "status_code", "stream")

    def __init__(self, parse: _Parse, body: _Body, stream: AsyncioStream) -> None:
        self.status_code = parse.status
        self.reason = parse.reason
        self.raw_headers = parse.headers
        self.body = body
        self.stream = stream
        self._headers: httpx.Headers | None = None

    @property
    def headers(self) -> httpx.Headers:
        if self._headers is None:
            self._headers = httpx.Headers(self.raw_headers)
        return self._headers

    @property
    def extensions(self) -> dict[str, object]:
        return {"network_stream": self.stream}

    def header(self, name: bytes) -> bytes | None:
        """The first value of header `name` (lower-case bytes), without building `headers`."""
        for key, value in self.raw_headers:
            if key.lower() == name:
                return value
        return None

    def header_items(self) -> list[tuple[str, str]]:
        """Every (name, value), decoded as Latin-1 (what HTTP allows in a field), in wire order."""
        return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in self.raw_headers]

    def aiter_raw(self) -> AsyncIterator[bytes]:
        """The body as it arrived, one piece per network read (transfer framing removed)."""
        return self.body.__aiter__()

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        """The body with any content-encoding undone."""
        encoding = self.header(b"content-encoding")
        if encoding is None or encoding.strip().lower() == b"identity":
            return self.body.__aiter__()
        return httpx.Response(self.status_code, headers=self.raw_headers, stream=self.body).aiter_bytes()

    async def aclose(self) -> None:
        await self.body.aclose()


class RawRequest:
    """A request ready for `LeanClient.send_raw`: where it goes and every byte it sends."""

    __slots__ = ("key", "method", "payload", "url")

    def __init__(self, method: str, url: str, key: tuple[bytes, bytes, int], payload: bytes) -> None:
        self.method = method
        self.url = url
        self.key = key
        self.payload = payload


class LeanClient(httpx.AsyncClient):
    """`httpx.AsyncClient` on `Http11Transport`, with `send` going straight to the transport.

    What httpx's `send` adds around the transport — the auth flow, redirect handling, event
    hooks, the elapsed-time wrapper — is nothing the probe uses, and it was ~15% of the
    client's CPU per request. Asking for auth or redirects here is an error, not ignored."""

    def __init__(self, *, timeout_s: float, max_idle: int, keepalive_expiry: float = 30.0) -> None:
        self._lean = Http11Transport(keepalive_expiry=keepalive_expiry, max_idle=max_idle, read_timeouts=False)
        super().__init__(transport=self._lean, timeout=httpx.Timeout(timeout_s), trust_env=False)
        self._timeouts: dict[str, float | None] = self.timeout.as_dict()
        self._heads: dict[tuple[str, str, tuple[tuple[str, str], ...]],
                          tuple[tuple[bytes, bytes, int], bytes, bytes]] = {}
        self._heads_built = time.monotonic()  # when the kept heads last read the cookie jar

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
        if "set-cookie" in response.headers:
            self.cookies.extract_cookies(response)
            self._heads.clear()  # the next heads carry the new cookies
        if not stream:
            try:
                await response.aread()
            except BaseException:
                await response.aclose()
                raise
        return response

    # -- the load path: requests as bytes ------------------------------------------------------
    def prepare(self, method: str, url: str, headers: Mapping[str, str], content: bytes) -> RawRequest:
        """A JSON request to `url` with body `content`, as the bytes `build_request(method, url,
        headers=headers, content=content)` + `send` would write with a JSON content type.

        The head is httpx's own (default headers, Host, the cookies this client holds for `url`,
        their order and spelling), built by `build_request` once per (method, url, headers) and
        kept; each request adds only its Content-Length and body. Building an `httpx.Request` and
        `httpx.Response` per request was ~40% of the load path's client CPU (cProfile, null
        server, c=64). Kept heads are rebuilt when a response sets a cookie and, while the jar
        holds any, every `COOKIE_REFRESH_S` (so an expired cookie stops going out within that)."""
        if self.cookies and time.monotonic() - self._heads_built >= COOKIE_REFRESH_S:
            self._heads.clear()
        cache_key = (method, url, tuple(headers.items()))
        head = self._heads.get(cache_key)
        if head is None:
            if not self._heads:
                self._heads_built = time.monotonic()
            head = self._head(method, url, headers)
            if len(self._heads) >= _MAX_HEADS:
                self._heads.clear()
            self._heads[cache_key] = head
        key, prefix, tail = head
        return RawRequest(method, url, key, b"".join((prefix, str(len(content)).encode("ascii"), tail, content)))

    def _head(self, method: str, url: str, headers: Mapping[str, str]) -> tuple[tuple[bytes, bytes, int], bytes, bytes]:
        """(connection key, the head up to the Content-Length value, the rest of the head)."""
        request = self.build_request(method, url, headers=headers, json={})
        before = [method.encode("ascii"), b" ", request.url.raw_path, b" HTTP/1.1\r\n"]
        after: list[bytes] = []
        for name, value in request.headers.raw:
            if not after and name.lower() == b"content-length":
                before += [name, b": "]
                after.append(b"\r\n")
            else:
                (after if after else before).extend((name, b": ", value, b"\r\n"))
        after.append(b"\r\n")
        return _conn_key(request.url, request), b"".join(before), b"".join(after)

    async def send_raw(self, request: RawRequest) -> RawResponse:
        """Send a prepared request; the response's body is read through the returned object
        (close it). Cookies the response sets are kept, as `send` keeps them."""
        raw = await self._lean.exchange(request.key, request.payload, self._timeouts, None)
        if raw.header(b"set-cookie") is not None:
            response = httpx.Response(raw.status_code, headers=raw.raw_headers,
                                      request=self.build_request(request.method, request.url))
            self.cookies.extract_cookies(response)
            self._heads.clear()  # the next heads carry the new cookies
        return raw
