"""Concurrency experiment: how latency and throughput move as concurrent requests rise.

Per contender, one closed-loop run per concurrency level (lowest first) after one warm-up
request per shard, all on one set of keep-alive connections per shard. Where the load runs —
this process, or `session.shards` shard processes or Ray actors (`session.backend`) — is the
session's `load_runner()` (workbench/measure/load/pool.py); the records and tables are the same.
What the records then say per level and across levels is `workbench.analysis.capacity`
(throughput, percentiles, errors, goodput, knee, USL); what a fleet would cost is
`workbench.analysis.projection`.

With a spend budget (`session.budget`, the notebook's `budget_usd`), every request's worst case
is held while it is in flight (`workbench.measure.budget.Budget.reserve`); the first request the
budget refuses is a `cancelled` record and the sweep ends there, for every contender (one budget).

The notebook's second part is the rate-limit rehearsal (`rehearse`, below the sweep): the same
load through a limiting proxy, with each mitigation side by side.

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

import asyncio
import contextlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from workbench import metrics as timing
from workbench.aio import run_sync
from workbench.analysis import capacity, plots, projection
from workbench.analysis.capacity import poisson_rate_ci, request_ends
from workbench.analysis.catalog import format_estimate
from workbench.analysis.cost import DEFAULT_HEADROOM
from workbench.analysis.quantiles import quantile_ci
from workbench.analysis.stats import USLFit
from workbench.config import Contender
from workbench.measure.load import LoadResult, closed_loop, open_loop
from workbench.measure.machine import BUSY_FOREIGN_CORES, CpuMeter, busy_warning
from workbench.measure.probe import make_client
from workbench.measure.retry import RetryPolicy
from workbench.metrics import SLO
from workbench.serve.ratelimit import RateLimitProxy
from workbench.session import Session
from workbench.types import Prompt

if TYPE_CHECKING:
    import pandas as pd


__all__ = ["MITIGATIONS", "SweepReport", "analyse", "busy_warnings", "client_warnings", "confirm", "parse_levels",
           "rehearsal_table", "rehearse", "run_rehearsal", "run_sweep"]


#: What the server's own /metrics says while a level runs: requests running and waiting, as
#: llama-server and vLLM name them (→ the llama.cpp names the tables use).
SERVER_GAUGES = {"llamacpp:requests_processing": "requests_processing",
                 "llamacpp:requests_deferred": "requests_deferred",
                 "vllm:num_requests_running": "requests_processing",
                 "vllm:num_requests_waiting": "requests_deferred"}


def _gauges(text: str) -> dict[str, float]:
    """The gauges of a Prometheus text page that `SERVER_GAUGES` names (llama-server writes them as
    `name value` lines, vLLM with labels `name{model_name="…"} value`; a few lines of parsing, not a
    client library). Labelled series of one name are summed (one per model served)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        name = head.split("{", 1)[0]
        if name in SERVER_GAUGES:
            with contextlib.suppress(ValueError):
                key = SERVER_GAUGES[name]
                out[key] = out.get(key, 0.0) + float(value)
    return out


async def _watch_server(url: str, label: str, level: int, out: list[dict[str, Any]], stop: asyncio.Event,
                        every_s: float = 0.25) -> None:
    """Sample the server's busy slots and its queue of deferred requests while a level runs."""
    t0 = time.perf_counter()
    async with httpx.AsyncClient(timeout=2.0, trust_env=False) as client:
        while not stop.is_set():
            with contextlib.suppress(httpx.HTTPError):
                page = await client.get(url)
                if page.status_code == 200:
                    out.append({"contender": label, "level": level, "t_s": time.perf_counter() - t0,
                                **_gauges(page.text)})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every_s)


