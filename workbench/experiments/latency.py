"""Latency experiment: single requests, one at a time, so latency is the model's and not a queue's.

Per contender, in this order:
  1. `cold` — the first request after the server started (embedded models, started by this
     session) or on a fresh connection (hosted APIs: DNS, TLS and any provider-side cold path);
  2. `warmup` — `warmup` requests, recorded but left out of the statistics;
  3. `warm` — `n_requests` measured requests, prompts cycled in order.
Warm requests of all contenders are interleaved round-robin so that a drift of the machine
(another process, thermal throttling) hits every contender alike, and warm request i of every
contender carries the same prompt: contenders are compared paired, prompt by prompt.

On a labelled prompt set (the routing messages: `meta.expected`), each answer is also graded
where it is recorded (`expected`, `route_label`, `route_correct`; `workbench.analysis.intents`),
so the realtime scenario's quality axis comes from the same requests as its latency.

Request ids are stable (`{contender}:{phase}:{i}`), so a resumed run (`workbench run --resume`,
`session.resume`) skips every id that already has a record. In particular the cold request is
never repeated: a resumed run's cold request is the original one, measured on the first
server (a second "cold" request on a restarted server would be a different measurement). If the
run died before its cold request finished, the resumed run sends it, on its own fresh server.

With a budget (`session.budget`, the run's: `workbench.measure.budget`), each request is first
checked at its worst case (input estimate + `max_tokens` output) by `probe`; the first refusal is
recorded as a `cancelled` record ("budget exhausted: spent $X of $Y") and the experiment stops
sending.

The notebook also records every contender's integration-effort facts (`collect_capabilities`,
below), saved as `capabilities.json`. The facts come from
`workbench.measure.capabilities.probe_capabilities` (observed where the API allows). For embedded
models the served context window is known exactly — the workbench starts llama.cpp with it — so
it is filled in as declared when the listing reports none.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from workbench.aio import run_sync
from workbench.analysis import distribution, stats
from workbench.analysis.catalog import format_value
from workbench.analysis.intents import grade_route, labels_of, unread_note
from workbench.embedded import LOCAL_MODELS
from workbench.measure.budget import BudgetExhausted
from workbench.measure.capabilities import probe_capabilities
from workbench.measure.probe import make_client, probe
from workbench.results import CAPABILITIES_FILE
from workbench.session import Session
from workbench.types import Prompt, Record

if TYPE_CHECKING:
    import pandas as pd


__all__ = ["METRICS", "capabilities_table", "cold_start_table", "collect_capabilities",
           "format_summary", "latency_summary", "routing_notes", "run_latency", "server_overhead"]

METRICS = ("ttft_s", "e2e_s", "tpot_s")


async def _run(
    session: Session, prompts: Sequence[Prompt], n_requests: int, warmup: int, stream: bool, prompt_set: str | None
) -> list[Record]:
    records: list[Record] = []
    done = session.completed_ids() if session.resume else set()
    budget = session.budget
    labels = labels_of(p.meta for p in prompts)
    if done:
        print(f"resuming: {len(done)} requests already recorded are skipped")
    with session.writer() as writer:

        async def one(c: Any, prompt: Prompt, phase: str, i: int, client: Any, **extra: Any) -> None:
            request_id = f"{c.name}:{phase}:{i}"
            if request_id in done:
                return
            fields = {"phase": phase, "seq": i, "prompt_set": prompt_set, **extra}
            refused = budget.refused if budget is not None else 0
            rec = await probe(client, targets[c.name], prompt, request_id=request_id, extra=fields)
            if budget is not None and budget.refused > refused:  # not sent: the spend would pass the cap
                writer.write(rec)
                raise BudgetExhausted(budget.spent_usd, budget.max_usd)
            if labels and prompt.meta.get("expected"):
                label, correct = grade_route(rec.output_text if rec.ok else None, prompt.meta, labels, prompt.text)
                rec.extra.update(expected=prompt.meta["expected"], route_label=label,
                                 route_correct=correct if rec.ok else None)
            writer.write(rec)
            records.append(rec)

        targets = {c.name: session.target(c, stream=stream) for c in session.contenders}
        clients = {c.name: make_client(4, c.timeout_s) for c in session.contenders}
        try:
            await _phases(session, prompts, n_requests, warmup, clients, one)
        except BudgetExhausted as exc:
            print(f"stopped: {exc}")
        finally:
            for client in clients.values():
                await client.aclose()
    if labels:
        for note in routing_notes(records, labels):
            print(f"warning: {note}")
    return records


def routing_notes(records: Sequence[Record], labels: Sequence[str]) -> list[str]:
    """A warning per contender none of whose graded answers named a label
    (`workbench.analysis.intents.unread_note`)."""
    graded: dict[str, list[Any]] = {}
    for rec in records:
        if rec.extra.get("route_correct") is not None:
            graded.setdefault(rec.contender, []).append(rec.extra.get("route_label"))
    notes = [unread_note(name, len(read), sum(x is not None for x in read), labels)
             for name, read in sorted(graded.items())]
    return [n for n in notes if n]


async def _phases(session: Session, prompts: Sequence[Prompt], n_requests: int, warmup: int,
                  clients: dict[str, Any], one: Any) -> None:
    """The order of requests: per contender cold then warmup; then warm, round-robin."""
    for c in session.contenders:
        server = session.server_for(c)
        cold_extra: dict[str, Any] = {
            "cold_kind": "server_start" if server is not None else "new_connection",
            "server_startup_s": server.startup_s if server is not None else None,
        }
        await one(c, prompts[0], "cold", 0, clients[c.name], **cold_extra)
        for i in range(warmup):
            await one(c, prompts[(i + 1) % len(prompts)], "warmup", i, clients[c.name])
    for i in range(n_requests):
        for c in session.contenders:
            await one(c, prompts[i % len(prompts)], "warm", i, clients[c.name])


def run_latency(
    session: Session, prompts: Sequence[Prompt], *, n_requests: int = 20, warmup: int = 2,
    stream: bool = True, prompt_set: str | None = None,
) -> list[Record]:
    """Run the experiment; records are appended to `<run>/latency.jsonl` as they complete, each
    naming `prompt_set` (what the prompts were loaded from), so a scenario is scored only on the
    latency of its own prompts."""
    if n_requests < 1:
        raise ValueError("n_requests must be >= 1")
    return run_sync(_run(session, prompts, n_requests, warmup, stream, prompt_set))


def latency_summary(df: pd.DataFrame) -> pd.DataFrame:
    """One row per contender over its successful warm requests: TTFT, E2E and TPOT distributions
    (`workbench.analysis.distribution`: n, p50/p95/p99 with order-statistic intervals) and, on a
    labelled prompt set, the routing accuracy with its Wilson interval."""
    import pandas as pd

    warm = df[(df["status"] == "ok") & (df.get("phase", "warm") == "warm")]
    rows = []
    for contender, g in warm.groupby("contender", sort=True):
        row: dict[str, Any] = {"contender": contender}
        for field in METRICS:
            row.update(distribution.summarize(g[field].to_numpy(dtype=float), distribution.key_of(field)))
        if "route_correct" in g and g["route_correct"].notna().any():
            graded = g["route_correct"].dropna().astype(bool)
            acc = stats.wilson_interval(int(graded.sum()), len(graded))
            row.update(route_accuracy=acc.value, route_accuracy_low=acc.low, route_accuracy_high=acc.high,
                       route_accuracy_n=acc.n)
            if "route_label" in g:  # graded answers that named no label: a 0% of these is unread
                row["route_unread_n"] = int(g.loc[g["route_correct"].notna(), "route_label"].isna().sum())
        rows.append(row)
    return pd.DataFrame(rows)


def format_summary(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary as text cells `value [low, high]` in milliseconds (and routing accuracy in %)."""
    table = distribution.format_table(summary, [distribution.key_of(m) for m in METRICS], ["contender"])
    if "route_accuracy" in summary:
        unread = summary["route_unread_n"] if "route_unread_n" in summary else [float("nan")] * len(summary)
        table["routing accuracy % [95% CI]"] = [
            format_value("route_accuracy", v, lo, hi, int(n))
            + (f" (no label read in {int(u)})" if u == u and u > 0 else "") if n == n else "—"
            for v, lo, hi, n, u in zip(summary["route_accuracy"], summary["route_accuracy_low"],
                                       summary["route_accuracy_high"], summary["route_accuracy_n"], unread,
                                       strict=True)]
    return table


