"""Closed loop: N workers, each sending its next request the moment the previous one ends.

This is how most benchmarks (and `ab -c N`) load a server: the offered load adapts to the
server, so a slow server is offered less — which hides queueing from users who would not wait
(use the open loop for that). Optional `client_limit` puts a semaphore in front of the probe,
the client-side mitigation for a provider's concurrent-request limit; the wait for it is
recorded as `schedule_lag_s` (the worker was ready at `scheduled_s`).

`ramp_s` spreads the workers' first requests evenly over that many seconds (worker w starts at
w·ramp_s/N). Without it all N start in the same instant, and with a server whose service time
barely varies they stay in lock-step: every round, N responses end together and N requests go
out together. That herd is a real load shape (a cron job, a retry storm) but rarely the steady
state one wants to measure, and it is the worst case for the client's own timing (see
bench/README.md).

As one shard of a sharded run (`link`), the loop runs the global workers w ≡ k (mod n) and sends
the requests of their columns, i with (i mod W) ≡ k (mod n) for W workers (`Part.of_workers`:
each shard's share of the requests is its share of the workers); a worker's ramp offset is that
of its global index, and the `client_limit` is split like the workers (shard k holds the limit's
slots ≡ k mod n).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import httpx

from workbench.measure.load.common import ClientShards, LoadResult, LoadRun, OnRecord, Part, ShardLink
from workbench.measure.retry import RetryPolicy
from workbench.measure.target import Target
from workbench.types import Prompt

__all__ = ["MAX_WORKERS", "closed_loop"]

#: Upper bound on workers per run: far above what one Python process can keep honest.
MAX_WORKERS = 4096


async def closed_loop(
    target: Target,
    prompts: Sequence[Prompt],
    *,
    concurrency: int,
    n_requests: int,
    max_duration_s: float,
    client: httpx.AsyncClient | ClientShards | None = None,
    client_limit: int | None = None,
    retry: RetryPolicy | None = None,
    on_record: OnRecord | None = None,
    request_prefix: str = "",
    extra: dict[str, Any] | None = None,
    seed: int = 0,
    ramp_s: float = 0.0,
    link: ShardLink | None = None,
) -> LoadResult:
    """Run `n_requests` (logical) requests with `concurrency` workers, within `max_duration_s`.

    `client`: a shared client whose pool holds at least `concurrency` connections (made with
    `workbench.measure.probe.make_client`); None = one is made and closed here.
    """
    if not 1 <= concurrency <= MAX_WORKERS:
        raise ValueError(f"concurrency must be in 1..{MAX_WORKERS}, got {concurrency}")
    if n_requests < 0:
        raise ValueError("n_requests must be >= 0")
    if client_limit is not None and client_limit < 1:
        raise ValueError("client_limit must be >= 1 (or None)")
    if not 0 <= ramp_s < max_duration_s:
        raise ValueError(f"ramp_s must be in [0, max_duration_s={max_duration_s:g}), got {ramp_s:g}")
    n_workers = min(concurrency, n_requests)
    link = link or ShardLink(Part())
    part = link.part
    my_workers = part.mine(n_workers)
    limit = part.share(client_limit) if client_limit else None
    if client_limit and n_workers and not limit and my_workers:
        raise ValueError(f"client_limit {client_limit} is smaller than the number of shards ({part.of})")
    http = ClientShards.for_pool(client, max(1, len(my_workers)), target.contender.timeout_s)
    fields = {"concurrency": concurrency, "target_rate": None, "client_limit": client_limit,
              "ramp_s": ramp_s, **(extra or {})}
    run = LoadRun(http, target, prompts, profile="closed", max_duration_s=max_duration_s, fields=fields,
                  request_prefix=request_prefix,
                  on_record=on_record, retry=retry, seed=seed, link=link)
    limiter = asyncio.Semaphore(limit) if limit else None
    todo = part.of_workers(n_requests, n_workers)

    async def worker(slot: int, w: int) -> None:
        # Worker w always sends through client `slot` (its shard-local position): its keep-alive
        # connection is free whenever the worker is, so a warm run never opens a connection mid-measurement.
        if ramp_s > 0 and w:
            await asyncio.sleep(max(0.0, w * ramp_s / n_workers - run.now_s()))
        while not run.expired():
            i = next(todo, None)
            if i is None:
                break
            await run.dispatch(i, run.now_s(), limiter, slot=slot)

    try:
        await run.begin()
        loop = asyncio.get_running_loop()
        workers = [loop.create_task(worker(slot, w)) for slot, w in enumerate(my_workers)]
        await run.drain(*workers)
    except BaseException:
        run.monitor.cancel()  # the collector comes back even when a run fails
        raise
    finally:
        await http.aclose()
    params = {"concurrency": concurrency, "n_requests": n_requests, "max_duration_s": max_duration_s,
              "client_limit": client_limit, "retry": retry is not None, "ramp_s": ramp_s}
    return await run.result(params)
