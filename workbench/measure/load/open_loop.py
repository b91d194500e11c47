"""Open loop: requests arrive on a schedule, whether or not the server has answered earlier ones.

Real users do not wait for each other, so a stalled server faces a growing queue; a closed
loop would politely slow down and hide the stall (coordinated omission). Here every arrival
has a scheduled time, and latency is also recorded from it (`e2e_from_schedule_s`).

Arrivals: `constant` (every 1/rate s), `poisson` (exponential gaps), or `gamma` with a shape
parameter `burstiness` (mean gap 1/rate, coefficient of variation 1/sqrt(shape): shape 1 is
Poisson, below 1 burstier, above 1 smoother). The schedule is drawn up front from a seeded
generator, so a run is repeatable and its offered load is known exactly.

`max_in_flight` caps requests in flight; an arrival beyond the cap either waits for a slot
(`on_cap="queue"`, the wait counted as schedule lag) or is dropped (`on_cap="drop"`, a record
with error_class `dropped`).

As one shard of a sharded run (`link`), the loop takes the arrivals i ≡ k (mod n) of the one
global schedule (so n shards together offer exactly the unsharded schedule, each at rate/n) and
holds the cap's slots ≡ k (mod n): a drop is decided by the shard's own share of the cap.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from typing import Any, Literal

import httpx

from workbench.measure.load.common import ClientShards, LoadResult, LoadRun, OnRecord, Part, ShardLink
from workbench.measure.retry import RetryPolicy
from workbench.measure.target import Target
from workbench.types import ErrorClass, Prompt

__all__ = ["ARRIVALS", "arrival_offsets", "open_loop"]

ARRIVALS = ("constant", "poisson", "gamma")


def arrival_offsets(
    rate: float, n: int, arrival: str = "poisson", burstiness: float = 1.0, seed: int = 0
) -> list[float]:
    """`n` arrival times in seconds from the start (first at 0) with mean gap 1/rate."""
    if rate <= 0:
        raise ValueError("rate must be > 0 requests/s")
    if arrival not in ARRIVALS:
        raise ValueError(f"unknown arrival process {arrival!r}; valid: {', '.join(ARRIVALS)}")
    if burstiness <= 0:
        raise ValueError("burstiness (gamma shape) must be > 0")
    shape = 1.0 if arrival == "poisson" else burstiness
    rng = random.Random(seed)
    out: list[float] = []
    t = 0.0
    for i in range(n):
        if i:
            t += 1.0 / rate if arrival == "constant" else rng.gammavariate(shape, 1.0 / (rate * shape))
        out.append(t)
    return out


async def open_loop(
    target: Target,
    prompts: Sequence[Prompt],
    *,
    rate: float,
    n_requests: int,
    max_duration_s: float,
    arrival: str = "poisson",
    burstiness: float = 1.0,
    max_in_flight: int | None = None,
    on_cap: Literal["queue", "drop"] = "queue",
    client: httpx.AsyncClient | ClientShards | None = None,
    retry: RetryPolicy | None = None,
    on_record: OnRecord | None = None,
    request_prefix: str = "",
    extra: dict[str, Any] | None = None,
    seed: int = 0,
    link: ShardLink | None = None,
) -> LoadResult:
    """Offer `n_requests` arrivals at `rate`/s; arrivals due after `max_duration_s` are not made.

    `client`: a shared client whose pool holds at least `max_in_flight` connections (or as many
    as may be in flight at once without a cap); None = one is made, sized to the cap or to
    rate × timeout (bounded by `n_requests`).
    """
    if on_cap not in ("queue", "drop"):
        raise ValueError("on_cap must be 'queue' or 'drop'")
    if max_in_flight is not None and max_in_flight < 1:
        raise ValueError("max_in_flight must be >= 1 (or None)")
    link = link or ShardLink(Part())
    part = link.part
    made = [t for t in arrival_offsets(rate, n_requests, arrival, burstiness, seed) if t < max_duration_s]
    mine = [(i, made[i]) for i in part.mine(len(made))]
    cap = part.share(max_in_flight) if max_in_flight else None
    if max_in_flight and mine and not cap:
        raise ValueError(f"max_in_flight {max_in_flight} is smaller than the number of shards ({part.of})")
    pool = cap or min(max(1, len(mine)), max(1, int(rate / part.of * target.contender.timeout_s) + 1))
    http = ClientShards.for_pool(client, pool, target.contender.timeout_s)
    fields = {"concurrency": max_in_flight, "target_rate": rate, "arrival": arrival,
              "burstiness": burstiness if arrival == "gamma" else None,
              "on_cap": on_cap if max_in_flight else None, **(extra or {})}
    run = LoadRun(http, target, prompts, profile="open", max_duration_s=max_duration_s, fields=fields,
                  request_prefix=request_prefix,
                  on_record=on_record, retry=retry, seed=seed, link=link)
    limiter = asyncio.Semaphore(cap) if cap and on_cap == "queue" else None

    async def schedule() -> None:
        for i, due in mine:
            delay = due - run.now_s()
            if delay > 0:
                await asyncio.sleep(delay)
            if run.expired():
                return
            if cap and on_cap == "drop" and run.in_flight >= cap:
                run.record_unsent(i, due, ErrorClass.DROPPED,
                                  f"dropped: {run.in_flight} requests in flight, cap {cap}"
                                  + (f" (this shard's share of {max_in_flight})" if part.of > 1 else ""))
                continue
            run.spawn(i, due, limiter)

    try:
        await run.begin()
        await run.drain(asyncio.get_running_loop().create_task(schedule()))
    except BaseException:
        run.monitor.cancel()  # the collector comes back even when a run fails
        raise
    finally:
        await http.aclose()
    params = {"rate": rate, "n_requests": n_requests, "arrivals_scheduled": len(mine),
              "max_duration_s": max_duration_s, "arrival": arrival, "burstiness": burstiness,
              "max_in_flight": max_in_flight, "on_cap": on_cap, "retry": retry is not None}
    notes = []
    if len(made) < n_requests and part.index == 0:  # one shard says it for the run
        notes.append(f"{n_requests - len(made)} arrivals fell after max_duration_s and were not made")
    return await run.result(params, notes)
