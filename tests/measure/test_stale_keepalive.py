"""A kept-alive connection the server closed while idle: sent again once on a new connection,
by both transports, for every contender — and only then.

llama-server (and any server with a keep-alive timeout) closes an idle connection without saying
`Connection: close`; a client that writes its next request on it before the FIN arrives gets
"server closed the connection without sending a complete response head" (44 of 98 requests of a
concurrency sweep against a plain llama-server endpoint). The servers here make that race certain:
they read the request that comes on a used connection and close without a byte.
"""

from __future__ import annotations

import asyncio

import pytest

from workbench.config import load_contenders
from workbench.measure.probe import make_client, probe
from workbench.measure.target import Target
from workbench.types import Prompt, Record

pytestmark = pytest.mark.timeout(30)

_BODY = (b'{"choices":[{"message":{"content":"hi"},"finish_reason":"stop"}],'
         b'"usage":{"prompt_tokens":3,"completion_tokens":1}}')
_ANSWER = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(_BODY), _BODY)
_SSE = (b'data: {"choices":[{"delta":{"content":"hi"},"finish_reason":null}]}\n\n'
        b'data: {"choices":[{"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1}}\n\n'
        b"data: [DONE]\n\n")
_STREAM_ANSWER = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: %d\r\n\r\n%s"
                  % (len(_SSE), _SSE))


class _Server:
    """Answers the first `answered` requests of each connection with `answer`; on the next one it
    reads the request, writes `then` (nothing by default) and closes."""

    def __init__(self, answer: bytes, *, answered: int = 1, then: bytes = b"") -> None:
        self.answer, self.answered, self.then = answer, answered, then
        self.received = 0  # requests read, answered or not
        self.connections = 0

    async def handler(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        served = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                await reader.readexactly(length)
                self.received += 1
                if served == self.answered:
                    writer.write(self.then)
                    await writer.drain()
                    break
                writer.write(self.answer)
                await writer.drain()
                served += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def _probe_n(server: _Server, n: int, *, lean: bool, stream: bool = False) -> list[Record]:
    contender = load_contenders().get("qwen2.5-coder-0.5b")

    async def go() -> list[Record]:
        srv = await asyncio.start_server(server.handler, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        target = Target(contender, f"http://127.0.0.1:{port}/v1", stream=stream)
        async with srv, make_client(4, 5.0, lean=lean) as client:
            return [await probe(client, target, Prompt(f"p{i}", "hello")) for i in range(n)]

    return asyncio.run(go())


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("lean", [True, False], ids=["lean", "httpx"])
def test_a_request_on_a_connection_closed_while_idle_is_sent_again_on_a_new_one(lean: bool, stream: bool) -> None:
    server = _Server(_STREAM_ANSWER if stream else _ANSWER)
    recs = _probe_n(server, 4, lean=lean, stream=stream)
    assert [r.status for r in recs] == ["ok"] * 4, [r.error_message for r in recs]
    assert [r.output_text for r in recs] == ["hi"] * 4
    # The first went out on a new connection; a later one first on the kept-alive connection the
    # server dropped, then once more on a new one — recorded, not hidden. The lean transport
    # keeps that new connection; httpx's pool closes it with its answer (outside its count), so
    # there the next request opens a connection and the one after meets a stale one again.
    expected = [False, True, True, True] if lean else [False, True, False, True]
    assert [r.stale_resend for r in recs] == expected
    assert all(r.send_delay_s is not None and r.e2e_s is not None for r in recs)
    assert server.received == 4 + sum(expected)


@pytest.mark.parametrize("lean", [True, False], ids=["lean", "httpx"])
def test_a_new_connection_dropped_before_any_byte_is_not_sent_again(lean: bool) -> None:
    """On a connection opened for it the server may have received and dropped the request: that
    is an error record, never resent by the transport."""
    server = _Server(_ANSWER, answered=0)
    (rec,) = _probe_n(server, 1, lean=lean)
    assert rec.status == "error" and rec.error_class in ("protocol", "connection"), rec.error_message
    assert not rec.stale_resend
    assert server.received == 1 and server.connections == 1


@pytest.mark.parametrize("lean", [True, False], ids=["lean", "httpx"])
def test_a_reused_connection_that_answered_part_of_a_head_is_not_sent_again(lean: bool) -> None:
    """Once any byte came back the server saw the request: an error, not a stale connection."""
    server = _Server(_ANSWER, then=b"HTTP/1.1 200 OK\r\ncontent-")
    first, second = _probe_n(server, 2, lean=lean)
    assert first.ok and second.status == "error" and second.error_class == "protocol"
    assert not second.stale_resend
    assert server.received == 2 and server.connections == 1


@pytest.mark.parametrize("lean", [True, False], ids=["lean", "httpx"])
def test_the_resend_is_once(lean: bool) -> None:
    """A new connection that fails the same way is an error: one resend, not a loop."""
    server = _Server(_ANSWER, answered=1)
    recs = _probe_n(server, 2, lean=lean)
    assert recs[1].ok and recs[1].stale_resend
    # Every connection now answers nothing at all: the request fails on a new connection once.
    server.answered = 0
    (rec,) = _probe_n(server, 1, lean=lean)
    assert rec.status == "error" and not rec.stale_resend


@pytest.mark.parametrize("lean", [True, False], ids=["lean", "httpx"])
def test_a_server_that_closes_after_each_answer_loses_no_request(lean: bool) -> None:
    """The real-world shape (llama-server after a streamed answer): close right after the
    response, without `Connection: close`. Whether the FIN beats the next request or not, every
    request succeeds."""

    class _CloseAfter(_Server):
        async def handler(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                await reader.readexactly(length)
                self.received += 1
                writer.write(self.answer)
                await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

    recs = _probe_n(_CloseAfter(_STREAM_ANSWER), 20, lean=lean, stream=True)
    assert [r.status for r in recs] == ["ok"] * 20, [r.error_message for r in recs if not r.ok]


def test_a_closed_loop_load_run_against_such_a_server_loses_no_request() -> None:
    """The concurrency sweep's path (the load generator's own lean client): every connection the
    server drops after one answer is met by a resend, none by an error record."""
    from workbench.measure.load import closed_loop

    server = _Server(_STREAM_ANSWER)
    contender = load_contenders().get("qwen2.5-coder-0.5b")

    async def go() -> list[Record]:
        srv = await asyncio.start_server(server.handler, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        target = Target(contender, f"http://127.0.0.1:{port}/v1", stream=True, keep_itl=False)
        async with srv:
            result = await closed_loop(target, [Prompt("p", "hello")], concurrency=4, n_requests=40,
                                       max_duration_s=20.0)
        return result.records

    recs = asyncio.run(go())
    assert len(recs) == 40 and [r.status for r in recs] == ["ok"] * 40, {r.error_message for r in recs if not r.ok}
    assert sum(r.stale_resend for r in recs) >= 40 - 4  # all but each worker's first met a dropped connection
