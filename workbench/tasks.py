"""A scenario's task: what the model is asked to do, on which of the user's data files.

A scenario in a workspace names its own data and task (`scenarios.yaml`):

    task: {type: classify, data: data/messages.csv, labels: [card_lost, refund, other]}
    task: {type: qa, data: data/qa.jsonl}
    task: {type: generate, data: data/prompts.jsonl}
    task: {type: long_doc, data: data/contracts.jsonl, questions: data/contract_questions.jsonl}

- `classify` reads labelled texts (`text`, `label`, optional `id`, `acceptable`); every text
  becomes a prompt from `instruction` (`{labels}` and `{text}` filled in), carrying its right
  label(s) so the answer is graded (`workbench.analysis.intents`). `labels` defaults to every
  label the data uses, in order of first appearance. `examples` (optional, a labelled-texts
  file) are the worked examples a completion model's few-shot annotation prompt shows; they are
  never measured.
- `qa` reads QA items (`question`, `answers`, optional `passage`, `id`, `category`): the
  hallucination spot-check's questions.
- `generate` reads prompts (`text`, optional `id`, `system`).
- `long_doc` reads long documents (`text` or `file`, optional `id`) and the questions asked about
  them (`questions`: `document`, `question`, `answers`, optional `id`, `depth`): the context
  experiment's documents (`workbench.documents`).

Experiments name a task as a prompt set or dataset `scenario:<name>` (the runner does so for a
workspace's scenarios); a path is relative to the workspace root (`workbench.workspace`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from workbench import workspace
from workbench.config import load_yaml, validation_error
from workbench.datafiles import KINDS, LabelledText, load_labelled_texts, read_rows, unique_ids
from workbench.documents import Document, load_documents
from workbench.errors import ConfigError
from workbench.images import resolve_images
from workbench.types import Prompt

__all__ = [
    "DEFAULT_INSTRUCTION",
    "SCENARIO_PREFIX",
    "Task",
    "classify_prompts",
    "scenario_task",
]

#: How a classification prompt reads unless the task says otherwise.
DEFAULT_INSTRUCTION = 'Label the intent of this message as {labels}: "{text}"'
#: A prompt set or dataset named `scenario:<name>` is that scenario's task data.
SCENARIO_PREFIX = "scenario:"
#: The data kind each task type reads (`workbench.datafiles.KINDS`).
DATA_KIND = {"classify": "labelled", "qa": "qa", "generate": "prompts", "long_doc": "documents"}


class Task(BaseModel):
    """What a scenario's model is asked to do, on which file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["classify", "qa", "generate", "long_doc"] = Field(description="classify, qa, generate or long_doc")
    data: str = Field(description="the data file (JSONL or CSV), relative to the workspace root")
    labels: list[str] | None = Field(None, description="classify: the labels (default: those in the data)")
    instruction: str = Field(DEFAULT_INSTRUCTION,
                             description="classify: the prompt, with {labels} and {text}; generate: unused")
    examples: str | None = Field(None, description="classify: worked examples (a labelled-texts file, never "
                                                   "measured) for a completion model's few-shot prompt")
    questions: str | None = Field(None, description="long_doc: the questions about the documents (document, "
                                                    "question, answers, optional id, depth), relative to the "
                                                    "workspace root")

    @model_validator(mode="after")
    def _questions_ok(self) -> Task:
        if (self.type == "long_doc") != (self.questions is not None):
            raise ValueError("questions is required for type long_doc and only read there")
        return self

    @field_validator("labels")
    @classmethod
    def _labels_ok(cls, v: list[str] | None) -> list[str] | None:
        if v is not None:
            if not v or any(not str(x).strip() for x in v):
                raise ValueError("labels must be a non-empty list of non-empty names")
            if len(set(v)) != len(v):
                raise ValueError("labels must not repeat")
        return v

    @field_validator("instruction")
    @classmethod
    def _instruction_ok(cls, v: str) -> str:
        if "{text}" not in v:
            raise ValueError("instruction must contain {text}")
        return v

    def path(self, ws: workspace.Workspace | None = None) -> Path:
        return (ws or workspace.current()).resolve(self.data)

    def labelled(self, ws: workspace.Workspace | None = None) -> list[LabelledText]:
        """classify: the labelled texts, every label checked against `labels`."""
        rows = load_labelled_texts(self.path(ws))
        if self.labels is not None:
            known = set(self.labels)
            for r in rows:
                for lab in r.accepted:
                    if lab not in known:
                        raise ConfigError(str(self.path(ws)), f"id {r.id}: label",
                                          f"{lab!r} is not one of the task's labels: {', '.join(self.labels)}")
        return rows

    def example_rows(self, ws: workspace.Workspace | None = None) -> list[LabelledText]:
        """classify: the worked examples (none without `examples`), each label one of the task's and
        no text also in the data — an example that is measured would grade its own answer key."""
        if self.examples is None:
            return []
        src = (ws or workspace.current()).resolve(self.examples)
        rows = load_labelled_texts(src)
        data = self.labelled(ws)
        known = set(self.label_names(data))
        measured = {" ".join(r.text.casefold().split()) for r in data}
        for r in rows:
            if r.label not in known:
                raise ConfigError(str(src), f"id {r.id}: label",
                                  f"{r.label!r} is not one of the task's labels: {', '.join(sorted(known))}")
            if " ".join(r.text.casefold().split()) in measured:
                raise ConfigError(str(src), f"id {r.id}: text", f"also in {self.data}: an example must not be measured")
        return rows

    def label_names(self, rows: list[LabelledText]) -> list[str]:
        if self.labels is not None:
            return list(self.labels)
        seen: dict[str, None] = {}
        for r in rows:
            for lab in r.accepted:
                seen.setdefault(lab, None)
        return list(seen)

    def prompts(self, ws: workspace.Workspace | None = None) -> list[Prompt]:
        """The task's prompts: classify → one per labelled text; generate → the prompts file."""
        if self.type == "classify":
            rows = self.labelled(ws)
            return classify_prompts(rows, self.label_names(rows), self.instruction)
        if self.type == "generate":
            return load_prompt_rows(self.path(ws))
        raise ConfigError(self.data, "type", f"a {self.type} task has questions, not prompts: use it as "
                                             f"{'a hallucination dataset' if self.type == 'qa' else 'documents'}")

    def documents(self, ws: workspace.Workspace | None = None) -> list[Document]:
        """long_doc: the documents with their questions, each checked (`workbench.documents`)."""
        if self.type != "long_doc" or self.questions is None:
            raise ConfigError(self.data, "type", f"a {self.type} task has no documents")
        return load_documents(self.path(ws), (ws or workspace.current()).resolve(self.questions))

    def check(self, ws: workspace.Workspace | None = None) -> int:
        """Read the data as this task would (every mistake a ConfigError); the number of rows."""
        if self.type == "classify":
            self.example_rows(ws)
            return len(self.prompts(ws))
        if self.type == "long_doc":
            return len(self.documents(ws))
        path = self.path(ws)
        rows = read_rows(path, KINDS[DATA_KIND[self.type]])
        for r in rows:  # every image named is read and checked, as a run would
            resolve_images(r.values.get("images", ()), path, f"{r.where}: images")
        return len(rows)