async def _sweep(
    session: Session, prompts: Sequence[Prompt], levels: Sequence[int], requests_per_level: int,
    max_duration_per_level_s: float, stream: bool, ramp_s: float = 0.0, prompt_set: str | None = None,
) -> list[dict[str, Any]]:
    loadgen: list[dict[str, Any]] = []
    samples: list[dict[str, Any]] = []
    with session.writer() as writer:
        async with session.load_runner() as runner:
            for c in session.contenders:
                target = session.target(c, stream=stream, keep_itl=False)
                # llama.cpp and vLLM servers (embedded or self-hosted) say how busy they are; a server
                # without /metrics is simply not sampled
                metrics_url = target.base_url.removesuffix("/v1") + "/metrics" if c.machine_priced else None
                # One warm-up request per shard: every shard has its connection before level 1.
                await runner.closed_loop(target, prompts, concurrency=runner.shards, n_requests=runner.shards,
                                         max_duration_s=max_duration_per_level_s, on_record=writer.write,
                                         request_prefix=f"{c.name}:warmup:", extra={"phase": "warmup", "level": 1})
                for level in sorted(set(levels)):
                    stop = asyncio.Event()
                    meter = CpuMeter(own_pids=session.own_pids())
                    watcher = (asyncio.create_task(_watch_server(metrics_url, c.name, level, samples, stop))
                               if metrics_url else None)
                    try:
                        res: LoadResult = await runner.closed_loop(
                            target, prompts, concurrency=level, n_requests=max(requests_per_level, level),
                            max_duration_s=max_duration_per_level_s, on_record=writer.write,
                            request_prefix=f"{c.name}:c{level}:",
                            extra={"phase": "sweep", "level": level, "prompt_set": prompt_set},
                            ramp_s=ramp_s if level > 1 else 0.0,
                        )
                    finally:
                        stop.set()
                        if watcher is not None:
                            await watcher
                    loadgen.append({"contender": c.name, "level": level, **res.summary(),
                                    "client_notes": res.client.notes, "notes": res.notes,
                                    "machine": meter.stop().to_dict()})
                    if res.budget_stopped:
                        print(f"stopped: {c.name} at concurrency {level}: {'; '.join(res.notes)}")
                        break
                if target.budget is not None and target.budget.refused:
                    break  # the budget is shared by every contender: the sweep ends here
    (session.run.path / f"{session.experiment}_loadgen.json").write_text(json.dumps(loadgen, indent=1))
    for note in dict.fromkeys(n for row in loadgen if not row["budget_stopped"] for n in row["notes"]):
        print(f"load generator: {note}")  # each once (a lost shard, cores shared with the server, ...)
    if samples:
        import pandas as pd

        pd.DataFrame(samples).to_csv(session.run.path / f"{session.experiment}_server.csv", index=False)
    return loadgen


def parse_levels(text: str | int) -> list[int]:
    """The notebook's `levels` ("1,4,8,16") as sorted, distinct worker counts; a value that is not
    a whole number >= 1 is a ValueError naming it (the runner checks it before any notebook runs)."""
    out: set[int] = set()
    for part in str(text).split(","):
        if not part.strip():
            continue
        try:
            level = int(part)
        except ValueError:
            raise ValueError(f"levels: {part.strip()!r} is not a whole number (e.g. levels=1,4,8,16)") from None
        if level < 1:
            raise ValueError(f"levels: {level} is not a concurrency (each level is >= 1 worker)")
        out.add(level)
    if not out:
        raise ValueError("levels: empty (e.g. levels=1,4,8,16)")
    return sorted(out)