def server_overhead(df: pd.DataFrame) -> pd.DataFrame:
    """Per contender, over successful warm streamed requests whose server reported `timings`:
    client TTFT minus the server's own prompt time — what the request spent outside the model's
    prefill (connect, HTTP, queueing for a slot, sending the first token) — as a distribution
    (median and p95 with order-statistic intervals, milliseconds in the formatted table)."""
    import pandas as pd

    warm = df[(df["status"] == "ok") & (df.get("phase", "warm") == "warm")]
    if "server_prompt_ms" not in warm:
        return pd.DataFrame()
    rows = []
    for contender, g in warm.groupby("contender", sort=True):
        gap = (g["ttft_s"] - g["server_prompt_ms"] / 1000.0).dropna().to_numpy(dtype=float)
        if len(gap):
            rows.append({"contender": contender, **distribution.summarize(gap, "overhead", qs=(50, 95))})
    table = pd.DataFrame(rows)
    return distribution.format_table(table, ["overhead"], ["contender"], qs=(50, 95)) if len(table) else table


def cold_start_table(df: pd.DataFrame) -> pd.DataFrame:
    """The cold request of each contender beside its warm median, and the server start time."""
    import pandas as pd

    rows = []
    for contender, g in df.groupby("contender", sort=True):
        cold = g[g["phase"] == "cold"]
        warm = g[(g["phase"] == "warm") & (g["status"] == "ok")]
        if cold.empty:
            continue
        c = cold.iloc[0]
        rows.append({
            "contender": contender,
            "cold_kind": c.get("cold_kind"),
            "server_startup_s": c.get("server_startup_s"),
            "cold_ttft_s": c["ttft_s"],
            "cold_e2e_s": c["e2e_s"],
            "warm_median_e2e_s": warm["e2e_s"].median() if not warm.empty else None,
            "status": c["status"],
        })
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# integration facts


async def _collect(session: Session) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    async with make_client(4) as client:
        for c in session.contenders:
            facts = await probe_capabilities(client, session.target(c))
            if c.local is not None and facts.get("context_window", {}).get("value") is None:
                facts["context_window"] = {"value": LOCAL_MODELS[c.local].n_ctx, "source": "declared",
                                           "detail": "n_ctx the workbench serves this model with"}
            out[c.name] = facts
    return out


def collect_capabilities(session: Session) -> dict[str, dict[str, Any]]:
    """Probe each contender (a few tiny requests each) and write `<run>/capabilities.json`,
    merged with facts already there from other notebooks."""
    facts = run_sync(_collect(session))
    path = session.run.path / CAPABILITIES_FILE
    existing = json.loads(path.read_text()) if path.exists() else {}
    existing.update(facts)
    path.write_text(json.dumps(existing, indent=2, default=str) + "\n")
    return facts


def capabilities_table(facts: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Facts × contenders, each cell `value (source)`."""
    import pandas as pd

    names = sorted({f for per in facts.values() for f in per})
    return pd.DataFrame(
        {c: [f"{per[f]['value']} ({per[f]['source']})" if f in per else "" for f in names]
         for c, per in facts.items()},
        index=names,
    )
