"""A workspace's files: `workbench init DIR` writes them, `workbench validate` checks them.

`init` writes a working workspace from the bundled example, in the formats a user's own data
comes in (`workbench.datafiles`): the routing messages and annotation documents as CSV labelled
texts, the hallucination questions as JSONL QA items, the generation prompts as JSONL, and
scenarios that name those files as their tasks — so `workbench run` inside it measures exactly
what `make run` measures, and replacing three files makes it the user's workload.

`validate` reads every file a run would read — contenders, scenarios, each scenario's task data —
without sending a request, and returns one line per problem (file, line or row, field, reason);
a file with a problem does not hide the problems of the others.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workbench import workspace
from workbench.errors import ConfigError, WorkbenchError

__all__ = ["init_workspace", "validate_workspace"]

_README = """\
# {name}: an llm-workbench workspace

What is here:

| file | what |
|---|---|
| `contenders.yaml` | the models to compare: the two embedded ones, plus yours (hosted, or your own server) |
| `scenarios.yaml` | your workloads: each names its task and data, its SLO, floors, volumes and weights |
| `data/messages.csv` | labelled texts for the real-time routing scenario (`text,label[,id,acceptable]`) |
| `data/documents.csv` | labelled texts for the nightly annotation scenario (same columns) |
| `data/qa.jsonl` | questions for the hallucination check (`question`, `answers`: empty = a false premise; `passage`) |
| `data/prompts.jsonl` | prompts for the load sweep (`text`) |
| `notebooks/` | the experiment notebooks, yours to change (a run uses these) |
| `results/` | one folder per run: records, executed notebooks, `report.html` |

The data here is the workbench's demo (a shop's support messages); replace it with yours. CSV
files are UTF-8 with a header row; a list cell is `|`-separated.

Next:

```bash
workbench validate     # every file read and checked; nothing sent
workbench run          # every experiment, on the embedded models unless you enable others
workbench report results/<run-id>   # re-render a run's report
```
"""

_CONTENDERS = """\
# The models to compare (fields: workbench list; README "Contenders and configuration").
defaults:
  sampling:
    temperature: 0.0
    max_tokens: 64
  timeout_s: 60

contenders:
{embedded}
  # Your own OpenAI-compatible server (vLLM, TGI, llama.cpp, Ollama), costed by its machine-hours
  # at the throughput the run measures:
  # - name: my-model
  #   api: openai-chat
  #   base_url: http://127.0.0.1:8000/v1
  #   model: my-model
  #   hosting: self-hosted
  #   price: {{machine_hour_usd: 2.50}}
  #
  # A hosted model (the key is read from the environment variable, never from this file); each
  # provider's current lead model as its installed SDK names it (`workbench models` lists the rest):
{hosted}"""

_SCENARIOS = """\
# Your workloads (fields: README "Scenarios and the decision matrix"). Each names its task and
# data: classify (labelled texts), qa (questions), generate (prompts); paths are relative to
# this folder.
scenarios:
  routing:
    kind: realtime
    description: Real-time intent routing in front of a support assistant; every message waits for it.
    task: {{type: classify, data: data/messages.csv, labels: [{labels}]}}
    target_qps: 10000
    slo: {{metric: e2e, percentile: 95, max_s: 0.100}}   # or e.g. {{metric: ttft, percentile: 95, max_s: 0.300}}
    accuracy_floor: 0.70
    cost_ref_usd: 0.05
    weights: {{latency: 0.35, cost: 0.25, accuracy: 0.30, integration: 0.10}}

  batch_annotation:
    kind: batch
    description: Nightly labelling of the day's messages before the morning reports.
    task: {{type: classify, data: data/documents.csv}}
    documents_per_night: 2000000
    window_hours: 8
    accuracy_floor: 0.80
    concurrency_limit: 64
    latency_ref_s: 2.0
    cost_ref_usd: 0.0001
    weights: {{cost: 0.45, accuracy: 0.40, latency: 0.05, integration: 0.10}}

  prototyping:
    kind: prototyping
    description: A product team prototyping an assistant feature; low volume, quality and ease first.
    task: {{type: qa, data: data/qa.jsonl}}
    monthly_requests: 50000
    quality_floor: 0.30
    latency_ref_s: 2.0
    cost_ref_usd: 50
    weights: {{hallucination: 0.35, accuracy: 0.20, integration: 0.25, cost: 0.10, latency: 0.10}}
