"""Load beyond one process and one machine: a run split into shards, records merged into one writer.

One Python event loop sustains a few thousand requests/s and, near that, its own timing error
grows (bench/README.md). A `ShardPool` runs the same generator (`closed_loop`, `open_loop`, every
option they have) in n shards — each its own process with its own event loop — and merges what
they do into one `LoadResult` and one stream of records for the run's one writer:

- **Split.** A closed loop's shard k of n runs the workers w ≡ k (mod n) and sends the requests
  of their columns (global index i with (i mod W) ≡ k (mod n), W workers); an open loop's takes
  the arrivals i ≡ k (mod n) of the one seeded schedule (so each offers rate/n and together
  exactly the unsharded schedule). Request ids (`{prefix}{i}`) and prompts are those of the
  unsharded run, whatever n is: a sharded run compares with an unsharded one request by
  request, and a resume (the concurrency experiment has none yet) would find the same ids.
  Caps (`client_limit`, `max_in_flight`) are split the same way.
- **One start.** Every shard starts at one instant the coordinator names (wall clock, a short
  lead after all shards said they are ready), so every shard's `scheduled_s` / `sent_s` are
  offsets on one time axis (across machines, as aligned as their clocks: NTP, ~ms).
- **Records.** Shards stream records back as they complete (batched per event-loop iteration);
  the coordinator hands each to `on_record` at once (the run's writer appends and flushes it).
  Nothing is lost and nothing doubles: every request is announced before it is sent
  (`workbench.measure.load.shard`), so a shard that dies leaves a `cancelled` record for each
  request it had in flight ("shard k died"), the result lists it in `shards_lost`, its
  remaining requests are not sent, and the other shards go on. A shard that outlives the run's
  bound by `GRACE_S` is killed and counted the same way.
- **Budget.** Split into shares (`Budget.split`): no shard may overspend its share, so the run
  cannot pass the cap; the first shard whose share refuses a request stops every shard.

Backends — where the shard processes come from:

- `processes`: child processes of this one (`workbench.measure.load.shard.main`), on this
  machine. The standard library, not Ray's local mode: a child starts in ~1 s with nothing but
  the workbench imported, needs no extra dependency, and dies with its coordinator; Ray's local
  mode would start a whole Ray instance (GCS, raylet, object store, agents: seconds — the tests'
  two-node cluster takes ~15 s on the loaded 2-core machine — and hundreds of MB) to run the
  same processes.
- `ray`: Ray actors (one CPU each, spread over the nodes) on an existing cluster
  (`ray_address` or `$RAY_ADDRESS`; `auto` for one started on this machine with `ray start`).
  Ray places and starts the shards; the records come back on the same kind of connection as
  above, to this node's address (so the coordinator must run on a machine the nodes can reach,
  as a Ray driver does; Ray Client `ray://` addresses are refused) — not through Ray's own
  objects (a remote call or a `ray.util.queue.Queue` put per batch, each a round trip through
  Ray's core worker), so both backends share one channel, one death detector and one set of
  tests. Every node needs the workbench installed and, for hosted contenders, the key
  variables set.
- `auto`: this process for one shard (`InlineRunner`, no pool at all), `processes` for more.

`shards=0` means one per CPU: this machine's for `processes`, the cluster's for `ray`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, Listener
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from workbench.children import PREEXEC
from workbench.errors import ConfigError, WorkbenchError
from workbench.measure.load.closed_loop import closed_loop
from workbench.measure.load.common import ClientShards, LoadResult, OnRecord, Part, cancelled_in_flight, from_schedule
from workbench.measure.load.monitor import ClientOverhead
from workbench.measure.load.open_loop import open_loop
from workbench.measure.load.shard import Job, frame, open_streams, read_frame
from workbench.measure.probe import new_request_id
from workbench.measure.target import LOOPBACK_HOSTS, Target
from workbench.types import ErrorClass, Prompt, Record

__all__ = ["BACKENDS", "GRACE_S", "RAY_MISSING", "InlineRunner", "ShardPool", "check_load_options", "load_runner"]

BACKENDS = ("auto", "processes", "ray")
RAY_MISSING = "backend='ray' needs Ray, which is not installed: pip install 'llm-workbench[ray]'"
#: Time between "every shard is ready" and the common start instant.
START_LEAD_S = 0.25
#: How long a shard may run past the run's own bound before it is killed and counted as lost.
GRACE_S = 30.0
#: How long shards may take to start and connect (imports, Ray scheduling a worker).
CONNECT_TIMEOUT_S = 120.0
_SHARD_MAIN = "from workbench.measure.load.shard import main; main()"


class InlineRunner:
    """One shard in this process: `closed_loop` / `open_loop` on one set of keep-alive clients
    kept across runs (no reconnects between the levels of a sweep)."""

    shards = 1
    backend = "inline"

    def __init__(self) -> None:
        self.clients = ClientShards([], owned=True)

    async def closed_loop(self, target: Target, prompts: Sequence[Prompt], **kwargs: Any) -> LoadResult:
        return await closed_loop(target, prompts, client=self.clients, **kwargs)

    async def open_loop(self, target: Target, prompts: Sequence[Prompt], **kwargs: Any) -> LoadResult:
        return await open_loop(target, prompts, client=self.clients, **kwargs)

    async def aclose(self) -> None:
        await self.clients.aclose()

    async def __aenter__(self) -> InlineRunner:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


@dataclass
class _Shard:
    """One shard as the coordinator sees it, and what it did in the current run."""

    index: int
    writer: asyncio.StreamWriter
    info: dict[str, Any]
    handle: Any = None  # the Popen, or the Ray actor
    alive: bool = True
    reading: asyncio.Task[None] | None = None  # reads its messages until its connection ends
    # -- the current run
    part: Part = field(default_factory=Part)
    in_flight: dict[str, tuple[int, int, dict[str, Any], float]] = field(default_factory=dict)
    notices: int = 0
    records: int = 0
    unsent: dict[str, int] = field(default_factory=dict)  # error class -> records never sent
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    result: LoadResult | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    failure: str | None = None
    died_at: float | None = None
    cut: int = 0  # requests in flight when it died: made `cancelled` here

    def reset(self, part: Part) -> None:
        self.part, self.in_flight, self.notices, self.records, self.unsent, self.cut = part, {}, 0, 0, {}, 0
        self.ready, self.finished = asyncio.Event(), asyncio.Event()
        self.result, self.extra, self.failure = None, {}, None

    def send(self, msg: tuple[Any, ...]) -> None:
        if self.alive and not self.writer.is_closing():  # else its reader sees the end: counted lost
            self.writer.write(frame(msg))

    @property
    def where(self) -> str:
        return f"shard {self.index} ({self.info.get('host')} pid {self.info.get('pid')})"


class _Run:
    """The coordinator's side of one sharded run."""

    def __init__(self, target: Target, prompts: Sequence[Prompt], prefix: str, on_record: OnRecord | None) -> None:
        self.target = target
        self.prompts = prompts
        self.prefix = prefix
        self.on_record = on_record
        self.records: list[Record] = []
        self.halted: str | None = None


