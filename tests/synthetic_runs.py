"""Synthetic run folders whose right answers are known, for decision and summary tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.config import Contender
from workbench.results import RecordWriter, RunDir
from workbench.types import Record

HOSTED = {"api": "openai-chat", "base_url": "http://127.0.0.1:9/v1", "price": {"input": 1.0, "output": 2.0}}
N_PROMPTS, N_ANSWERABLE, N_UNANSWERABLE = 100, 60, 20


def contenders(*names: str) -> dict[str, Contender]:
    return {n: Contender.model_validate({"name": n, "model": n, **HOSTED}) for n in names}


def write_run(root: Path, spec: dict[str, dict[str, Any]], run_id: str = "run-1", seed: int = 0) -> Path:
    """spec: contender → {e2e: mean seconds, halluc: share of answerable items answered wrong,
    refuse: answers "I don't know" to everything, fp: share of false premises accepted,
    route: routing accuracy, caps: {fact: value}, timeout_slowest: share of warm requests — its
    slowest — that time out instead (a flaky contender), error_if_wrong: errors instead of every
    wrong answer and on every unanswerable item (as `error_class`, default a timeout),
    no_unanswerable: leaves the unanswerable items out, prompt_set: the prompt set its latency
    records name (default: none named)}. Warm request i of every contender is prompt i."""
    rng = np.random.default_rng(seed)
    run = RunDir.create(root=root, run_id=run_id)
    with RecordWriter(run.jsonl("latency")) as w:
        for name, s in spec.items():
            route = s.get("route", 0.9)
            draws = rng.normal(s["e2e"], s["e2e"] * 0.05, N_PROMPTS)
            cut = np.quantile(draws, 1 - s["timeout_slowest"]) if s.get("timeout_slowest") else np.inf
            for i, e2e in enumerate(draws):
                correct = bool(i < round(N_PROMPTS * route))
                rec = Record(run_id=run_id, experiment="latency", contender=name, model=name,
                             request_id=f"{name}:warm:{i}", t_start_unix=1000.0 + i, ttft_s=e2e / 3,
                             e2e_s=float(e2e), input_tokens=50, output_tokens=10,
                             extra={"phase": "warm", "route_correct": correct, "expected": "billing"})
                if "prompt_set" in s:
                    rec.extra["prompt_set"] = s["prompt_set"]
                if e2e > cut:  # as the probe records a timeout: 30 s spent, no answer, no grade
                    rec.e2e_s, rec.ttft_s, rec.input_tokens, rec.output_tokens = 30.0, None, None, None
                    rec.status, rec.error_class, rec.error_message = "error", "timeout", "read timeout"
                    rec.extra["route_correct"] = None
                w.write(rec)
    with RecordWriter(run.jsonl("hallucination")) as w:
        for name, s in spec.items():
            for i in range(N_ANSWERABLE + (0 if s.get("no_unanswerable") else N_UNANSWERABLE)):
                answerable = i < N_ANSWERABLE
                if s.get("refuse"):
                    grade = "not_attempted" if answerable else "correct"
                elif answerable:
                    grade = "incorrect" if i < int(N_ANSWERABLE * s["halluc"]) else "correct"
                else:
                    grade = "incorrect" if i - N_ANSWERABLE < int(N_UNANSWERABLE * s.get("fp", 0.2)) else "correct"
                rec = Record(run_id=run_id, experiment="hallucination", contender=name, model=name,
                             request_id=f"{name}:{i}", t_start_unix=1.0, e2e_s=0.1,
                             extra={"item_id": f"q{i}", "grade": grade, "sample_index": 0,
                                    "answerable": answerable})
                if s.get("error_if_wrong") and (grade == "incorrect" or not answerable):
                    cls = s.get("error_class", "timeout")
                    rec.status, rec.error_class, rec.error_message = "error", cls, f"{cls} (synthetic)"
                    rec.e2e_s, rec.extra["grade"] = 30.0, None  # the experiment grades only answers
                w.write(rec)
    caps = {name: {f: {"value": v, "source": "probed"} for f, v in s.get("caps", {}).items()}
            for name, s in spec.items()}
    (run.path / "capabilities.json").write_text(json.dumps(caps))
    return run.path


def write_concurrency(run: Path, name: str, e2e_by_level: dict[int, float], n: int = 20,
                      prompt_set: str | None = None) -> None:
    """A closed-loop sweep whose levels take `e2e` seconds per request, back to back per worker,
    on `prompt_set` (recorded as the concurrency experiment records it; None: not recorded)."""
    with RecordWriter(run / "concurrency.jsonl") as w:
        for level, e2e in e2e_by_level.items():
            for i in range(n):
                w.write(Record(run_id=run.name, experiment="concurrency", contender=name, model=name,
                               request_id=f"{name}:c{level}:{i}", t_start_unix=100.0 * level + (i // level) * e2e,
                               ttft_s=e2e / 2, e2e_s=e2e, input_tokens=40, output_tokens=5,
                               extra={"phase": "sweep", "level": level, "concurrency": level,
                                      "load_profile": "closed", "sent_s": (i // level) * e2e,
                                      **({"prompt_set": prompt_set} if prompt_set else {})}))


def write_annotation(run: Path, name: str, strategies: dict[str, tuple[float, float]], n_docs: int = 100,
                     window: int | None = 32_768) -> None:
    """Per strategy (accuracy, requests per document): per-document outcomes and the requests
    (a 200-token shared prompt + 100 input and 2 output tokens per document, 0.5 s each), as the
    coalescing experiment writes them; and the contender's probed context `window` in
    capabilities.json, as the capabilities probe records it (None: not recorded)."""
    caps_path = run / "capabilities.json"
    caps = json.loads(caps_path.read_text()) if caps_path.exists() else {}
    if window is not None:
        caps.setdefault(name, {}).setdefault("context_window", {"value": window, "source": "probed"})
        caps_path.write_text(json.dumps(caps))
    outcomes, n = [], 0
    with RecordWriter(run / "coalescing.jsonl") as w:
        for strategy, (accuracy, rpd) in strategies.items():
            for d in range(n_docs):
                ok = d < round(n_docs * accuracy)
                outcomes.append({"contender": name, "strategy": strategy, "repeat": 0, "doc_id": f"d{d}",
                                 "gold": "billing", "predicted": "billing" if ok else "other",
                                 "source": "request", "dup_of": None, "correct": ok})
            per = 1.0 / rpd
            for _r in range(round(n_docs * rpd)):
                n += 1
                w.write(Record(run_id=run.name, experiment="coalescing", contender=name, model=name,
                               request_id=f"{name}:{strategy}:0:{n}", t_start_unix=float(n), ttft_s=0.1, e2e_s=0.5,
                               input_tokens=200 + round(100 * per), output_tokens=round(2 * per),
                               extra={"strategy": strategy, "repeat": 0, "batch_size": max(1, round(per)),
                                      "fallback": False, "parse_ok": True, "n_docs": round(per)}))
    frame = pd.DataFrame(outcomes)
    path = run / "coalescing_documents.csv"
    if path.exists():
        frame = pd.concat([pd.read_csv(path), frame], ignore_index=True)
    frame.to_csv(path, index=False)
