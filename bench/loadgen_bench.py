"""How fast and how faithful is the load generator? Three measurements, one report.

1. Rate: the highest request rate one process sustains on one core against a null server
   (answers every request instantly with a tiny fixed JSON; a separate process pinned to the
   other core when there is one), on uvloop and on asyncio's loop, the client's CPU time per
   request, and — in the same run, against the same server, pinned to the same core — Locust's
   FastHttpUser (the `bench` extra; one process, no wait between tasks) and `wrk` (each
   skipped, and said so, if not installed).
2. Fidelity: TTFT and E2E measured through the real probe against the mock server, minus
   the configured truth, at several concurrency levels (p50/p99 of the error, in ms), each
   three ways: on cold clients (connects inside the measured run), warm ones (keep-alive) and
   warm with the workers' starts ramped over one E2E.
3. Shards: the highest fidelity level, warm+ramp, run by 1 and by 2 shard processes
   (`workbench.measure.load.pool.ShardPool`): rate, client TTFT error, CPU per request; and the
   coordinator's own CPU per record at full rate (2 shards against the null server, every
   record written) — what one run's single writer can take.

Every measurement also says how much CPU the rest of the machine used meanwhile
(`/proc/stat` busy time minus this process, its children and the server): another user's work
disturbs the numbers, and the report says by how much.

    PYTHONPATH=. .venv/bin/python bench/loadgen_bench.py [--duration 3] [--levels 1,64,512] [--shards 1,2]

Numbers go to stdout (and, with --json PATH, to a file); bench/README.md records a run.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from workbench.aio import LOOP_ENV, run
from workbench.config import load_contenders
from workbench.measure.load import closed_loop
from workbench.measure.load.common import ClientShards
from workbench.measure.load.pool import ShardPool
from workbench.measure.target import Target
from workbench.results import RecordWriter
from workbench.serve.mock import MockScript, MockServer
from workbench.types import Prompt

_TICK = os.sysconf("SC_CLK_TCK")


def _busy_s() -> float:
    """CPU seconds the whole machine has been busy (all cores, /proc/stat)."""
    with open("/proc/stat") as fh:
        f = [int(x) for x in fh.readline().split()[1:]]
    return (sum(f[:8]) - f[3] - f[4]) / _TICK  # all but idle and iowait


def _proc_cpu_s(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            f = fh.read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / _TICK
    except (OSError, IndexError, ValueError):
        return 0.0


def _own_cpu_s(pids: list[int]) -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime + sum(_proc_cpu_s(p) for p in pids)


@contextmanager
def others(pids: list[int], out: dict[str, Any]) -> Iterator[None]:
    """Measures the CPU the rest of the machine used during the block: `others_cores` = busy
    CPU-seconds not ours (this process, its children, `pids`) per second of wall time."""
    b0, o0, t0 = _busy_s(), _own_cpu_s(pids), time.perf_counter()
    yield
    wall = time.perf_counter() - t0
    other = max(0.0, (_busy_s() - b0) - (_own_cpu_s(pids) - o0))
    out["others_cores"] = other / wall if wall > 0 else float("nan")


def _pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {cpu})


def _cpus() -> tuple[int | None, int]:
    """(server cpu, client cpu): the other core for the server when there are two or more."""
    n = os.cpu_count() or 1
    return (1, 0) if n > 1 else (None, 0)


def _rate_on(loop: str, base_url: str, concurrency: int, duration_s: float, server_pid: int) -> dict[str, Any]:
    """`_rate` on one event loop (`uvloop` or `asyncio`), with the machine's other CPU use."""
    before = os.environ.get(LOOP_ENV)
    os.environ[LOOP_ENV] = loop
    try:
        out: dict[str, Any] = {}
        with others([server_pid], out):
            res = run(_rate(base_url, concurrency, duration_s))
        return {**res, **out}
    finally:
        if before is None:
            os.environ.pop(LOOP_ENV, None)
        else:
            os.environ[LOOP_ENV] = before


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
            "client_cpu_share": res.client.cpu_share, "loop_lag_p99_ms": res.client.loop_lag_p99_s * 1000,
            "loop": res.client.loop}