"""

_QUOTED_MESSAGE = re.compile(r': "(.*)"$', re.S)


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _csv(rows: list[dict[str, str]], columns: list[str]) -> str:
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return out.getvalue()


def _messages(example: Path) -> tuple[str, list[str]]:
    """The bundled routing prompts as labelled messages (the instruction stripped: the task adds it)."""
    rows, labels = [], []
    for p in _jsonl(example / "prompts" / "routing.jsonl"):
        m = _QUOTED_MESSAGE.search(p["text"])
        meta = p.get("meta", {})
        label = str(meta["expected"])
        labels.append(label)
        other = [str(x) for x in meta.get("acceptable") or () if x != label]
        rows.append({"id": p["id"], "text": m.group(1) if m else p["text"], "label": label,
                     "acceptable": "|".join(other)})
    order = ["billing", "shipping", "technical", "account", "other"]
    return _csv(rows, ["id", "text", "label", "acceptable"]), sorted(set(labels), key=lambda x: (
        order.index(x) if x in order else len(order), x))


def _documents(example: Path) -> str:
    rows = [{"id": d["id"], "text": d["text"], "label": d["label"]}
            for d in _jsonl(example / "annotation" / "documents.jsonl")]
    return _csv(rows, ["id", "text", "label"])


def _qa(example: Path) -> str:
    lines = []
    for f in sorted((example / "datasets").glob("*.jsonl")):
        for item in _jsonl(f):
            row = {"id": item["id"], "category": item["category"], "question": item["question"],
                   "answers": item["answers"]}
            if item.get("passage"):
                row["passage"] = item["passage"]
            lines.append(json.dumps(row, ensure_ascii=False))
    return "\n".join(lines) + "\n"


def _embedded_contenders(example: Path) -> str:
    """The bundled contenders file's embedded entries, verbatim (their prompt templates included)."""
    text = example.joinpath("contenders.yaml").read_text(encoding="utf-8")
    body = text.split("\ncontenders:\n", 1)[1]
    entries = re.split(r"\n(?=  - name: )", "\n" + body)
    kept = []
    for e in entries:
        if re.search(r"^\s+local: ", e, re.M):
            lines = e.strip("\n").splitlines()
            # the entry ends where the file's next section comment (two-space indent) begins
            end = next((i for i, line in enumerate(lines) if i and line.startswith("  #")), len(lines))
            kept.append("\n".join(lines[:end]).rstrip())
    return "\n\n".join(kept) + "\n"


#: Provider → (wire format, base URL, key variable) of its commented example in a new contenders file.
_HOSTED_EXAMPLES = {
    "openai": ("openai-responses", "https://api.openai.com/v1", "OPENAI_API_KEY"),
    "anthropic": ("anthropic", "https://api.anthropic.com/v1", "ANTHROPIC_API_KEY"),
    "google": ("gemini", "https://generativelanguage.googleapis.com/v1beta", "GEMINI_API_KEY"),
}


def _hosted_examples() -> str:
    """Commented contender entries, one per hosted provider, naming the model its installed SDK
    leads with (`hosted_models.suggested_model`), so a new workspace never starts from a stale
    hand-kept name; a provider whose SDK is missing gets a line saying so."""
    from workbench.hosted_models import suggested_model

    blocks = []
    for provider, (api, base_url, key) in _HOSTED_EXAMPLES.items():
        entry, why = suggested_model(provider)
        if entry is None:
            blocks.append(f"  # ({provider}: no model to suggest: {why})")
            continue
        blocks.append("\n".join([
            f"  # - name: {entry.model}",
            f"  #   api: {api}",
            f"  #   base_url: {base_url}",
            f"  #   model: {entry.model}               # from {why}",
            f"  #   api_key_env: {key}",
        ]))
    return "\n  #\n".join(blocks) + "\n"


def init_workspace(target: str | Path, log: Callable[[str], None] = print) -> Path:
    """Write a workspace at `target` (a new or empty folder); the files written, one line each."""
    root = Path(target).expanduser().resolve()
    if root.exists() and any(root.iterdir()):
        raise WorkbenchError(f"{root} is not empty: `workbench init` writes only into a new or empty folder")
    example = workspace.bundled()
    messages, labels = _messages(example.root)
    files = {
        "README.md": _README.format(name=root.name),
        "contenders.yaml": _CONTENDERS.format(embedded=_embedded_contenders(example.root),
                                              hosted=_hosted_examples()),
        "scenarios.yaml": _SCENARIOS.format(labels=", ".join(labels)),
        "data/messages.csv": messages,
        "data/documents.csv": _documents(example.root),
        "data/qa.jsonl": _qa(example.root),
        "data/prompts.jsonl": (example.root / "prompts" / "generation.jsonl").read_text(encoding="utf-8"),
    }
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
        log(f"  wrote {p}")
    (root / "notebooks").mkdir()
    for nb in sorted(example.packaged_notebooks.glob("*.ipynb")):
        shutil.copy2(nb, root / "notebooks" / nb.name)
    log(f"  wrote {root / 'notebooks'}/ ({len(list((root / 'notebooks').glob('*.ipynb')))} notebooks)")
    (root / "results").mkdir()
    return root


def validate_workspace(ws: workspace.Workspace) -> tuple[list[str], list[str]]:
    """(what was read, problems): every file a run reads, checked without sending a request."""
    from workbench.analysis.scenarios import load_scenarios
    from workbench.config import load_contenders

    read: list[str] = []
    problems: list[str] = []

    def attempt(what: Callable[[], str]) -> None:
        try:
            read.append(what())
        except ConfigError as exc:
            problems.append(str(exc))

    def contenders() -> str:
        cs = load_contenders(ws.contenders_file)
        return f"{ws.contenders_file}: {len(list(cs))} contenders"

    attempt(contenders)
    try:
        scenarios = load_scenarios(ws.scenarios_file)
    except ConfigError as exc:
        problems.append(str(exc))
        return read, problems
    read.append(f"{ws.scenarios_file}: {len(scenarios)} scenarios ({', '.join(scenarios)})")
    for name, sc in scenarios.items():
        task = sc.task
        if task is None:
            continue

        def check(name: str = name, task: Any = task) -> str:
            return f"{task.path(ws)}: {task.check(ws)} rows ({name}: {task.type})"

        attempt(check)
    return read, problems
