"""One shard of a sharded load run: a process (or a Ray actor's process) with its own event loop.

`serve_shard(address, authkey, index)` connects back to the run's coordinator
(`workbench.measure.load.pool`) and then does what it is told, one job at a time: run a closed
or open loop (`Job`) as shard k of n (`workbench.measure.load.common.ShardLink`), starting at
the instant the coordinator names, and stream what happens back on the same connection. It keeps
one set of keep-alive clients across its jobs (like the in-process sweep keeps one per contender).

The channel: the standard library's `multiprocessing.connection` opens it (HMAC challenge with a
per-run random key, then one `hello`), and from there it is the same TCP socket under asyncio
streams, carrying pickled tuples, each framed by its 8-byte length (`frame` / `read_frame`).
Not `Connection.send_bytes`/`recv_bytes` under the event loop: uvloop (libuv) makes a watched
socket non-blocking, and a blocking-style read or write of a large message then fails halfway
with EAGAIN — a message cut in two, a live shard counted as lost. Messages:

  shard → coordinator   ("hello", info)  ("ready",)  ("sent", index, attempt, request_id, fields, t_unix)
                        ("records", [Record, ...])  ("halt", reason)  ("done", LoadResult without records)
                        ("failed", traceback)
  coordinator → shard   ("job", Job)  ("start", t_unix)  ("stop", reason)  ("close",)

A `sent` notice is written before the request goes out (a few µs: one small pickle, one
`send`), so when a shard dies the coordinator knows every request it had in flight and records
each as `cancelled`; records are batched per event-loop iteration (one message per batch). (The
transport hands the notice to the kernel at once unless the coordinator has fallen a whole
socket buffer behind; only then could a SIGKILL lose a notice whose request went out.) A
shard whose coordinator goes away (the connection ends) stops starting requests and exits.
Nothing here is a cluster: placing and starting shards is the pool's (local processes or Ray).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import resource
import socket
import struct
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Client, Connection
from typing import Any, Literal

from workbench.aio import run
from workbench.measure.load.closed_loop import closed_loop
from workbench.measure.load.common import ClientShards, LoadResult, Part, ShardLink
from workbench.measure.load.open_loop import open_loop
from workbench.measure.target import Target
from workbench.types import Prompt, Record

__all__ = ["Job", "frame", "open_streams", "read_frame", "serve_shard"]

_PICKLE = pickle.HIGHEST_PROTOCOL


@dataclass
class Job:
    """One load run for one shard: the profile, its arguments, and which part of it is this shard's."""

    profile: Literal["closed", "open"]
    target: Target
    prompts: Sequence[Prompt]
    part: Part
    kwargs: dict[str, Any] = field(default_factory=dict)  # closed_loop / open_loop keyword arguments


_LEN = struct.Struct("!Q")


def frame(msg: tuple[Any, ...]) -> bytes:
    """One message as it goes on the wire: its length, then its pickle."""
    data = pickle.dumps(msg, _PICKLE)
    return _LEN.pack(len(data)) + data


async def read_frame(reader: asyncio.StreamReader) -> tuple[Any, ...]:
    """The next message (`asyncio.IncompleteReadError` when the other end has gone)."""
    (size,) = _LEN.unpack(await reader.readexactly(_LEN.size))
    msg: tuple[Any, ...] = pickle.loads(await reader.readexactly(size))
    return msg


async def open_streams(conn: Connection) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """The handshaken connection's socket as asyncio streams (the `Connection` object is closed;
    the socket lives on in the streams)."""
    sock = socket.socket(fileno=os.dup(conn.fileno()))
    conn.close()
    return await asyncio.open_connection(sock=sock)