async def _coordinator(base_url: str, shards: int, concurrency: int, duration_s: float) -> dict[str, Any]:
    """The coordinator's own cost at a high record rate: a closed loop split over `shards` shard
    processes against the null server, every record streamed back and written to JSONL."""
    c = load_contenders().get("qwen2.5-coder-0.5b")
    target = Target(c, base_url, stream=False, keep_itl=False)
    prompts = [Prompt(f"p{i}", f"x{i}") for i in range(100)]
    with tempfile.TemporaryDirectory() as tmp:
        writer = RecordWriter(Path(tmp) / "records.jsonl")
        async with ShardPool(shards, "processes") as pool:
            await pool.closed_loop(target, prompts, concurrency=concurrency, n_requests=concurrency * 4,
                                   max_duration_s=10)  # warm
            ru0 = resource.getrusage(resource.RUSAGE_SELF)
            res = await pool.closed_loop(target, prompts, concurrency=concurrency, n_requests=10_000_000,
                                         max_duration_s=duration_s, on_record=writer.write)
            ru1 = resource.getrusage(resource.RUSAGE_SELF)
        writer.close()
    ok = sum(1 for r in res.records if r.ok)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    shard_cpu = sum(r.get("process_cpu_s") or 0.0 for r in res.shards)
    return {"shards": shards, "concurrency": concurrency, "requests_ok": ok, "rps": ok / res.wall_s,
            "coordinator_cpu_ms_per_record": 1000 * cpu / max(1, len(res.records)),
            "shard_cpu_ms_per_request": 1000 * shard_cpu / max(1, ok), "shards_lost": len(res.shards_lost)}


_LOCUSTFILE = """
from locust import constant, task
from locust.contrib.fasthttp import FastHttpUser

BODY = b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 8}'


class Null(FastHttpUser):
    wait_time = constant(0)

    @task
    def chat(self):
        self.client.post("/v1/chat/completions", data=BODY, headers={"content-type": "application/json"})
"""


def _locust(root_url: str, concurrency: int, duration_s: float, cpu: int, server_pid: int) -> dict[str, Any]:
    """Locust's FastHttpUser in one process (headless, every user spawned at once, no wait between
    tasks) against the same server, pinned to the client's core: requests / run time."""
    exe = shutil.which("locust") or str(Path(sys.executable).parent / "locust")
    if not Path(exe).exists():
        return {"skipped": "locust is not installed (pip install 'llm-workbench[bench]')"}
    with tempfile.TemporaryDirectory() as tmp:
        lf = Path(tmp) / "locustfile.py"
        lf.write_text(_LOCUSTFILE)
        secs = max(1, round(duration_s))
        cmd = [exe, "-f", str(lf), "--headless", "-u", str(concurrency), "-r", str(concurrency * 100), "-t",
               f"{secs}s", "--host", root_url, "--csv", str(Path(tmp) / "s"), "--only-summary", "--loglevel",
               "ERROR", "--skip-log-setup"]
        if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
            cmd = ["taskset", "-c", str(cpu), *cmd]
        out: dict[str, Any] = {}
        with others([server_pid], out):
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=secs + 60)
        rows = list(csv.DictReader((Path(tmp) / "s_stats.csv").open())) if (Path(tmp) / "s_stats.csv").exists() else []
    agg = next((r for r in rows if r.get("Name") == "Aggregated"), None)
    if agg is None:
        return {"skipped": f"locust gave no stats (exit {proc.returncode}): {proc.stderr[-300:]}"}
    n, fails = int(agg["Request Count"]), int(agg["Failure Count"])
    # Locust's own rate (requests over its stats window, from its first request) is the figure
    # compared: it is higher than requests / -t, which also counts Locust's start-up.
    return {"rps": float(agg["Requests/s"]) * (n - fails) / max(1, n), "requests": n, "failures": fails,
            "rps_over_run_time": (n - fails) / secs, "command": " ".join(cmd), **out}


def _wrk(url: str, concurrency: int, duration_s: float, cpu: int, server_pid: int) -> dict[str, Any]:
    exe = shutil.which("wrk")
    if exe is None:
        return {"skipped": "wrk is not installed (Debian: apt-get install wrk)"}
    cmd = [exe, "-t1", f"-c{concurrency}", f"-d{max(1, round(duration_s))}s", url]
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        cmd = ["taskset", "-c", str(cpu), *cmd]
    o: dict[str, Any] = {}
    with others([server_pid], o):
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 30).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return {"rps": float(m.group(1)) if m else None, "command": " ".join(cmd), "raw": out.strip(), **o}


