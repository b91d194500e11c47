"""Synthetic run folders whose right answers are known, for decision and summary tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from workbench.config import Contender
from workbench.results import RecordWriter, RunDir
from workbench.types import Record

HOSTED = {"api": "openai-chat", "base_url": "http://127.0.0.1:9/v1", "price": {"input": 1.0, "output": 2.0}}


def contenders(*names: str) -> dict[str, Contender]:
    return {n: Contender.model_validate({"name": n, "model": n, **HOSTED}) for n in names}


def write_run(root: Path, spec: dict[str, dict[str, Any]], run_id: str = "run-1", seed: int = 0) -> Path:
    """spec: contender → {e2e: mean seconds, halluc: share incorrect, caps: {fact: value}}."""
    rng = np.random.default_rng(seed)
    run = RunDir.create(root=root, run_id=run_id)
    with RecordWriter(run.jsonl("latency")) as w:
        for name, s in spec.items():
            for i, e2e in enumerate(rng.normal(s["e2e"], s["e2e"] * 0.05, 40)):
                w.write(Record(run_id=run_id, experiment="latency", contender=name, model=name,
                               request_id=f"{name}:warm:{i}", t_start_unix=1000.0 + i, ttft_s=e2e / 3,
                               e2e_s=float(e2e), input_tokens=50, output_tokens=10,
                               extra={"phase": "warm"}))
    with RecordWriter(run.jsonl("hallucination")) as w:
        for name, s in spec.items():
            for i in range(60):
                grade = "incorrect" if i < int(60 * s["halluc"]) else "correct"
                w.write(Record(run_id=run_id, experiment="hallucination", contender=name, model=name,
                               request_id=f"{name}:{i}", t_start_unix=1.0, e2e_s=0.1,
                               extra={"item_id": f"q{i}", "grade": grade, "sample_index": 0}))
    caps = {name: {f: {"value": v, "source": "probed"} for f, v in s.get("caps", {}).items()}
            for name, s in spec.items()}
    (run.path / "capabilities.json").write_text(json.dumps(caps))
    return run.path


def write_concurrency(run: Path, name: str, e2e_by_level: dict[int, float], n: int = 20) -> None:
    """A closed-loop sweep whose levels take `e2e` seconds per request, back to back per worker."""
    with RecordWriter(run / "concurrency.jsonl") as w:
        for level, e2e in e2e_by_level.items():
            for i in range(n):
                w.write(Record(run_id=run.name, experiment="concurrency", contender=name, model=name,
                               request_id=f"{name}:c{level}:{i}", t_start_unix=100.0 * level + (i // level) * e2e,
                               ttft_s=e2e / 2, e2e_s=e2e, input_tokens=40, output_tokens=5,
                               extra={"phase": "sweep", "level": level, "concurrency": level,
                                      "load_profile": "closed", "sent_s": (i // level) * e2e}))