class _Channel:
    """The shard's end of the connection: control messages in (read by a task), events out."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.inbox: asyncio.Queue[tuple[Any, ...] | None] = asyncio.Queue()
        self.pending: list[Record] = []
        self.flush_scheduled = False
        self.link: ShardLink | None = None
        self.task: asyncio.Task[LoadResult] | None = None
        self.closed = False
        self.loop = asyncio.get_running_loop()
        self.reading = self.loop.create_task(self._read())

    async def _read(self) -> None:
        try:
            while True:
                msg = await read_frame(self.reader)
                if msg[0] == "stop" and self.link is not None:
                    self.link.stop_reason = msg[1]  # no new request; those in flight finish
                self.inbox.put_nowait(msg)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            self._gone()

    def _gone(self) -> None:
        """The coordinator went away: nobody is left to take the records, so stop."""
        if not self.closed:
            self.closed = True
            if self.task is not None:
                self.task.cancel()
            self.inbox.put_nowait(None)

    def send(self, msg: tuple[Any, ...]) -> None:
        if self.closed:
            return
        if self.writer.is_closing():
            self._gone()
            return
        self.writer.write(frame(msg))  # buffered by the transport: never blocks, never half-sent

    async def aclose(self) -> None:
        self.reading.cancel()
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()

    # -- the run's hooks ---------------------------------------------------------------------
    def sent(self, i: int, attempt: int, request_id: str, fields: dict[str, Any]) -> None:
        self.send(("sent", i, attempt, request_id, fields, time.time()))

    def record(self, rec: Record) -> None:
        self.pending.append(rec)
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        self.flush_scheduled = False
        if self.pending:
            batch, self.pending = self.pending, []
            self.send(("records", batch))

    def halt(self, reason: str) -> None:
        self.send(("halt", reason))


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


async def _run(channel: _Channel, job: Job, clients: ClientShards, start_unix: float) -> LoadResult:
    link = ShardLink(job.part, start_at=time.perf_counter() + (start_unix - time.time()),
                     on_sent=channel.sent, on_stop=channel.halt)
    channel.link = link
    kwargs = {**job.kwargs, "client": clients, "on_record": channel.record, "link": link}
    runner = closed_loop if job.profile == "closed" else open_loop
    try:
        return await runner(job.target, job.prompts, **kwargs)
    finally:
        channel.flush()
        channel.link = None


async def _serve(conn: Connection) -> None:
    channel = _Channel(*await open_streams(conn))
    try:
        async with ClientShards([], owned=True) as clients:
            await _jobs(channel, clients)
    finally:
        await channel.aclose()


async def _jobs(channel: _Channel, clients: ClientShards) -> None:
    while True:
        msg = await channel.inbox.get()
        if msg is None or msg[0] == "close":
            return
        if msg[0] != "job":
            continue  # a stop between jobs: nothing to stop
        job: Job = msg[1]
        channel.send(("ready",))
        start = await channel.inbox.get()
        while start is not None and start[0] == "stop":  # a late stop of the previous run
            start = await channel.inbox.get()
        if start is None or start[0] != "start":
            return
        cpu0 = _cpu_s()
        channel.task = asyncio.get_running_loop().create_task(_run(channel, job, clients, start[1]))
        try:
            result = await channel.task
        except asyncio.CancelledError:
            if channel.closed:
                return  # the coordinator is gone
            raise
        except Exception:
            channel.send(("failed", traceback.format_exc()))
            continue
        finally:
            channel.task = None
        result.records = []  # already streamed
        channel.send(("done", result, {"process_cpu_s": _cpu_s() - cpu0, "budget": job.target.budget}))


def serve_shard(address: tuple[str, int], authkey: bytes, index: int, **info: Any) -> None:
    """Connect to the coordinator at `address` and run the jobs it sends until it closes."""
    conn = Client(address, authkey=authkey)
    try:
        conn.send_bytes(pickle.dumps(("hello", {"index": index, "host": socket.gethostname(), "pid": os.getpid(),
                                                **info}), _PICKLE))
        run(_serve(conn))
    finally:
        with contextlib.suppress(OSError):
            conn.close()


def main() -> None:
    """A shard process (the pool runs `python -c "from workbench.measure.load.shard import main;
    main()"`): the coordinator's address, key and this shard's index come on stdin as one line
    `host port authkey-hex index` (not on the command line, which other users of the machine can
    read)."""
    host, port, key, index = sys.stdin.readline().split()
    serve_shard((host, int(port)), bytes.fromhex(key), int(index))


if __name__ == "__main__":
    main()