class ShardPool:
    """n shard processes (`backend` processes or ray) that each run a share of every load run given
    to `closed_loop` / `open_loop` (same arguments as the functions, except `client`). Start with
    `async with ShardPool(...) as pool:`; the shards live until the pool closes."""

    def __init__(self, shards: int = 0, backend: Literal["processes", "ray"] = "processes", *,
                 ray_address: str | None = None, connect_timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        if backend not in ("processes", "ray"):
            raise WorkbenchError(f"unknown shard backend {backend!r}; valid: processes, ray")
        if shards < 0:
            raise WorkbenchError(f"shards must be >= 0 (0: one per CPU), got {shards}")
        self.backend = backend
        self.requested = shards
        self.ray_address = ray_address
        self.connect_timeout_s = connect_timeout_s
        self._shards: list[_Shard] = []
        self._ray_owned = False
        self._run: _Run | None = None
        self._logs: list[Path] = []

    @property
    def shards(self) -> int:
        """Shards alive now."""
        return sum(1 for s in self._shards if s.alive)

    @property
    def info(self) -> list[dict[str, Any]]:
        """Where each shard runs: index, host, pid (and Ray node), alive."""
        return [{**s.info, "index": s.index, "alive": s.alive} for s in self._shards]

    # -- starting and stopping ----------------------------------------------------------------
    async def start(self) -> ShardPool:
        host = "127.0.0.1"
        ray_mod = None
        if self.backend == "ray":
            ray_mod = await asyncio.to_thread(self._ray_init)
            host = ray_mod.util.get_node_ip_address()
        n = self.requested or (_ray_cpus(ray_mod) if ray_mod is not None else (os.cpu_count() or 1))
        authkey = secrets.token_bytes(32)
        listener = Listener((host, 0), authkey=authkey)
        address: tuple[str, int] = listener.address
        handles: list[Any] = []
        try:
            handles = (self._spawn_processes(n, address, authkey) if ray_mod is None
                       else self._spawn_actors(ray_mod, n, address, authkey))
            conns = await self._accept(listener, n, handles)
        except BaseException:
            for h in handles:
                await asyncio.to_thread(self._kill, h)
            raise
        finally:
            listener.close()
        loop = asyncio.get_running_loop()
        for conn, info in conns:
            k = int(info["index"])
            reader, writer = await open_streams(conn)
            shard = _Shard(k, writer, info, handles[k])
            shard.reading = loop.create_task(self._read(shard, reader))
            self._shards.append(shard)
        self._shards.sort(key=lambda s: s.index)
        return self

    async def _accept(self, listener: Listener, n: int, handles: list[Any]) -> list[tuple[Connection, dict[str, Any]]]:
        """The n shards' connections, in a thread (`Listener.accept` blocks); fails early when a shard
        exits before connecting, and at `connect_timeout_s`."""
        stop: list[bool] = []
        accepting = asyncio.ensure_future(asyncio.to_thread(_accept, listener, n, stop))
        deadline = time.monotonic() + self.connect_timeout_s
        why = ""
        while not accepting.done():
            why = self._exited(handles)
            if why or time.monotonic() > deadline:
                break
            await asyncio.wait([accepting], timeout=0.2)
        if accepting.done():
            return accepting.result()
        stop.append(True)
        with contextlib.suppress(OSError):  # wake the blocked accept: it sees `stop` and gives up
            socket.create_connection(listener.address, timeout=1).close()
        with contextlib.suppress(Exception):
            await accepting
        raise WorkbenchError(f"{n} {self.backend} shards did not all connect"
                             + (f": {why}" if why else f" within {self.connect_timeout_s:g} s") + self._log_tail())

    def _exited(self, handles: list[Any]) -> str:
        """Why a shard ended before connecting ("" while all are still starting)."""
        for k, h in enumerate(handles):
            if isinstance(h, subprocess.Popen) and h.poll() is not None:
                return f"shard {k} exited with code {h.returncode}"
            if isinstance(h, tuple):
                import ray

                done, _ = ray.wait([h[1]], timeout=0)
                if done:
                    try:
                        ray.get(done[0])
                    except Exception as exc:  # the actor's own error, e.g. workbench not installed on the node
                        return f"shard {k} failed on Ray: {exc}"
                    return f"shard {k} ended on Ray before connecting"
        return ""

    def _spawn_processes(self, n: int, address: tuple[str, int], authkey: bytes) -> list[Any]:
        root = str(Path(__file__).resolve().parents[3])  # the shards run this same workbench
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p),
               "PYTHONUNBUFFERED": "1"}
        procs = []
        for k in range(n):
            log = Path(tempfile.mkstemp(prefix=f"workbench-shard{k}-", suffix=".log")[1])
            self._logs.append(log)
            with open(log, "w") as err:
                # `-c`, not `-m workbench.measure.load.shard`: the package imports that module
                # first, and runpy would warn about running a module twice.
                proc = subprocess.Popen([sys.executable, "-c", _SHARD_MAIN], stdin=subprocess.PIPE,
                                        stdout=subprocess.DEVNULL, stderr=err, env=env, text=True,
                                        preexec_fn=PREEXEC)
            assert proc.stdin is not None
            proc.stdin.write(f"{address[0]} {address[1]} {authkey.hex()} {k}\n")
            proc.stdin.close()
            procs.append(proc)
        return procs

    def _ray_init(self) -> Any:
        try:
            import ray
        except ImportError:
            raise WorkbenchError(RAY_MISSING) from None
        address = self.ray_address or os.environ.get("RAY_ADDRESS")
        if not address:
            raise WorkbenchError("backend='ray' runs on an existing cluster: pass ray_address (or set RAY_ADDRESS; "
                                 "'auto' for one started on this machine with `ray start --head`)")
        if address.startswith("ray://"):
            raise WorkbenchError(f"Ray Client addresses ({address}) are not supported: the shards stream records "
                                 "back to this process, so run the workbench on a node of the cluster")
        if not ray.is_initialized():
            ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
            self._ray_owned = True
        return ray

    def _spawn_actors(self, ray: Any, n: int, address: tuple[str, int], authkey: bytes) -> list[Any]:
        actor = ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0)(_RayShard)
        actors = [actor.options(scheduling_strategy="SPREAD").remote() for _ in range(n)]
        return [(a, a.run.remote(address, authkey, k)) for k, a in enumerate(actors)]

    def _kill(self, handle: Any) -> None:
        if isinstance(handle, subprocess.Popen):
            if handle.poll() is None:
                handle.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                handle.wait(5)
        elif isinstance(handle, tuple):  # (Ray actor, its run's ObjectRef)
            import ray

            with contextlib.suppress(Exception):
                ray.kill(handle[0], no_restart=True)

    def _log_tail(self) -> str:
        tails = []
        for log in self._logs:
            with contextlib.suppress(OSError):
                text = log.read_text(errors="replace").strip()
                if text:
                    tails.append(f"{log.name}: " + "\n".join(text.splitlines()[-5:]))
        return (":\n" + "\n".join(tails)) if tails else ""

    async def aclose(self) -> None:
        """Tell every shard to finish, give it a few seconds, then kill what is left."""
        for s in self._shards:
            s.send(("close",))
        deadline = time.monotonic() + 5.0
        for s in self._shards:
            s.alive = False  # a connection ending now is the shard closing, not a loss
            if isinstance(s.handle, subprocess.Popen):
                while s.handle.poll() is None and time.monotonic() < deadline:
                    await asyncio.sleep(0.02)
            else:
                await asyncio.sleep(0)
            await asyncio.to_thread(self._kill, s.handle)
            if s.reading is not None:
                s.reading.cancel()
                with contextlib.suppress(BaseException):
                    await s.reading
            s.writer.close()
        if self._ray_owned:
            import ray

            await asyncio.to_thread(ray.shutdown)
            self._ray_owned = False
        for log in self._logs:
            with contextlib.suppress(OSError):
                log.unlink()

    async def __aenter__(self) -> ShardPool:
        try:
            return await self.start()
        except BaseException:
            await self.aclose()
            raise

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- events from the shards ---------------------------------------------------------------
    async def _read(self, shard: _Shard, reader: asyncio.StreamReader) -> None:
        """The shard's messages, in order, until its connection ends (then it is lost)."""
        try:
            while True:
                self._event(shard, await read_frame(reader))
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            self._lost(shard)

    def _event(self, shard: _Shard, msg: tuple[Any, ...]) -> None:
        kind, run = msg[0], self._run
        if kind == "sent":
            _, i, attempt, request_id, fields, t_unix = msg
            shard.in_flight[request_id] = (i, attempt, fields, t_unix)
            shard.notices += 1
        elif kind == "records":
            for rec in msg[1]:
                shard.in_flight.pop(rec.request_id, None)
                shard.records += 1
                if rec.extra.get("sent") is False:
                    shard.unsent[rec.error_class or ""] = shard.unsent.get(rec.error_class or "", 0) + 1
                if run is not None:
                    run.records.append(rec)
                    if run.on_record is not None:
                        run.on_record(rec)
        elif kind == "ready":
            shard.ready.set()
        elif kind == "halt":
            if run is not None and run.halted is None:
                run.halted = f"shard {shard.index} stopped: {msg[1]}"
                for other in self._shards:
                    if other is not shard:
                        other.send(("stop", run.halted))
        elif kind == "done":
            shard.result, shard.extra = msg[1], msg[2] if len(msg) > 2 else {}
            shard.finished.set()
        elif kind == "failed":
            shard.failure = msg[1]
            shard.finished.set()

    def _lost(self, shard: _Shard) -> None:
        """The shard's connection ended: it died. Its in-flight requests become `cancelled` records."""
        if not shard.alive:
            return
        shard.alive = False
        shard.died_at = time.time()
        shard.writer.close()
        run = self._run
        if run is not None and not shard.finished.is_set():
            for request_id, (i, attempt, fields, t_unix) in list(shard.in_flight.items()):
                prompt = run.prompts[i % len(run.prompts)]
                rec = from_schedule(cancelled_in_flight(
                    run.target, prompt, request_id, f"{run.prefix}{i}", attempt, fields, t_unix,
                    max(0.0, shard.died_at - t_unix),
                    f"cancelled: {shard.where} died with this request in flight (its answer, if any, died with it)"))
                run.records.append(rec)
                shard.records += 1
                shard.cut += 1
                if run.on_record is not None:
                    run.on_record(rec)
            shard.in_flight.clear()
        shard.ready.set()
        shard.finished.set()

    # -- runs ---------------------------------------------------------------------------------
    async def closed_loop(self, target: Target, prompts: Sequence[Prompt], **kwargs: Any) -> LoadResult:
        """`workbench.measure.load.closed_loop` over the pool's shards (same arguments but `client`)."""
        return await self._sharded("closed", target, prompts, kwargs)

    async def open_loop(self, target: Target, prompts: Sequence[Prompt], **kwargs: Any) -> LoadResult:
        """`workbench.measure.load.open_loop` over the pool's shards (same arguments but `client`)."""
        return await self._sharded("open", target, prompts, kwargs)

    async def _sharded(self, profile: Literal["closed", "open"], target: Target, prompts: Sequence[Prompt],
                       kwargs: dict[str, Any]) -> LoadResult:
        if "client" in kwargs:
            raise TypeError("a shard pool's shards use their own clients: do not pass `client`")
        if self._run is not None:
            raise RuntimeError("a shard pool runs one load at a time")
        shards = [s for s in self._shards if s.alive]
        if not shards:
            raise WorkbenchError("no shard of the pool is alive: " + (self._log_tail() or "see the notes of the "
                                                                      "previous run"))
        n = len(shards)
        _check_caps(kwargs, n)
        on_record: OnRecord | None = kwargs.pop("on_record", None)
        kwargs["request_prefix"] = kwargs.get("request_prefix") or new_request_id() + ":"
        max_duration_s = float(kwargs["max_duration_s"])
        budget = target.budget
        shares = budget.split(_work_weights(profile, kwargs, n)) if budget is not None else None
        run = self._run = _Run(target, prompts, kwargs["request_prefix"], on_record)
        try:
            for k, s in enumerate(shards):
                s.reset(Part(k, n))
                t = target.replace(budget=shares[k]) if shares is not None else target
                s.send(("job", Job(profile, t, list(prompts), Part(k, n), dict(kwargs))))
            try:
                await _wait_all([s.ready for s in shards], self.connect_timeout_s)
            except TimeoutError:
                raise WorkbenchError(f"the shards were not ready within {self.connect_timeout_s:g} s") from None
            start = time.time() + START_LEAD_S
            for s in shards:
                s.send(("start", start))
            await self._wait_done(shards, start + max_duration_s + GRACE_S)
        except BaseException:
            for s in shards:
                await asyncio.to_thread(self._kill, s.handle)
            raise
        finally:
            self._run = None
        if budget is not None and shares is not None:
            budget.absorb(shares, [None if s.result is None else s.extra.get("budget") for s in shards])
        failures = [f"{s.where} failed:\n{s.failure}" for s in shards if s.failure]
        if failures:  # a bug in the generator, not a failed request: never swallow it
            raise WorkbenchError("\n".join(failures))
        return _merge(profile, shards, run, start, self.backend)

    async def _wait_done(self, shards: list[_Shard], deadline_unix: float) -> None:
        """Until every shard is done or lost; past the deadline the stragglers are killed."""
        pending = [s.finished for s in shards]
        try:
            await _wait_all(pending, max(0.0, deadline_unix - time.time()))
        except TimeoutError:
            for s in shards:
                if not s.finished.is_set():
                    await asyncio.to_thread(self._kill, s.handle)  # its connection ends: _lost
            await _wait_all(pending, 30.0)


