"""What every load profile shares: the target, the bounded run, and one dispatched request.

A run is bounded twice: by a count (requests, or arrivals) and by wall time. When the deadline
passes, requests still in flight are cancelled and each becomes a record with error_class
`cancelled` (so nothing sent is ever missing from the results); arrivals that were still waiting
for a slot become `cancelled` records marked `sent=False`. Timing is `workbench.measure.probe.probe`'s;
this module only adds *when* a request was due (`scheduled_s`) and when it was handed to the
probe (`sent_s`), both as offsets from the run start, so that latency can also be read from the
schedule (coordinated omission):

  schedule_lag_s        = sent_s - scheduled_s   (a late generator, a full cap, a client limiter)
  e2e_from_schedule_s   = schedule_lag_s + send_delay_s + e2e_s
  ttft_from_schedule_s  = schedule_lag_s + send_delay_s + ttft_s

(`send_delay_s`: the probe's own time from `sent_s` until the request went out; see
`workbench.measure.probe`.)

A target with a `budget` (`workbench.measure.budget.Budget`) has each request's worst case reserved
before it is sent; the first request the budget refuses becomes a `cancelled` record ("budget
exhausted: …", `sent=False`), no further request is started, requests in flight finish, and the
result's notes say the run stopped there.

A run can be one shard of a larger one (`ShardLink`, used by `workbench.measure.load.pool`): it
then sends only its share of the global request indices — a closed loop with W workers runs the
workers w ≡ k (mod n) and the requests i with (i mod W) ≡ k (mod n) (its workers' columns, so
its share of requests matches its share of workers), an open loop takes the arrivals
i ≡ k (mod n) of the one global schedule — so a
request's id (`{prefix}{i}`), prompt (`prompts[i % len]`) and scheduled time are the same
whatever the number of shards, and the shards' requests together are exactly the unsharded
run's. All shards count time from one common start instant (`ShardLink.start_at`), so
`scheduled_s` and `sent_s` of different shards lie on one time axis.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from workbench.measure.load.monitor import ClientMonitor, ClientOverhead
from workbench.measure.probe import make_client, new_request_id, probe, wire_request
from workbench.measure.retry import RetryPolicy
from workbench.measure.target import Target
from workbench.providers.base import HttpRequest
from workbench.types import ErrorClass, Prompt, Record

if TYPE_CHECKING:
    from workbench.measure.budget import Budget

__all__ = ["MAX_SHARDS", "SHARD_SIZE", "ClientShards", "LoadResult", "LoadRun", "OnRecord", "OnSent", "Part",
           "ShardLink", "cancelled_in_flight", "from_schedule"]

#: Requests in flight per client. One: a closed-loop worker always sends through its own client,
#: so its keep-alive connection is free whenever the worker is and a warm run never opens a
#: connection mid-measurement. (This began as a cure for httpcore's O(pool) scan per request —
#: c=512 streamed: 1 connection per client ~1.8 ms of CPU per request, 16 ~3.0 ms — which the
#: lean transport no longer has.) A client is cheap: all share one TLS context (~0.07 ms each).
SHARD_SIZE = 1
#: Idle keep-alive connections one client keeps, over every host it has reached.
IDLE_PER_CLIENT = 1024
#: At most this many clients per run (an open loop sized rate × timeout can ask for tens of
#: thousands of connections; beyond this they share clients, a few per pool).
MAX_SHARDS = 1024


class ClientShards:
    """Small keep-alive clients that together carry a run's requests, one picked per request.

    A client never makes a request wait for a connection (the lean transport opens one when none
    is idle: a wait would be hidden inside the measured latency), and keeps up to `IDLE_PER_CLIENT`
    idle ones whatever run made it: clients outlive runs (a sweep's levels and contenders share
    them), and a cap sized by the first run let an earlier host's idle connection fill it, so each
    request to the next host opened a new connection inside its latency."""

    def __init__(self, clients: list[httpx.AsyncClient], owned: bool) -> None:
        self.clients = clients
        self.owned = owned

    @classmethod
    def for_pool(cls, client: httpx.AsyncClient | ClientShards | None, pool: int, timeout_s: float) -> ClientShards:
        """The caller's client or shards (not closed here), or new shards for `pool` in flight."""
        if isinstance(client, ClientShards):
            client.ensure(pool, timeout_s)
            return cls(client.clients, owned=False)
        if client is not None:
            return cls([client], owned=False)
        shards = cls([], owned=True)
        shards.ensure(pool, timeout_s)
        return shards

    def pick(self, i: int) -> httpx.AsyncClient:
        return self.clients[i % len(self.clients)]

    def ensure(self, pool: int, timeout_s: float) -> None:
        """At least one client per `SHARD_SIZE` of `pool` requests in flight (at most `MAX_SHARDS`),
        made here and owned by these shards (a shard process keeps one set across the runs it is
        given, growing it as needed)."""
        want = min(MAX_SHARDS, max(1, -(-max(1, pool) // SHARD_SIZE)))
        while len(self.clients) < want:
            self.clients.append(make_client(IDLE_PER_CLIENT, timeout_s, lean=True))

    async def aclose(self) -> None:
        if self.owned:
            for c in self.clients:
                await c.aclose()

    async def __aenter__(self) -> ClientShards:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

OnRecord = Callable[[Record], None]
#: Called just before a request goes to the probe: (global index, attempt, request id, the record's
#: load fields). A shard reports it at once, so a shard that dies leaves no request unaccounted.
OnSent = Callable[[int, int, str, dict[str, Any]], None]


@dataclass(frozen=True)
class Part:
    """Shard `index` of `of`: the requests, workers and arrivals whose global index ≡ index (mod of)."""

    index: int = 0
    of: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.of:
            raise ValueError(f"shard index must be in 0..{self.of - 1}, got {self.index}")

    def mine(self, n: int) -> range:
        """This shard's global indices among 0..n-1."""
        return range(self.index, n, self.of)

    def share(self, n: int) -> int:
        """How many of n (requests, workers, slots of a cap) are this shard's."""
        return len(self.mine(n))

    def of_workers(self, n: int, workers: int) -> Iterator[int]:
        """A closed loop's requests among 0..n-1 for this shard: those of its workers' columns,
        i with (i mod workers) ≡ index (mod of). Each shard's count of requests is then in
        proportion to its workers (one worker: every request is shard 0's), where i ≡ index (mod of)
        would leave a shard with requests and no worker to send them."""
        return (i for i in range(n) if (i % max(1, workers)) % self.of == self.index)


@dataclass
class ShardLink:
    """How one shard of a sharded run is tied to the others (see the module docstring)."""

    part: Part
    #: the `time.perf_counter()` instant every shard starts at (None: now)
    start_at: float | None = None
    on_sent: OnSent | None = None
    #: called once when this shard stops itself (its share of the budget refused a request)
    on_stop: Callable[[str], None] | None = None
    #: set from outside (another shard's budget ran out, the coordinator left): no new request
    stop_reason: str | None = None

    def fields(self) -> dict[str, Any]:
        return {"shard": self.part.index, "shards": self.part.of}


@dataclass
class LoadResult:
    """The outcome of one bounded run. `records` holds every record, in completion order.

    Invariant: len(records) == sent + dropped + unsent_cancelled, where `sent` counts attempts
    handed to the probe (retries included).
    """

    profile: str
    params: dict[str, Any]
    records: list[Record]
    sent: int
    dropped: int
    unsent_cancelled: int
    wall_s: float
    deadline_hit: bool
    client: ClientOverhead
    notes: list[str] = field(default_factory=list)
    budget_stopped: bool = False  # the spend budget refused a request: the run stopped there
    #: one row per shard of a sharded run (`workbench.measure.load.pool`): where it ran, what it did
    shards: list[dict[str, Any]] = field(default_factory=list)
    #: shards that died mid-run (their in-flight requests are `cancelled` records)
    shards_lost: list[int] = field(default_factory=list)

    def client_warnings(self) -> list[str]:
        return self.client.limited_by_client()

    def summary(self) -> dict[str, Any]:
        ok = sum(1 for r in self.records if r.ok)
        return {
            "profile": self.profile, **self.params, "records": len(self.records), "sent": self.sent,
            "ok": ok, "dropped": self.dropped, "unsent_cancelled": self.unsent_cancelled,
            "wall_s": self.wall_s, "deadline_hit": self.deadline_hit, "budget_stopped": self.budget_stopped,
            "loop_lag_p99_s": self.client.loop_lag_p99_s, "client_cpu_share": self.client.cpu_share,
            "gc_forced": self.client.gc_forced, "client_loop": self.client.loop,
            "client_limited": "; ".join(self.client_warnings()) or None,
            "shards": max(1, len(self.shards)), "shards_lost": len(self.shards_lost),
        }


class LoadRun:
    """One bounded run in progress: the clock, the counters, the tasks and the records."""

    def __init__(
        self,
        clients: ClientShards,
        target: Target,
        prompts: Sequence[Prompt],
        *,
        profile: str,
        max_duration_s: float,
        fields: dict[str, Any],
        request_prefix: str,
        on_record: OnRecord | None,
        retry: RetryPolicy | None,
        seed: int = 0,
        link: ShardLink | None = None,
    ) -> None:
        if max_duration_s <= 0:
            raise ValueError("max_duration_s must be > 0: every run is bounded in time")
        if not prompts:
            raise ValueError("a load run needs at least one prompt")
        self.clients = clients
        self.target = target
        self.prompts = prompts
        self.profile = profile
        self.link = link
        self.fields = {**fields, **link.fields()} if link is not None and link.part.of > 1 else fields
        self.run_id = target.run_id
        self.experiment = target.experiment
        self.prefix = request_prefix or new_request_id() + ":"
        self.on_record = on_record
        self.retry = retry
        self.seed = seed
        self.max_duration_s = max_duration_s
        self.records: list[Record] = []
        #: the provider's request per prompt index, built on first use (`_wire`)
        self.wire: dict[int, HttpRequest] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.bugs: list[BaseException] = []
        self.sent = 0
        self.dropped = 0
        self.unsent_cancelled = 0
        self.in_flight = 0
        self.deadline_hit = False
        self.monitor = ClientMonitor()
        self.budget_stopped = False
        self.notes: list[str] = []
        self.t0 = 0.0
        self.deadline = 0.0

    # -- clock ------------------------------------------------------------------------------
    async def begin(self) -> None:
        """Start the clock: now, or at the shards' common start instant (waiting for it)."""
        at = self.link.start_at if self.link is not None else None
        if at is not None:
            wait = at - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
        self.monitor.start()
        self.t0 = time.perf_counter() if at is None else at
        self.deadline = self.t0 + self.max_duration_s

    def now_s(self) -> float:
        """Seconds since the run started."""
        return time.perf_counter() - self.t0

    def expired(self) -> bool:
        """No new request may start: the deadline passed, the budget refused one, or (a shard) the
        run was stopped from outside."""
        return (self.budget_stopped or time.perf_counter() >= self.deadline
                or (self.link is not None and self.link.stop_reason is not None))

    # -- records ----------------------------------------------------------------------------
    def _finish(self, rec: Record) -> None:
        from_schedule(rec)
        self.records.append(rec)
        if self.on_record is not None:
            self.on_record(rec)

    def _extra(self, scheduled_s: float, sent_s: float | None, **more: Any) -> dict[str, Any]:
        return {
            "load_profile": self.profile, **self.fields, "scheduled_s": scheduled_s, "sent_s": sent_s,
            "schedule_lag_s": None if sent_s is None else sent_s - scheduled_s, **more,
        }

    def record_unsent(self, i: int, scheduled_s: float, error: ErrorClass, message: str) -> None:
        """An arrival that never reached the probe: dropped at the cap, or cancelled while waiting."""
        prompt = self.prompts[i % len(self.prompts)]
        request_id = f"{self.prefix}{i}"
        waited = self.now_s() - scheduled_s
        rec = self.target.record(request_id, prompt, self._extra(scheduled_s, None, sent=False, waited_s=waited))
        rec.status, rec.error_class, rec.error_message = "error", error.value, message
        rec.logical_request_id = request_id
        if error is ErrorClass.DROPPED:
            self.dropped += 1
        else:
            self.unsent_cancelled += 1
        self._finish(rec)

    # -- sending ----------------------------------------------------------------------------
    def _wire(self, i: int) -> HttpRequest:
        """Request i's HTTP request: built once per prompt of the run (held in memory only)."""
        k = i % len(self.prompts)
        req = self.wire.get(k)
        if req is None:
            req = self.wire[k] = wire_request(self.target, self.prompts[k])
        return req

    async def _attempt(self, i: int, attempt: int, scheduled_s: float, retry_wait_s: float | None,
                       slot: int) -> Record:
        prompt = self.prompts[i % len(self.prompts)]
        logical = f"{self.prefix}{i}"
        request_id = logical if attempt == 1 else f"{logical}#{attempt}"
        budget, held = self.target.budget, 0.0
        if budget is not None:
            from workbench.measure.budget import estimate_input_tokens  # budget → cost → pandas: only when used

            c = self.target.contender
            reserved = budget.reserve(c.name, estimate_input_tokens(c, prompt), c.wire_max_tokens)
            if reserved is None:
                return self._refused(budget, prompt, request_id, logical, attempt, scheduled_s)
            held = reserved
        self.in_flight += 1
        self.sent += 1
        sent_s = self.now_s()
        extra = self._extra(scheduled_s, sent_s, sent=True, in_flight=self.in_flight)
        if retry_wait_s is not None:
            extra["retry_wait_s"] = retry_wait_s
        if self.link is not None and self.link.on_sent is not None:
            self.link.on_sent(i, attempt, request_id, extra)
        try:
            rec = await probe(self.clients.pick(slot), self.target, prompt, request_id=request_id, extra=extra,
                              http_request=self._wire(i), admit=False)
        except asyncio.CancelledError:
            # probe() does not return its record when cancelled; rebuild it here.
            rec = cancelled_in_flight(
                self.target, prompt, request_id, logical, attempt, extra, time.time() - (self.now_s() - sent_s),
                self.now_s() - sent_s, f"cancelled in flight at the run deadline ({self.max_duration_s:g} s)")
            if budget is not None:  # cut off mid-answer: the provider may bill it; count the worst case
                budget.charge_usd(held)
            self._finish(rec)
            raise
        finally:
            self.in_flight -= 1
            if budget is not None:
                budget.release(held)
        if budget is not None:
            budget.charge(rec)
        rec.attempt, rec.logical_request_id = attempt, logical
        self._finish(rec)
        return rec

    def _refused(self, budget: Budget, prompt: Prompt, request_id: str, logical: str, attempt: int,
                 scheduled_s: float) -> Record:
        """The budget refused this request: a `cancelled` record, and no new request after it."""
        if not self.budget_stopped:
            self.budget_stopped = True
            self.notes.append(f"stopped by the spend budget: {budget.message()} "
                              f"(requests in flight finished; no new request was started)")
            if self.link is not None and self.link.on_stop is not None:
                self.link.on_stop(budget.message())
        rec = budget.refusal_record(run_id=self.run_id, experiment=self.experiment,
                                    contender=self.target.contender, request_id=request_id,
                                    extra=self._extra(scheduled_s, None, sent=False))
        rec.prompt_id, rec.stream = prompt.id, self.target.stream
        rec.attempt, rec.logical_request_id = attempt, logical
        self.unsent_cancelled += 1
        self._finish(rec)
        return rec

    async def dispatch(self, i: int, scheduled_s: float, limiter: asyncio.Semaphore | None = None,
                       slot: int | None = None) -> None:
        """Send request `i` (due at `scheduled_s`), through `limiter` if given, retrying per policy,
        on client `slot` (default: `i`, round robin over the shards)."""
        try:
            if limiter is not None:
                await limiter.acquire()
        except asyncio.CancelledError:
            self.record_unsent(i, scheduled_s, ErrorClass.CANCELLED,
                               "cancelled at the run deadline while waiting for an in-flight slot")
            raise
        try:
            # Seeding a generator costs ~10 µs: only a run that retries needs one.
            rng = random.Random(self.seed * 1_000_003 + i) if self.retry else None
            wait: float | None = None
            for attempt in range(1, (self.retry.max_attempts if self.retry else 1) + 1):
                rec = await self._attempt(i, attempt, scheduled_s, wait, i if slot is None else slot)
                wait = self.retry.next_wait_s(rec, rng) if self.retry and rng else None
                if wait is None:
                    break
                if wait > 0:
                    await asyncio.sleep(wait)
        finally:
            if limiter is not None:
                limiter.release()

    def spawn(self, i: int, scheduled_s: float, limiter: asyncio.Semaphore | None = None) -> None:
        self._track(asyncio.get_running_loop().create_task(self.dispatch(i, scheduled_s, limiter)))

    def _track(self, task: asyncio.Task[None]) -> None:
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.bugs.append(task.exception())  # type: ignore[arg-type]

    async def drain(self, *also: asyncio.Task[None]) -> None:
        """Wait for `also` and every spawned task, cancelling whatever is left at the deadline."""
        for t in also:
            self._track(t)
        while self.tasks:
            remaining = self.deadline - time.perf_counter()
            if remaining <= 0:
                self.deadline_hit = True
                pending = list(self.tasks)
                for t in pending:
                    t.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                break
            await asyncio.wait(list(self.tasks), timeout=remaining)
        if self.bugs:  # a bug in the generator, not a failed request: never swallow it
            raise self.bugs[0]

    async def result(self, params: dict[str, Any], notes: list[str] | None = None) -> LoadResult:
        wall = self.now_s()
        overhead = await self.monitor.stop()
        return LoadResult(
            profile=self.profile, params=params, records=self.records, sent=self.sent,
            dropped=self.dropped, unsent_cancelled=self.unsent_cancelled, wall_s=wall,
            deadline_hit=self.deadline_hit, client=overhead, notes=list(notes or []) + self.notes,
            budget_stopped=self.budget_stopped,
        )


def from_schedule(rec: Record) -> Record:
    """Add the latencies read from the schedule (module docstring) to a finished record."""
    lag = rec.extra.get("schedule_lag_s")
    if lag is not None:
        lag += rec.send_delay_s or 0.0
        rec.extra["e2e_from_schedule_s"] = lag + rec.e2e_s if rec.e2e_s is not None else None
        rec.extra["ttft_from_schedule_s"] = lag + rec.ttft_s if rec.ttft_s is not None else None
    return rec


def cancelled_in_flight(target: Target, prompt: Prompt, request_id: str, logical: str, attempt: int,
                        extra: dict[str, Any], t_start_unix: float, e2e_s: float, message: str) -> Record:
    """The record of a request that was sent and then cut off — by the run deadline, or (see
    `workbench.measure.load.pool`) with the shard that carried it. `e2e_s` is the time until it was
    cut off, not a latency."""
    rec = target.record(request_id, prompt, extra, t_start_unix=t_start_unix)
    rec.e2e_s, rec.status, rec.error_class, rec.error_message = e2e_s, "error", ErrorClass.CANCELLED.value, message
    rec.attempt, rec.logical_request_id = attempt, logical
    return rec
