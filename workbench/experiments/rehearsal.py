"""Rate-limit rehearsal: the same load through a limiting proxy, with each mitigation side by side.

A local `RateLimitProxy` in front of one contender allows `limit` requests in flight and
answers 429 `rate_limit_exceeded` beyond that. The same logical requests are then sent four ways:

  none          closed loop at `concurrency`: the 429s are `rate_limited` records;
  client_limit  closed loop at `concurrency` behind a client semaphore of `limit`;
  backoff       closed loop at `concurrency`, retrying 429s after `retry-after` (one record per
                attempt, linked by `logical_request_id`; see `workbench.measure.retry`);
  queue         open loop (Poisson) at `queue_rate`, in-flight cap `limit`, arrivals queue.

What a user waits is read from the schedule: for each logical request, its final attempt's
`e2e_from_schedule_s` (queueing at the client, backoff sleeps and earlier attempts included).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from workbench.aio import run_sync
from workbench.analysis.capacity import poisson_rate_ci, request_ends
from workbench.analysis.catalog import format_estimate
from workbench.analysis.quantiles import quantile_ci
from workbench.config import Contender
from workbench.measure.load import LoadResult, closed_loop, open_loop
from workbench.measure.probe import make_client
from workbench.measure.retry import RetryPolicy
from workbench.serve.ratelimit import RateLimitProxy
from workbench.session import Session
from workbench.types import Prompt

__all__ = ["MITIGATIONS", "rehearsal_table", "rehearse", "run_rehearsal"]

MITIGATIONS = ("none", "client_limit", "backoff", "queue")
#: The "backoff" mitigation: up to 4 attempts, honouring retry-after (the proxy's hint).
REHEARSAL_RETRY = RetryPolicy(max_attempts=4, backoff_base_s=0.1, backoff_cap_s=2.0, max_retry_after_s=10.0)


async def _rehearse(
    session: Session, contender: Contender, base_url: str, prompts: Sequence[Prompt], *, limit: int,
    concurrency: int, n_requests: int, max_duration_s: float, queue_rate: float,
) -> dict[str, LoadResult]:
    target = session.target(contender, base_url=base_url, keep_itl=False, budget=None)
    results: dict[str, LoadResult] = {}
    common: dict[str, Any] = {"n_requests": n_requests, "max_duration_s": max_duration_s}
    with session.writer() as writer:
        async with make_client(max(concurrency, limit) + 4, contender.timeout_s) as client:
            for name in MITIGATIONS:
                extra = {"phase": "rehearsal", "mitigation": name, "proxy_limit": limit}
                kw: dict[str, Any] = dict(common, client=client, on_record=writer.write,
                                          request_prefix=f"{contender.name}:rl-{name}:", extra=extra)
                if name == "queue":
                    rate = queue_rate or _capacity(results.get("client_limit"))
                    results[name] = await open_loop(target, prompts, rate=rate, max_in_flight=limit,
                                                    on_cap="queue", **kw)
                else:
                    results[name] = await closed_loop(
                        target, prompts, concurrency=concurrency,
                        client_limit=limit if name == "client_limit" else None,
                        retry=REHEARSAL_RETRY if name == "backoff" else None, **kw)
    return results


def _capacity(res: LoadResult | None) -> float:
    """What the proxied server sustained at the limit (client_limit run): the queue's offered rate."""
    if res is None or not res.records:
        return 1.0
    ok = sum(1 for r in res.records if r.ok)
    return max(0.1, 0.9 * ok / res.wall_s) if res.wall_s > 0 else 1.0


def run_rehearsal(
    session: Session, contender: Contender, prompts: Sequence[Prompt], *, limit: int = 2,
    concurrency: int = 6, n_requests: int = 12, max_duration_s: float = 30.0, queue_rate: float = 0.0,
    retry_after_s: float = 0.2,
) -> dict[str, LoadResult]:
    """Start the proxy in front of `contender`, run the four mitigations, stop the proxy.

    `queue_rate` 0 = offer 90% of what the client_limit run sustained (so the queue is busy but
    not unboundedly growing). Records are appended to the experiment's JSONL with
    `phase="rehearsal"` and `mitigation`.
    """
    # In its own process: the proxy must not share an interpreter with the load it limits.
    with RateLimitProxy(session.base_url(contender), limit, retry_after_s).in_child() as proxy:
        return run_sync(_rehearse(session, contender, proxy.base_url, prompts, limit=limit,
                                  concurrency=concurrency, n_requests=n_requests,
                                  max_duration_s=max_duration_s, queue_rate=queue_rate))


def rehearse(session: Session, prompts: Sequence[Prompt], *, slo_e2e_s: float, contender: str = "",
             **kwargs: Any) -> Any:
    """The notebook's entry: rehearse on `contender` (default: the first local one), then the
    table (also saved as `<experiment>_rehearsal.csv`); a one-line note when there is none."""
    from workbench.results import load_records

    local = [c for c in session.contenders if c.is_local]
    target = next((c for c in session.contenders if c.name == contender), local[0] if local else None)
    if target is None:
        return "no local contender selected: rehearsal skipped"
    run_rehearsal(session, target, prompts, **kwargs)
    table = rehearsal_table(load_records(session.run.path, session.experiment), slo_e2e_s)
    table.to_csv(session.run.path / f"{session.experiment}_rehearsal.csv", index=False)
    print(f"{target.name} behind a proxy allowing {kwargs.get('limit', 2)} in flight")
    return table


def rehearsal_table(df: Any, slo_e2e_s: float) -> Any:
    """Per mitigation: attempts sent, logical requests, ok, rate_limited, user-visible p95 E2E
    (from the schedule) with its 95% CI, and goodput (ok within the SLO per second of window)."""
    import pandas as pd

    reh = df[df["phase"] == "rehearsal"]
    rows = []
    for name in MITIGATIONS:
        g = reh[reh["mitigation"] == name]
        if g.empty:
            continue
        final = g.sort_values("attempt").groupby("logical_request_id").tail(1)
        ok = final[final["status"] == "ok"]
        user = ok["e2e_from_schedule_s"].dropna().to_numpy(dtype=float)
        p95 = quantile_ci(user, 95)
        ends = request_ends(g).fillna(g["scheduled_s"])  # never sent: ended where it was due
        window = float(ends.max() - g["scheduled_s"].min())
        good = poisson_rate_ci(int((ok["e2e_from_schedule_s"] <= slo_e2e_s).sum()), window)
        thr = poisson_rate_ci(len(ok), window)
        rows.append({
            "mitigation": name,
            "attempts sent": int(g["sent"].fillna(True).astype(bool).sum()),
            "logical requests": len(final),
            "ok": len(ok),
            "rate_limited records": int((g["error_class"] == "rate_limited").sum()),
            "other errors": int(((g["status"] != "ok") & (g["error_class"] != "rate_limited")).sum()),
            "p95 E2E from schedule ms [95% CI]": format_estimate(p95, scale=1000),
            "ok req/s [95% CI]": format_estimate(thr),
            f"goodput req/s (E2E ≤ {slo_e2e_s * 1000:g} ms) [95% CI]": format_estimate(good),
            "window s": round(window, 2),
        })
    return pd.DataFrame(rows)

