"""The decision cannot be gamed: a contender that always says "I don't know" and one that always
gives the same confident wrong answer, beside a decent one, through the real experiments.

The three contenders are served by the workbench's mock server (`MockServer` with an
`answer` function of the request): "decent" knows the gold answers of the shipped datasets and
gets most of them right; "idk" refuses everything; "wrong" answers "Paris" to everything. The
latency (routing prompts), hallucination and annotation experiments run unchanged against them,
then the summary decides every scenario.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from workbench.analysis.intents import labels_of
from workbench.experiments import coalescing, hallucination, latency
from workbench.prompts import load_prompts
from workbench.report.summary import build_summary
from workbench.serve.mock import MockScript, MockServer
from workbench.session import open_session

NAMES = ("decent", "idk", "wrong")


def _lucky(text: str, share: float) -> bool:
    """Deterministic 'gets this one right' with probability `share`."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < share


class Oracle:
    """The answers of a decent model: from the gold labels, right most of the time."""

    def __init__(self) -> None:
        self.items = {i.question: i for i in hallucination.load_items()}
        self.routes = {p.text: p.meta for p in load_prompts("routing")}
        self.docs = {" ".join(d.text.split()): d.label for d in coalescing.load_documents()}

    def __call__(self, req: dict[str, Any]) -> str:
        model = str(req.get("model"))
        if model == "idk":
            return "I don't know."
        if model == "wrong":
            return "Paris"
        text = str(req["messages"][-1]["content"])
        if text in self.routes:
            meta = self.routes[text]
            return str(meta["expected"]) if _lucky(text, 0.9) else "other"
        for question, item in self.items.items():
            if question in text:
                if not item.answerable:
                    return "That premise is false." if _lucky(question, 0.7) else "It was Paris."
                return item.answers[0] if _lucky(question, 0.7) else "I don't know."
        for doc, label in self.docs.items():
            if doc in text:
                return label if _lucky(doc, 0.92) else "other"
        return "I don't know."


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    with MockServer(MockScript(answer=Oracle(), input_tokens=60, output_tokens=3)) as srv:
        cfile = tmp_path / "contenders.yaml"
        cfile.write_text(yaml.safe_dump({"contenders": [
            {"name": n, "api": "openai-chat", "model": n, "base_url": srv.base_url,
             "price": {"input": 0.1, "output": 0.4}, "timeout_s": 10,
             # the batch scenario's window constraint needs one; the mock serves any length
             "declared": {"context_window": 32768}} for n in NAMES]}))
        out = tmp_path / "run"
        common = {"out_dir": out, "contenders": ",".join(NAMES), "contenders_file": cfile}
        with open_session("latency", **common) as s:
            prompts = load_prompts("routing")
            latency.run_latency(s, prompts, n_requests=80, warmup=0)
        with open_session("hallucination", **common) as s:
            hallucination.run_hallucination(s, hallucination.load_items(sample_size=60))
        with open_session("coalescing", **common) as s:
            # 80 documents: naive's 80 requests without an error bound the batch scenario's error
            # rate under its 5% limit (Wilson upper 4.6%); at 60 (6.0%) it is inconclusive
            coalescing.run_coalescing(s, coalescing.select_documents(coalescing.load_documents(), 80),
                                      coalescing.load_labels(), strategies=("naive",))
        (out / "contenders.yaml").write_text(cfile.read_text())
    return out


@pytest.mark.slow  # ~6 s on 2 cores (the local models)
def test_refuser_and_confident_wrong_never_win(run_dir: Path) -> None:
    summary = build_summary([run_dir], contenders_file=run_dir / "contenders.yaml", n_boot=300)
    m = summary.matrix.set_index(["scenario", "contender"])
    for scenario in ("routing", "batch_annotation", "prototyping"):
        for gamer in ("idk", "wrong"):
            # each fails its scenario's quality floor outright: latency and price cannot buy it back
            assert m.loc[(scenario, gamer), "constraint_status"] == "fail", (scenario, gamer)
        assert m.loc[(scenario, "decent"), "constraint_status"] == "pass", scenario
        result = next(r for r in summary.results if r.name == scenario)
        assert result.pick == "decent" and result.decisive
        assert m.loc[(scenario, "decent"), "score"] > max(m.loc[(scenario, "idk"), "score"],
                                                          m.loc[(scenario, "wrong"), "score"])
    # the report names every price the contenders file declares (here all of it, with no source)
    assert "declared in the contenders file (over genai-prices where it has one): decent: input=0.1, " \
        "output=0.4 (no source given)" in summary.assumptions_markdown()
    proto = summary.matrix[summary.matrix["scenario"] == "prototyping"].set_index("contender")
    assert proto["score"].idxmin() == "wrong"  # the confident-wrong contender ranks last
    hal = {r: summary.results[0].metrics[r]["hallucination_score"].value for r in NAMES}
    assert hal["idk"] == 0.0 and hal["wrong"] == 0.0 and hal["decent"] > 0.4
    rows = [json.loads(x) for x in (run_dir / "latency.jsonl").read_text().splitlines()]
    assert {r["route_label"] for r in rows if r["contender"] != "decent" and r["phase"] == "warm"} == {None}
    assert labels_of(p.meta for p in load_prompts("routing")) == ["account", "billing", "other", "shipping",
                                                                   "technical"]