class _RayShard:
    """What a Ray actor runs: one shard (`workbench.measure.load.shard.serve_shard`)."""

    def run(self, address: tuple[str, int], authkey: bytes, index: int) -> None:
        import ray

        from workbench.measure.load.shard import serve_shard

        serve_shard(address, authkey, index, node=ray.get_runtime_context().get_node_id())


def _accept(listener: Listener, n: int, stop: list[bool]) -> list[tuple[Connection, dict[str, Any]]]:
    out = []
    for _ in range(n):
        conn = listener.accept()
        if stop:
            raise WorkbenchError("gave up waiting for the shards")
        kind, info = pickle.loads(conn.recv_bytes())
        if kind != "hello":
            raise WorkbenchError(f"a shard said {kind!r} instead of hello")
        out.append((conn, info))
    return out


def _ray_cpus(ray: Any) -> int:
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


async def _wait_all(events: list[asyncio.Event], timeout: float) -> None:
    async with asyncio.timeout(timeout):
        for e in events:
            await e.wait()


def _work_weights(profile: str, kwargs: dict[str, Any], n: int) -> list[int]:
    """Each shard's part of a run's work, as the loops split it (`Part`): a closed loop's workers,
    an open loop's arrivals — what its budget share is sized by."""
    n_requests = int(kwargs["n_requests"])
    units = min(int(kwargs["concurrency"]), n_requests) if profile == "closed" else n_requests
    weights = [Part(k, n).share(units) for k in range(n)]
    return weights if any(weights) else [1] * n  # nothing to send: any split holds


