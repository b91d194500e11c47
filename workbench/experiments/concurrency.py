"""Concurrency experiment: how latency and throughput move as concurrent requests rise.

Per contender, one closed-loop run per concurrency level (lowest first) after one warm-up
request, all on one shared client. What the records then say per level and across levels is
`workbench.analysis.capacity` (throughput, percentiles, errors, goodput, knee, USL); what a
fleet would cost is `workbench.analysis.projection`.

With a spend budget (`session.budget`, the notebook's `budget_usd`), every request's worst case
is held while it is in flight (`workbench.measure.budget.Budget.reserve`); the first request the
budget refuses is a `cancelled` record and the sweep ends there, for every contender (one budget).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from workbench.aio import run_sync
from workbench.measure.load import LoadResult, closed_loop
from workbench.measure.load.common import ClientShards
from workbench.session import Session
from workbench.types import Prompt

__all__ = ["client_warnings", "run_sweep"]


async def _sweep(
    session: Session, prompts: Sequence[Prompt], levels: Sequence[int], requests_per_level: int,
    max_duration_per_level_s: float, stream: bool, ramp_s: float = 0.0,
) -> list[dict[str, Any]]:
    loadgen: list[dict[str, Any]] = []
    with session.writer() as writer:
        for c in session.contenders:
            target = session.target(c, stream=stream, keep_itl=False)
            # One set of connections per contender, kept across levels (no reconnects mid-sweep),
            # sharded so the client's CPU per request does not grow with the level.
            async with ClientShards.for_pool(None, max(levels), c.timeout_s) as client:
                await closed_loop(target, prompts, concurrency=1, n_requests=1,
                                  max_duration_s=max_duration_per_level_s, client=client,
                                  on_record=writer.write, request_prefix=f"{c.name}:warmup:",
                                  extra={"phase": "warmup", "level": 1})
                for level in sorted(set(levels)):
                    res: LoadResult = await closed_loop(
                        target, prompts, concurrency=level, n_requests=max(requests_per_level, level),
                        max_duration_s=max_duration_per_level_s, client=client, on_record=writer.write,
                        request_prefix=f"{c.name}:c{level}:", extra={"phase": "sweep", "level": level},
                        ramp_s=ramp_s if level > 1 else 0.0,
                    )
                    loadgen.append({"contender": c.name, "level": level, **res.summary(),
                                    "client_notes": res.client.notes, "notes": res.notes})
                    if res.budget_stopped:
                        print(f"stopped: {c.name} at concurrency {level}: {'; '.join(res.notes)}")
                        break
                if target.budget is not None and target.budget.refused:
                    break  # the budget is shared by every contender: the sweep ends here
    (session.run.path / f"{session.experiment}_loadgen.json").write_text(json.dumps(loadgen, indent=1))
    return loadgen


def run_sweep(
    session: Session, prompts: Sequence[Prompt], *, levels: Sequence[int] = (1, 2, 4),
    requests_per_level: int = 8, max_duration_per_level_s: float = 60.0, stream: bool = True,
    ramp_s: float = 0.0,
) -> list[dict[str, Any]]:
    """Run the sweep; records go to `<run>/<experiment>.jsonl` as they complete.

    `ramp_s` > 0 spreads each level's worker starts over that many seconds (`closed_loop`):
    the steady state instead of N requests in the same instant every round.

    Each level sends max(requests_per_level, level) requests, so every worker sends at least
    one. Returns the load generator's own per-level figures (also saved as
    `<experiment>_loadgen.json`): loop lag, client CPU share, and whether the client limited.
    """
    if not levels or min(levels) < 1:
        raise ValueError("levels must be a non-empty list of integers >= 1")
    if requests_per_level < 1:
        raise ValueError("requests_per_level must be >= 1")
    if not 0 <= ramp_s < max_duration_per_level_s:
        raise ValueError(f"ramp_s must be in [0, max_duration_per_level_s={max_duration_per_level_s:g})")
    return run_sync(_sweep(session, prompts, levels, requests_per_level, max_duration_per_level_s, stream, ramp_s))


def client_warnings(loadgen: Sequence[dict[str, Any]]) -> list[str]:
    """One line per run in which the client, not the server, may have limited the numbers."""
    return [f"{row['contender']} @ concurrency {row['level']}: {row['client_limited']}"
            for row in loadgen if row.get("client_limited")]