def run_sweep(
    session: Session, prompts: Sequence[Prompt], *, levels: Sequence[int] = (1, 2, 4),
    requests_per_level: int = 8, max_duration_per_level_s: float = 60.0, stream: bool = True,
    ramp_s: float = 0.0, prompt_set: str | None = None,
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
    return run_sync(_sweep(session, prompts, levels, requests_per_level, max_duration_per_level_s, stream, ramp_s,
                           prompt_set))


def client_warnings(loadgen: Sequence[dict[str, Any]]) -> list[str]:
    """One line per run in which the client, not the server, may have limited the numbers."""
    return [f"{row['contender']} @ concurrency {row['level']}: {row['client_limited']}"
            for row in loadgen if row.get("client_limited")]


def busy_warnings(loadgen: Sequence[dict[str, Any]]) -> list[str]:
    """One line per level during which other processes kept the machine busy
    (`workbench.measure.machine`: their CPU use, not our servers' or load generator's)."""
    return [w for row in loadgen
            if (w := busy_warning(f"{row['contender']} @ concurrency {row['level']}", row.get("machine")))]


@dataclass
class SweepReport:
    """What the concurrency notebook shows, computed once; the tables are also saved as files."""

    levels: Any  # capacity.level_summary: one row per (contender, level)
    levels_text: Any
    knee: Any  # capacity.knee_and_usl table
    fits: dict[str, USLFit | None]
    projections: list[str]
    loadgen: Any
    client_warnings: list[str]
    in_flight: Any = None  # capacity.in_flight: client vs server, per level
    figure: Any = None
    busy_warnings: list[str] = field(default_factory=list)  # levels run beside a busy neighbour
    machine_measured: bool = True  # False: other processes' CPU could not be read (no /proc)

    def machine_lines(self) -> list[str]:
        """Whether other processes kept the machine busy during any level, in words."""
        if self.busy_warnings:
            return self.busy_warnings
        if not self.machine_measured:
            return ["Other processes' CPU use was not measured here (no /proc): "
                    "whether the machine was quiet is unknown."]
        return [f"OK: the machine was quiet in every level (other processes < {BUSY_FOREIGN_CORES:g} core on average)."]

    def knee_lines(self) -> list[str]:
        """Per contender, in words: the knee with its range and why the next level failed, the
        batching gain (peak throughput vs the lowest level), the USL peak and how far to trust it."""
        out = []
        for _, r in self.knee.iterrows():
            knee = r.get("knee_concurrency")
            parts = [f"{r['contender']}: knee at concurrency "
                     + (f"{knee:g}" if _given(knee) else "n/a (fewer than 2 levels)")]
            if _given(r.get("knee_low")):
                parts[0] += f" [{r['knee_low']:g}, {r['knee_high']:g}]"
            if isinstance(r.get("knee_reason"), str):
                parts[0] += f" ({r['knee_reason']})"
            if _given(r.get("best_vs_lowest")):
                parts.append(f"throughput peaks at {r['best_throughput_level']:g} in flight: "
                             f"{r['best_throughput_rps']:.2f} req/s, {r['best_vs_lowest']:.2f}× the lowest level")
            if isinstance(r.get("peak_note"), str):
                parts.append(f"USL peak: {r['peak_note']}")
            if isinstance(r.get("usl_note"), str):
                parts.append(f"USL: {r['usl_note']}")
            out.append("; ".join(parts))
        return out


def _given(x: Any) -> bool:
    return x is not None and x == x  # not None, not NaN


def analyse(session: Session, loadgen: Sequence[dict[str, Any]], *, slo_e2e_s: float | SLO, target_qps: float,
            machine_hour_usd: float, headroom: float = DEFAULT_HEADROOM) -> SweepReport:
    """Per level, the knee and the USL with their intervals, the fleet projections (under the SLO
    and, labelled as not a plan, capacity only), and whether the client limited any run. Saves
    `concurrency_levels.csv`, `concurrency_knee_usl.csv` and `concurrency_sweep.png`. `slo_e2e_s`:
    the scenario's objective (`SLO`), or seconds of p95 E2E."""
    import pandas as pd

    from workbench.results import load_records

    slo = SLO.of(slo_e2e_s)
    df = load_records(session.run.path, session.experiment)
    levels = capacity.level_summary(df, slo)
    levels.to_csv(session.run.path / f"{session.experiment}_levels.csv", index=False)
    knee, fits = capacity.knee_and_usl(levels, df)
    knee.to_csv(session.run.path / f"{session.experiment}_knee_usl.csv", index=False)
    # the plot's latency panel is p95 E2E: the SLO's line is drawn there only when that is the SLO
    fig = plots.plot_sweep(levels, fits, slo.max_s if slo.name == "e2e_p95" else None,
                           path=session.run.path / f"{session.experiment}_sweep.png")
    lines: list[str] = []
    for respect in (True, False):
        lines.append("=== under the SLO ===" if respect else
                     "=== capacity only, SLO ignored (not a valid plan for this scenario) ===")
        for p in projection.project_fleet(levels, df, session.contenders, target_qps=target_qps, slo_e2e_s=slo,
                                          machine_hour_usd=machine_hour_usd, respect_slo=respect, headroom=headroom):
            lines.append(p.headline())
            lines += [f"    - {a}" for a in p.assumptions]
    table = pd.DataFrame(loadgen)
    machine = [row.get("machine") or {} for row in loadgen]
    table["other_cpu_cores"] = [m.get("foreign_cpu_cores") for m in machine]
    cols = [c for c in ("contender", "level", "sent", "ok", "wall_s", "deadline_hit", "loop_lag_p99_s",
                        "client_cpu_share", "client_limited", "other_cpu_cores") if c in table]
    server_csv = session.run.path / f"{session.experiment}_server.csv"
    samples = pd.read_csv(server_csv) if server_csv.exists() else pd.DataFrame()
    flight = capacity.in_flight(df, samples)
    flight.to_csv(session.run.path / f"{session.experiment}_in_flight.csv", index=False)
    plots.in_flight_bars(flight, path=session.run.path / f"{session.experiment}_in_flight.png")
    return SweepReport(levels, capacity.format_levels(levels), knee, fits, lines, table[cols] if cols else table,
                       client_warnings(loadgen), flight, fig, busy_warnings(loadgen),
                       machine_measured=all(m.get("busy") is not None for m in machine))


async def _confirm(session: Session, prompts: Sequence[Prompt], rates: dict[str, float], n_requests: int,
                   max_duration_s: float) -> None:
    with session.writer() as writer:
        async with session.load_runner() as runner:
            for c in session.contenders:
                if c.name not in rates:
                    continue
                await runner.open_loop(session.target(c, keep_itl=False), prompts, rate=rates[c.name],
                                       n_requests=n_requests, max_duration_s=max_duration_s, arrival="poisson",
                                       on_record=writer.write, request_prefix=f"{c.name}:confirm:",
                                       extra={"phase": "confirm"})


def confirm(session: Session, prompts: Sequence[Prompt], report: SweepReport, *, slo_e2e_s: float | SLO,
            headroom: float = DEFAULT_HEADROOM, n_requests: int = 40, max_duration_s: float = 60.0) -> Any:
    """Check the projection's per-replica rate with a short open-loop run (Poisson arrivals) at
    that rate: the basis level's throughput × (1 − headroom), under the SLO when a level met it,
    else capacity only (said so). One row per contender: the offered rate, what completed, p95
    E2E from the schedule (so a stall cannot hide) with its interval, and whether the SLO held."""
    import pandas as pd

    from workbench.analysis.distribution import format_cell, summarize
    from workbench.results import load_records

    rates: dict[str, float] = {}
    basis: dict[str, str] = {}
    for name, g in report.levels.groupby("contender"):
        meets = g[g["meets_slo"] & (g["goodput_rps"] > 0)]
        pick, what = (meets, "goodput within the SLO") if len(meets) else (g, "capacity only (no level met the SLO)")
        col = "goodput_rps" if len(meets) else "throughput_rps"
        best = pick.sort_values(col, ascending=False).iloc[0]
        rates[str(name)] = float(best[col]) * (1.0 - headroom)
        basis[str(name)] = f"{what}: level {int(best['level'])}, {float(best[col]):.2f} req/s × {1 - headroom:g}"
    rates = {k: v for k, v in rates.items() if v > 0}
    if not rates:
        return "no level completed a request: nothing to confirm"
    slo = SLO.of(slo_e2e_s)
    run_sync(_confirm(session, prompts, rates, n_requests, max_duration_s))
    df = load_records(session.run.path, session.experiment)
    rows = []
    for name, rate in rates.items():
        g = df[(df["contender"] == name) & (df["phase"] == "confirm")]
        ok = g[g["status"] == "ok"]
        window = timing.window_s(g["scheduled_s"], capacity.request_ends(g)) if len(g) else 0.0
        dist = summarize(ok["e2e_from_schedule_s"].to_numpy(dtype=float), "e2e", qs=(95,))
        rows.append({"contender": name, "basis": basis[name], "offered req/s": round(rate, 3), "sent": len(g),
                     "ok": len(ok), "completed req/s": round(len(ok) / window, 3) if window > 0 else None,
                     "p95 E2E from schedule ms [95% CI]": format_cell(dist, "e2e", 95), "n": dist["e2e_n"],
                     "SLO held": (f"not checked here: the SLO is {slo.text}, this run measures E2E p95"
                                  if slo.name != "e2e_p95" else bool(dist["e2e_p95_high"] <= slo.max_s)
                                  if dist["e2e_p95_high"] == dist["e2e_p95_high"]
                                  else "undecided (no upper bound at this n)")})
    table = pd.DataFrame(rows)
    table.to_csv(session.run.path / f"{session.experiment}_confirm.csv", index=False)
    return table


# --------------------------------------------------------------------------------------------
# the rate-limit rehearsal

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


def rehearsal_table(df: pd.DataFrame, slo_e2e_s: float) -> pd.DataFrame:
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