def _check_caps(kwargs: dict[str, Any], n: int) -> None:
    for name in ("client_limit", "max_in_flight"):
        cap = kwargs.get(name)
        if cap is not None and cap < n:
            raise WorkbenchError(f"{name}={cap} is smaller than the number of shards ({n}): every shard holds at "
                                 "least one slot of it; use fewer shards")


def _merge(profile: str, shards: list[_Shard], run: _Run, start_unix: float, backend: str) -> LoadResult:
    """One `LoadResult` from the shards' own results and the records that came back."""
    done = [s for s in shards if s.result is not None]
    params = dict(done[0].result.params) if done and done[0].result is not None else {}
    params.update({"shards": len(shards), "backend": backend})
    if "arrivals_scheduled" in params:
        params["arrivals_scheduled"] = sum(s.result.params.get("arrivals_scheduled", 0) for s in done
                                           if s.result is not None)
    notes: list[str] = []
    rows: list[dict[str, Any]] = []
    sent = dropped = unsent_cancelled = 0
    for s in shards:
        res = s.result
        row: dict[str, Any] = {"shard": s.index, "host": s.info.get("host"), "pid": s.info.get("pid"),
                               "node": s.info.get("node"), "records": s.records, "lost": res is None}
        if res is not None:
            sent, dropped = sent + res.sent, dropped + res.dropped
            unsent_cancelled += res.unsent_cancelled
            row.update({"sent": res.sent, "wall_s": res.wall_s, "cpu_s": res.client.cpu_s,
                        "cpu_share": res.client.cpu_share, "loop_lag_p99_s": res.client.loop_lag_p99_s,
                        "process_cpu_s": s.extra.get("process_cpu_s"), "loop": res.client.loop})
            notes += [f"shard {s.index}: {n}" for n in res.notes]  # the pool's own stop is said once, below
        else:
            sent += s.notices
            dropped += s.unsent.get(ErrorClass.DROPPED.value, 0)
            unsent_cancelled += s.unsent.get(ErrorClass.CANCELLED.value, 0)
            row.update({"sent": s.notices, "wall_s": (s.died_at or time.time()) - start_unix})
            notes.append(f"{s.where} died mid-run: the {s.cut} requests it had in flight are `cancelled` records; "
                         f"its requests not yet sent were not sent")
        rows.append(row)
    if run.halted:
        notes.append(f"every shard stopped: {run.halted}")
    shared = _sharing_cores(backend, len(shards), run.target.base_url)
    if shared:
        notes.append(shared)
    wall = max((r["wall_s"] for r in rows), default=0.0)
    return LoadResult(
        profile=profile, params=params, records=run.records, sent=sent, dropped=dropped,
        unsent_cancelled=unsent_cancelled, wall_s=wall,
        deadline_hit=any(s.result.deadline_hit for s in done if s.result is not None),
        client=ClientOverhead.merge([s.result.client for s in done if s.result is not None]),
        notes=notes, budget_stopped=any(s.result.budget_stopped for s in done if s.result is not None),
        shards=rows, shards_lost=[s.index for s in shards if s.result is None],
    )