def _q(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))] if xs else float("nan")


async def _fidelity(base_url: str, cfg: MockScript, concurrency: int, rounds: int,
                    warm: bool = False, ramp_s: float = 0.0, shards: int = 0) -> dict[str, Any]:
    """Cold: the measured run opens its own connections (the first round's TTFT includes the
    TCP connects of every worker at once). Warm: the same clients first carry one request per
    worker, so every measured request finds an open keep-alive connection (steady state).
    `shards` ≥ 1: the shard comparison — every record is written to a JSONL file as a run writes
    it, and with more than one shard the run is split over that many shard processes (warm only:
    a shard keeps its connections between the warm-up and the measured run); the coordinator's
    own CPU (merging, writing) is reported apart. 0: the standard runs (records kept in memory).

    Two errors per request: against the configured truth (everything, the server's own
    lateness included) and against what the server noted it did (`GET /v1/truth`: request read,
    first and last chunk sent) — the client's error alone."""
    c = load_contenders().get("qwen2.5-coder-0.5b")
    mode = ("warm" if warm else "cold") + (f"+ramp {ramp_s:g}s" if ramp_s else "")
    tag = f"c{concurrency}-{mode}-s{shards}"
    n = concurrency * rounds
    prompts = [Prompt(f"{tag}-{i}", f"{tag}-{i}") for i in range(n)]
    target, warmup = Target(c, base_url, keep_itl=False), [Prompt("w", "w")]
    await closed_loop(target, warmup, concurrency=min(concurrency, 8), n_requests=8, max_duration_s=10)  # warm
    shard_rows: list[dict[str, Any]] = []
    coordinator_cpu = None
    tmp = tempfile.TemporaryDirectory()
    writer = RecordWriter(Path(tmp.name) / "records.jsonl") if shards else None
    on_record = writer.write if writer is not None else None
    if shards > 1:
        if not warm:
            raise ValueError("sharded fidelity runs are warm runs")
        async with ShardPool(shards, "processes") as pool:
            await pool.closed_loop(target, warmup, concurrency=concurrency, n_requests=concurrency, max_duration_s=60)
            async with httpx.AsyncClient() as h:  # forget the warm-up's notes
                await h.get(base_url + "/truth")
            ru0 = resource.getrusage(resource.RUSAGE_SELF)
            res = await pool.closed_loop(target, prompts, concurrency=concurrency, n_requests=n, max_duration_s=120,
                                         ramp_s=ramp_s, on_record=on_record)
            ru1 = resource.getrusage(resource.RUSAGE_SELF)
        coordinator_cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
        cpu = sum(r.get("process_cpu_s") or 0.0 for r in res.shards)
        shard_rows = res.shards
    else:
        async with ClientShards.for_pool(None, concurrency, c.timeout_s) as client_shards:
            client = client_shards if warm else None
            if warm:
                await closed_loop(target, warmup, concurrency=concurrency, n_requests=concurrency, max_duration_s=60,
                                  client=client_shards)
            async with httpx.AsyncClient() as h:  # forget the warm-up's notes
                await h.get(base_url + "/truth")
            ru0 = resource.getrusage(resource.RUSAGE_SELF)
            res = await closed_loop(target, prompts, concurrency=concurrency, n_requests=n, max_duration_s=120,
                                    client=client, ramp_s=ramp_s, on_record=on_record)
            ru1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    if writer is not None:
        writer.close()
    tmp.cleanup()
    async with httpx.AsyncClient() as h:
        truth: dict[str, list[int]] = (await h.get(base_url + "/truth")).json()
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
    sent = sorted(r.extra["sent_s"] for r in ok)
    return {"concurrency": concurrency, "connections": mode, "shards": shards, "ramp_s": ramp_s, "n": len(ok),
            "errors": len(res.records) - len(ok), "cpu_ms_per_request": 1000 * cpu / max(1, len(ok)),
            "coordinator_cpu_ms_per_request": None if coordinator_cpu is None else
            1000 * coordinator_cpu / max(1, len(ok)),
            "rate_rps": (len(sent) - 1) / (sent[-1] - sent[0]) if len(sent) > 1 and sent[-1] > sent[0] else None,
            "ttft_err_p50_ms": _q(ttft_err, 0.5), "ttft_err_p99_ms": _q(ttft_err, 0.99),
            "e2e_err_p50_ms": _q(e2e_err, 0.5), "e2e_err_p99_ms": _q(e2e_err, 0.99),
            "n_noted": len(client_ttft),
            "client_ttft_err_p50_ms": _q(client_ttft, 0.5), "client_ttft_err_p99_ms": _q(client_ttft, 0.99),
            "client_ttft_err_max_ms": max(client_ttft, default=float("nan")),
            "client_e2e_err_p50_ms": _q(client_e2e, 0.5), "client_e2e_err_p99_ms": _q(client_e2e, 0.99),
            "server_late_p50_ms": _q(late, 0.5), "server_late_p99_ms": _q(late, 0.99),
            "loop_lag_p99_ms": res.client.loop_lag_p99_s * 1000, "client_cpu_share": res.client.cpu_share,
            "loop": res.client.loop, "shard_rows": shard_rows,
            "client_limited": "; ".join(res.client_warnings()) or None}


