"""Embedded-server decoding speed, quiet and beside a CPU hog, for candidate thread/poll settings.

    PYTHONPATH=. .venv/bin/python bench/llama_threads.py --repeats 3 --json /tmp/llama-threads.json

For each repeat, for each setting (interleaved, so a neighbour's burst hits every setting alike):
start the embedded model's llama-server with that setting, send `--requests` non-streamed
completions of exactly `--tokens` tokens (`ignore_eos`) one after another (none started after
`--phase-s` seconds: a collapsed setting may take a minute a request), quiet; then again with
one busy process per core (`--hogs-per-core`) beside it; the hog is killed after every phase. The
figure is the server's own `timings.predicted_per_second` (decode) per request; the summary per
setting and phase is the median with its min-max over every request, and n. The machine's other
load is sampled too (`workbench.measure.machine`): the quiet baseline is only as quiet as that.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from workbench.measure.machine import CpuMeter
from workbench.serve.llama import ThreadSettings, start_server

PROMPT = "Q: What is the capital of France?\nA: Paris\nQ: Name three colours of the rainbow.\nA:"


def parse_setting(text: str) -> ThreadSettings:
    """`threads/threads_batch/poll`, e.g. `2/2/50`."""
    t, tb, poll = (int(x) for x in text.split("/"))
    return ThreadSettings(t, tb, poll)


@contextlib.contextmanager
def hog(per_core: int) -> Iterator[None]:
    """One spinning Python process per core (times `per_core`), killed on exit whatever happens."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
             for _ in range((os.cpu_count() or 1) * per_core)]
    try:
        time.sleep(0.5)
        yield
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def measure(base: str, n: int, tokens: int, phase_s: float = 0.0) -> list[float]:
    """Decode tokens/s of each of `n` requests, or of as many as start within `phase_s` (at least one)."""
    out: list[float] = []
    t0 = time.monotonic()
    with httpx.Client(timeout=600, trust_env=False) as client:
        for i in range(n):
            if i and phase_s and time.monotonic() - t0 > phase_s:
                break
            r = client.post(f"{base}/completion", json={"prompt": PROMPT, "n_predict": tokens, "ignore_eos": True,
                                                        "cache_prompt": False, "temperature": 0})
            r.raise_for_status()
            out.append(float(r.json()["timings"]["predicted_per_second"]))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    ap.add_argument("--settings", default="2/2/50,2/2/0,1/1/0,1/2/0",
                    help="comma-separated threads/threads_batch/poll")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--requests", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--phase-s", type=float, default=20.0, help="no new request after this many seconds of a phase")
    ap.add_argument("--hogs-per-core", type=int, default=1)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    settings = [parse_setting(s) for s in args.settings.split(",")]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as logs:
        for rep in range(args.repeats):
            for st in settings:
                server = start_server(args.model, Path(logs), threads=st, slots=1)
                try:
                    measure(server.root_url, 1, 4)  # warm-up
                    for phase in ("quiet", "loaded"):
                        ctx = hog(args.hogs_per_core) if phase == "loaded" else contextlib.nullcontext()
                        with ctx:
                            meter = CpuMeter(own_pids=[os.getpid(), server.process.pid])
                            tps = measure(server.root_url, args.requests, args.tokens, args.phase_s)
                            use = meter.stop()
                        rows.append({"repeat": rep, "setting": st.to_dict(), "phase": phase, "tokens_per_s": tps,
                                     "foreign_cores": use.foreign_cores})
                        print(f"rep {rep} t{st.threads}/tb{st.threads_batch}/poll{st.poll} {phase:6s} "
                              f"{' '.join(f'{x:6.1f}' for x in tps)} tok/s  (other load {use.foreign_cores:.2f} cores)",
                              flush=True)
                finally:
                    server.stop()
    print("\nsetting (threads/threads_batch/poll)  quiet median [min-max] n   loaded median [min-max] n   loaded/quiet")
    for st in settings:
        cells = []
        med = {}
        for phase in ("quiet", "loaded"):
            xs = [x for r in rows if r["setting"] == st.to_dict() and r["phase"] == phase for x in r["tokens_per_s"]]
            med[phase] = statistics.median(xs)
            cells.append(f"{med[phase]:6.1f} [{min(xs):.1f}-{max(xs):.1f}] n={len(xs)}")
        print(f"{st.threads}/{st.threads_batch}/{st.poll:<30} {cells[0]:28s} {cells[1]:28s} "
              f"{med['loaded'] / med['quiet']:.2f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
