"""How fast and how faithful is the load generator? Two measurements, one report.

1. Rate: the highest request rate one process sustains on one core against a null server
   (answers every request instantly with a tiny fixed JSON; a separate process pinned to the
   other core when there is one), the client's CPU time per request, and — in the same run,
   against the same server — `wrk` for comparison (skipped, and said so, if not installed).
2. Fidelity: TTFT and E2E measured through the real probe against the mock server, minus
   the configured truth, at several concurrency levels (p50/p99 of the error, in ms), each
   twice: on cold clients (connects inside the measured run) and warm ones (keep-alive).

    PYTHONPATH=. .venv/bin/python bench/loadgen_bench.py [--duration 3] [--levels 1,64,512]

Numbers go to stdout (and, with --json PATH, to a file); bench/README.md records a run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import subprocess
import sys
from typing import Any

import httpx

from workbench.config import load_contenders
from workbench.measure.load import closed_loop
from workbench.measure.load.common import ClientShards
from workbench.measure.target import Target
from workbench.serve.mock import MockServer, Scenario
from workbench.types import Prompt


def _pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {cpu})


def _cpus() -> tuple[int | None, int]:
    """(server cpu, client cpu): the other core for the server when there are two or more."""
    n = os.cpu_count() or 1
    return (1, 0) if n > 1 else (None, 0)


async def _rate(base_url: str, concurrency: int, duration_s: float) -> dict[str, Any]:
    c = load_contenders().get("qwen2.5-coder-0.5b")
    target, prompts = Target(c, base_url, stream=False, keep_itl=False), [Prompt("p", "x")]
    await closed_loop(target, prompts, concurrency=concurrency, n_requests=concurrency * 4, max_duration_s=5)  # warm
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    res = await closed_loop(target, prompts, concurrency=concurrency, n_requests=10_000_000,
                            max_duration_s=duration_s)
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    ok = sum(1 for r in res.records if r.ok)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    return {"concurrency": concurrency, "requests_ok": ok, "errors": len(res.records) - ok,
            "wall_s": res.wall_s, "rps": ok / res.wall_s, "cpu_ms_per_request": 1000 * cpu / max(1, ok),
            "client_cpu_share": res.client.cpu_share, "loop_lag_p99_ms": res.client.loop_lag_p99_s * 1000}


def _wrk(url: str, concurrency: int, duration_s: float, cpu: int) -> dict[str, Any]:
    exe = shutil.which("wrk")
    if exe is None:
        return {"skipped": "wrk is not installed (Debian: apt-get install wrk)"}
    cmd = [exe, "-t1", f"-c{concurrency}", f"-d{max(1, round(duration_s))}s", url]
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        cmd = ["taskset", "-c", str(cpu), *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 30).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return {"rps": float(m.group(1)) if m else None, "command": " ".join(cmd), "raw": out.strip()}


def _q(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))] if xs else float("nan")


async def _fidelity(base_url: str, cfg: Scenario, concurrency: int, rounds: int,
                    warm: bool = False, ramp_s: float = 0.0) -> dict[str, Any]:
    """Cold: the measured run opens its own connections (the first round's TTFT includes the
    TCP connects of every worker at once). Warm: the same clients first carry one request per
    worker, so every measured request finds an open keep-alive connection (steady state).

    Two errors per request: against the configured truth (everything, the server's own
    lateness included) and against what the server noted it did (`GET /v1/truth`: request read,
    first and last chunk sent) — the client's error alone."""
    c = load_contenders().get("qwen2.5-coder-0.5b")
    mode = ("warm" if warm else "cold") + (f"+ramp {ramp_s:g}s" if ramp_s else "")
    tag = f"c{concurrency}-{mode}"
    n = concurrency * rounds
    prompts = [Prompt(f"{tag}-{i}", f"{tag}-{i}") for i in range(n)]
    target, warmup = Target(c, base_url, keep_itl=False), [Prompt("w", "w")]
    await closed_loop(target, warmup, concurrency=min(concurrency, 8), n_requests=8, max_duration_s=10)  # warm
    async with ClientShards.for_pool(None, concurrency, c.timeout_s) as shards:
        client = shards if warm else None
        if warm:
            await closed_loop(target, warmup, concurrency=concurrency, n_requests=concurrency, max_duration_s=60,
                              client=shards)
        async with httpx.AsyncClient() as h:  # forget the warm-up's notes
            await h.get(base_url + "/truth")
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        res = await closed_loop(target, prompts, concurrency=concurrency, n_requests=n, max_duration_s=120,
                                client=client, ramp_s=ramp_s)
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
    async with httpx.AsyncClient() as h:
        truth: dict[str, list[int]] = (await h.get(base_url + "/truth")).json()
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    ok = [r for r in res.records if r.ok and r.ttft_s is not None and r.e2e_s is not None]
    ttft_err = [1000 * (r.ttft_s - cfg.ttft_s) for r in ok if r.ttft_s is not None]
    e2e_err = [1000 * (r.e2e_s - cfg.e2e_s) for r in ok if r.e2e_s is not None]
    client_ttft, client_e2e, late = [], [], []
    for r in ok:
        note = truth.get(r.prompt_id or "")
        if note is None or r.ttft_s is None or r.e2e_s is None:
            continue
        read_ns, first_ns, last_ns, due_ns = note
        client_ttft.append(1000 * r.ttft_s - (first_ns - read_ns) / 1e6)
        client_e2e.append(1000 * r.e2e_s - (last_ns - read_ns) / 1e6)
        late.append((first_ns - due_ns) / 1e6)
    return {"concurrency": concurrency, "connections": mode, "ramp_s": ramp_s, "n": len(ok),
            "errors": len(res.records) - len(ok), "cpu_ms_per_request": 1000 * cpu / max(1, len(ok)),
            "ttft_err_p50_ms": _q(ttft_err, 0.5), "ttft_err_p99_ms": _q(ttft_err, 0.99),
            "e2e_err_p50_ms": _q(e2e_err, 0.5), "e2e_err_p99_ms": _q(e2e_err, 0.99),
            "n_noted": len(client_ttft),
            "client_ttft_err_p50_ms": _q(client_ttft, 0.5), "client_ttft_err_p99_ms": _q(client_ttft, 0.99),
            "client_ttft_err_max_ms": max(client_ttft, default=float("nan")),
            "client_e2e_err_p50_ms": _q(client_e2e, 0.5), "client_e2e_err_p99_ms": _q(client_e2e, 0.99),
            "server_late_p50_ms": _q(late, 0.5), "server_late_p99_ms": _q(late, 0.99),
            "loop_lag_p99_ms": res.client.loop_lag_p99_s * 1000, "client_cpu_share": res.client.cpu_share,
            "client_limited": "; ".join(res.client_warnings()) or None}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=3.0, help="seconds per rate measurement")
    p.add_argument("--rate-concurrency", default="16,64", help="closed-loop workers for the rate runs")
    p.add_argument("--levels", default="1,64,512", help="concurrency levels for the fidelity runs")
    p.add_argument("--rounds", type=int, default=2, help="requests per worker in each fidelity run")
    p.add_argument("--ttft-ms", type=float, default=500.0)
    p.add_argument("--itl-ms", type=float, default=50.0)
    p.add_argument("--n-chunks", type=int, default=5)
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    server_cpu, client_cpu = _cpus()
    report: dict[str, Any] = {"cpus": os.cpu_count(), "server_cpu": server_cpu, "client_cpu": client_cpu,
                              "loadavg_before": os.getloadavg()}
    print(f"machine: {os.cpu_count()} cpus, load average {os.getloadavg()[0]:.2f}; "
          f"server pinned to {server_cpu}, client to {client_cpu}")
    with MockServer(Scenario(null=True)).in_child(cpu=server_cpu) as null:
        _pin(client_cpu)
        report["rate"] = []
        for conc in (int(x) for x in args.rate_concurrency.split(",")):
            ours = asyncio.run(_rate(null.base_url, conc, args.duration))
            wrk = _wrk(null.base_url + "/chat/completions", conc, args.duration, client_cpu)
            ratio = ours["rps"] / wrk["rps"] if wrk.get("rps") else None
            report["rate"].append({"workbench": ours, "wrk": {k: v for k, v in wrk.items() if k != "raw"},
                                   "ratio_workbench_to_wrk": ratio})
            vs = f"wrk {wrk['rps']:.0f} req/s; ratio {ratio:.3f}" if ratio else f"wrk: {wrk.get('skipped')}"
            print(f"rate c={conc}: workbench {ours['rps']:.0f} req/s "
                  f"({ours['cpu_ms_per_request']:.2f} ms CPU/request, "
                  f"loop lag p99 {ours['loop_lag_p99_ms']:.1f} ms); {vs}")
    cfg = Scenario.timed(ttft_ms=args.ttft_ms, itl_ms=args.itl_ms, n_chunks=args.n_chunks)
    report["fidelity_truth"] = {"ttft_ms": cfg.ttft_s * 1000, "e2e_ms": cfg.e2e_s * 1000, "n_chunks": cfg.n_chunks}
    report["fidelity"] = []
    with MockServer(cfg).in_child(cpu=server_cpu) as syn:
        modes = ((False, 0.0), (True, 0.0), (True, cfg.e2e_s))
        for conc, (warm, ramp) in ((int(x), m) for x in args.levels.split(",") for m in modes):
            f = asyncio.run(_fidelity(syn.base_url, cfg, conc, args.rounds, warm, ramp))
            report["fidelity"].append(f)
            print(f"fidelity c={conc} {f['connections']}: n={f['n']} vs configured truth: TTFT error p50 "
                  f"{f['ttft_err_p50_ms']:.2f} / p99 {f['ttft_err_p99_ms']:.2f} ms, E2E p50 {f['e2e_err_p50_ms']:.2f}"
                  f" / p99 {f['e2e_err_p99_ms']:.2f} ms | vs what the server did (n={f['n_noted']}): TTFT error"
                  f" p50 {f['client_ttft_err_p50_ms']:.2f} / p99 {f['client_ttft_err_p99_ms']:.2f} ms, E2E p50 "
                  f"{f['client_e2e_err_p50_ms']:.2f} / p99 {f['client_e2e_err_p99_ms']:.2f} ms | server late p50 "
                  f"{f['server_late_p50_ms']:.2f} / p99 {f['server_late_p99_ms']:.2f} ms | "
                  f"loop lag p99 {f['loop_lag_p99_ms']:.1f} ms; "
                  f"{f['cpu_ms_per_request']:.2f} ms CPU/request"
                  + (f"  [client limited: {f['client_limited']}]" if f["client_limited"] else ""))
    report["loadavg_after"] = os.getloadavg()
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