def _label_list(labels: list[str]) -> str:
    return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " or " + labels[-1]


def classify_prompts(rows: list[LabelledText], labels: list[str], instruction: str = DEFAULT_INSTRUCTION
                     ) -> list[Prompt]:
    """One prompt per labelled text, with its right label (`meta.expected`) and the other labels that
    also count (`meta.acceptable`), as the routing grader reads them."""
    listed = _label_list(labels)
    out = []
    for r in rows:
        meta: dict[str, object] = {"expected": r.label}
        if r.acceptable:
            meta["acceptable"] = list(r.accepted)
        out.append(Prompt(id=r.id, text=instruction.replace("{labels}", listed).replace("{text}", r.text), meta=meta))
    return out


def load_prompt_rows(path: Path) -> list[Prompt]:
    """A prompts file (`text`, optional `id`, `system`, `images`) as prompts."""
    rows = read_rows(path, KINDS["prompts"])
    ids = unique_ids(rows, str(path))
    return [Prompt(id=i, text=r.values["text"], system=r.values.get("system") or None,
                   images=resolve_images(r.values.get("images", ()), path, f"{r.where}: images"))
            for i, r in zip(ids, rows, strict=True)]


def scenario_task(name: str, ws: workspace.Workspace | None = None) -> Task:
    """The task of scenario `name` in the workspace's scenarios file (ConfigError naming the valid
    scenarios, or the scenario without a task)."""
    ws = ws or workspace.current()
    src = str(ws.scenarios_file)
    data = load_yaml(ws.scenarios_file)
    entries = data.get("scenarios") if isinstance(data, dict) else None
    if not isinstance(entries, dict) or name not in entries:
        valid = ", ".join(map(str, entries)) if isinstance(entries, dict) else "(none)"
        raise ConfigError(src, f"scenarios.{name}", f"no such scenario; valid: {valid}")
    entry = entries[name]
    raw = entry.get("task") if isinstance(entry, dict) else None
    if raw is None:
        raise ConfigError(src, f"scenarios.{name}.task", "this scenario names no task (task: {type, data})")
    try:
        return Task.model_validate(raw)
    except ValidationError as exc:
        raise validation_error(exc, src, f"scenarios.{name}.task", lambda _loc: list(Task.model_fields)) from None