def _sharing_cores(backend: str, n_shards: int, base_url: str) -> str | None:
    """A note when local shard processes and a server on this machine compete for its cores: the
    server's latency then includes the load generator's CPU (bench/README.md: 2 shards beside the
    server on 2 cores, client TTFT error p99 47-68 ms against 0.5-1.5 ms with one)."""
    cores = os.cpu_count() or 1
    host = urlsplit(base_url).hostname or ""
    if backend != "processes" or host not in LOOPBACK_HOSTS or n_shards + 1 <= cores:
        return None
    return (f"{n_shards} shard processes and the server at {host} share this machine's {cores} cores (plus the "
            "coordinator): the server's latency includes the load generator's CPU; fewer shards, or shards on "
            "other machines (backend ray), measure the server alone")


def check_load_options(shards: int, backend: str) -> None:
    """Refuse an unknown `backend` or a negative `shards` (ConfigError naming the parameter)."""
    if backend not in BACKENDS:
        raise ConfigError("backend", None, f"unknown load backend {backend!r}; valid: {', '.join(BACKENDS)}")
    if shards < 0:
        raise ConfigError("shards", None, f"must be >= 0 (0: one per CPU), got {shards}")


def load_runner(shards: int = 1, backend: str = "auto", *, ray_address: str | None = None
                ) -> InlineRunner | ShardPool:
    """What runs a load: this process for one shard with backend `auto`, else a `ShardPool`
    (not started: `async with load_runner(...) as runner`)."""
    check_load_options(shards, backend)
    if backend == "auto":
        return InlineRunner() if shards == 1 else ShardPool(shards, "processes")
    return ShardPool(shards, "processes" if backend == "processes" else "ray", ray_address=ray_address)