def _print_fidelity(f: dict[str, Any]) -> None:
    coord = f.get("coordinator_cpu_ms_per_request")
    print(f"fidelity c={f['concurrency']} {f['connections']}"
          + (f" shards={f['shards']} (records written)" if f["shards"] else "") + f": n={f['n']} "
          f"rate {f['rate_rps'] or float('nan'):.0f} req/s | vs configured truth: TTFT error p50 "
          f"{f['ttft_err_p50_ms']:.2f} / p99 {f['ttft_err_p99_ms']:.2f} ms, E2E p50 {f['e2e_err_p50_ms']:.2f}"
          f" / p99 {f['e2e_err_p99_ms']:.2f} ms | vs what the server did (n={f['n_noted']}): TTFT error"
          f" p50 {f['client_ttft_err_p50_ms']:.2f} / p99 {f['client_ttft_err_p99_ms']:.2f} ms, E2E p50 "
          f"{f['client_e2e_err_p50_ms']:.2f} / p99 {f['client_e2e_err_p99_ms']:.2f} ms | server late p50 "
          f"{f['server_late_p50_ms']:.2f} / p99 {f['server_late_p99_ms']:.2f} ms | "
          f"loop lag p99 {f['loop_lag_p99_ms']:.1f} ms; {f['cpu_ms_per_request']:.2f} ms CPU/request ({f['loop']})"
          + (f" + coordinator {coord:.2f} ms" if coord is not None else "") + "; "
          f"rest of the machine {f['others_cores']:.2f} cores busy"
          + (f"  [client limited: {f['client_limited']}]" if f["client_limited"] else ""))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--duration", type=float, default=3.0, help="seconds per rate measurement")
    p.add_argument("--rate-concurrency", default="16,64", help="closed-loop workers for the rate runs")
    p.add_argument("--loops", default="uvloop,asyncio", help="event loops the workbench's rate is measured on")
    p.add_argument("--levels", default="1,64,512", help="concurrency levels for the fidelity runs")
    p.add_argument("--modes", default="cold,warm,warm+ramp", help="fidelity modes per level")
    p.add_argument("--shards", default="1,2", help="shard counts for the highest level, warm+ramp")
    p.add_argument("--rounds", type=int, default=2, help="requests per worker in each fidelity run")
    p.add_argument("--ttft-ms", type=float, default=500.0)
    p.add_argument("--itl-ms", type=float, default=50.0)
    p.add_argument("--n-chunks", type=int, default=5)
    p.add_argument("--skip-rate", action="store_true")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    server_cpu, client_cpu = _cpus()
    report: dict[str, Any] = {"cpus": os.cpu_count(), "server_cpu": server_cpu, "client_cpu": client_cpu,
                              "loadavg_before": os.getloadavg()}
    print(f"machine: {os.cpu_count()} cpus, load average {os.getloadavg()[0]:.2f}; "
          f"server pinned to {server_cpu}, client to {client_cpu}")
    report["rate"] = []
    if not args.skip_rate:
        with MockServer(MockScript(null=True)).in_child(cpu=server_cpu) as null:
            affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
            _pin(client_cpu)
            pid = null.process.pid
            for conc in (int(x) for x in args.rate_concurrency.split(",")):
                ours = {loop: _rate_on(loop, null.base_url, conc, args.duration, pid) for loop in args.loops.split(",")}
                locust = _locust(null.root_url, conc, args.duration, client_cpu, pid)
                wrk = _wrk(null.base_url + "/chat/completions", conc, args.duration, client_cpu, pid)
                best = max(ours.values(), key=lambda o: o["rps"])
                row = {"concurrency": conc, "workbench": ours,
                       "locust": {k: v for k, v in locust.items() if k != "raw"},
                       "wrk": {k: v for k, v in wrk.items() if k != "raw"},
                       "ratio_workbench_to_locust": best["rps"] / locust["rps"] if locust.get("rps") else None,
                       "ratio_workbench_to_wrk": best["rps"] / wrk["rps"] if wrk.get("rps") else None}
                report["rate"].append(row)
                for loop, o in ours.items():
                    print(f"rate c={conc} workbench ({loop}): {o['rps']:.0f} req/s ({o['cpu_ms_per_request']:.3f} ms "
                          f"CPU/request, loop lag p99 {o['loop_lag_p99_ms']:.1f} ms; rest of the machine "
                          f"{o['others_cores']:.2f} cores busy)")
                for name, o in (("locust FastHttpUser", locust), ("wrk -t1", wrk)):
                    print(f"rate c={conc} {name}: " + (f"{o['rps']:.0f} req/s (rest of the machine "
                                                       f"{o['others_cores']:.2f} cores busy)" if o.get("rps")
                                                       else str(o.get("skipped"))))
                if row["ratio_workbench_to_locust"]:
                    print(f"rate c={conc}: workbench / locust = {row['ratio_workbench_to_locust']:.2f}")
            if affinity is not None:
                os.sched_setaffinity(0, affinity)  # the shard runs below use every core
            report["coordinator"] = []
            for k in (int(x) for x in args.shards.split(",") if x and int(x) >= 2):
                out: dict[str, Any] = {}
                with others([pid], out):
                    co = run(_coordinator(null.base_url, k, 64, args.duration))
                co.update(out)
                report["coordinator"].append(co)
                print(f"coordinator at full rate ({k} shards, c=64, null server, every record written): "
                      f"{co['rps']:.0f} req/s, coordinator {co['coordinator_cpu_ms_per_record']:.3f} ms CPU/record, "
                      f"shards {co['shard_cpu_ms_per_request']:.3f} ms CPU/request; rest of the machine "
                      f"{co['others_cores']:.2f} cores busy")
    cfg = MockScript.timed(ttft_ms=args.ttft_ms, itl_ms=args.itl_ms, n_chunks=args.n_chunks)
    report["fidelity_truth"] = {"ttft_ms": cfg.ttft_s * 1000, "e2e_ms": cfg.e2e_s * 1000, "n_chunks": cfg.n_chunks}
    report["fidelity"] = []
    modes = {"cold": (False, 0.0), "warm": (True, 0.0), "warm+ramp": (True, cfg.e2e_s)}
    levels = [int(x) for x in args.levels.split(",") if x]
    with MockServer(cfg).in_child(cpu=server_cpu) as syn:
        runs = [(conc, modes[m], 0) for conc in levels for m in args.modes.split(",") if m]
        runs += [(max(levels), modes["warm+ramp"], int(k)) for k in args.shards.split(",") if k and int(k) >= 1]
        affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
        for conc, (warm, ramp), shards in runs:
            if shards <= 1:
                _pin(client_cpu)
            elif affinity is not None:
                os.sched_setaffinity(0, affinity)  # the shard processes may use every core
            out: dict[str, Any] = {}
            with others([syn.process.pid], out):
                f = run(_fidelity(syn.base_url, cfg, conc, args.rounds, warm, ramp, shards))
            f.update(out)
            report["fidelity"].append(f)
            _print_fidelity(f)
    report["loadavg_after"] = os.getloadavg()
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
