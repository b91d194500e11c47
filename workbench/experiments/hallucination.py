"""Hallucination spot-checks: ask each contender short questions with known answers, grade them.

Per contender, items run one after another (latency is not the point here, but every request
goes through `workbench.measure.probe`, so TTFT and E2E are recorded anyway). Each request becomes a
record in `<run>/hallucination.jsonl` with the item and its grade beside the core fields:
`item_id, category, answerable, question, response, grade, grade_reason, grade_doubt, f1,
sample_index` (plus `judge_grade` / `judge_response` / `judge_error` in model-graded mode, and
`temperature`). `grade_doubt` is set where the rules could not settle the grade (see
`grading.Grade`): those are the answers whose `judge_grade` matters most.

How the question is put to each kind of API -- the part that decides what is measured:

- **Chat contenders** get the same system instruction, `CHAT_SYSTEM_PROMPT`, in place of their
  configured `system_prompt`: answer briefly, say "I don't know" when unsure, point out a false
  premise. Every chat model is thus asked the same thing, and a refusal is invited, so a model
  that still makes up an answer is hallucinating, not following an instruction to be brief.
- **Completion contenders** (`prompt_template`, e.g. the few-shot `Q: ... A:` of the embedded
  base model) keep their template untouched: the question goes in through `{prompt}`. We do not
  add abstention examples to their few-shot prompt: the user's configured prompt is what is
  being measured. A few-shot prompt whose examples all answer confidently invites a confident
  answer; if that is unfair to the model, change the template in the contenders file -- the
  change is then part of the measured configuration and shows in the manifest.
- **Grounded items** (with a passage), for both kinds: `"Passage: ...\\nQuestion: ...\\n"` plus
  `GROUNDED_INSTRUCTION` (answer only from the passage; otherwise say it is not stated).

Grades come from the rule-based `workbench.analysis.grading.grade_response` (deterministic, explainable).
The optional model-graded mode asks one contender (`judge_contender`) with
`grading.JUDGE_PROMPT` and reports its verdict separately as `judge_grade`: the rule grade stays
the headline, a judge is a second opinion with its own biases.

Self-consistency (`k_samples > 1`): sample_index 0 is the graded answer at the contender's
configured temperature (greedy by default: the headline numbers); sample_index 1..K are K more
answers drawn at `temperature` > 0 with seeds `seed + i`, used for the consistency rate (and
graded too, but kept out of the headline rates so each item counts once).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from workbench import workspace
from workbench.aio import run_sync
from workbench.analysis.grading import (
    JUDGE_PROMPT,
    QAItem,
    grade_response,
    load_dataset,
    parse_judge_verdict,
    stratified_sample,
    token_f1,
)
from workbench.config import Contender
from workbench.errors import ConfigError
from workbench.imageset import spotcheck_file
from workbench.measure.probe import make_client, probe
from workbench.measure.target import Target
from workbench.providers import get_provider
from workbench.session import Session
from workbench.tasks import SCENARIO_PREFIX, scenario_task
from workbench.types import Prompt, Record

__all__ = [
    "CHAT_SYSTEM_PROMPT",
    "GROUNDED_INSTRUCTION",
    "IMAGE_SPOTCHECK",
    "JUDGE_MAX_TOKENS",
    "build_prompt",
    "load_items",
    "resolve_datasets",
    "run_hallucination",
]

#: The dataset name of the generated image spot-check (`resolve_datasets`).
IMAGE_SPOTCHECK = "image_spotcheck"

#: The one system instruction every chat contender gets in this experiment.
CHAT_SYSTEM_PROMPT = (
    "Answer the question briefly, in a few words. If you do not know the answer, say "
    "\"I don't know\". If the question rests on a false premise, say so instead of answering."
)
#: Appended to grounded items (those with a passage), for chat and completion contenders alike.
GROUNDED_INSTRUCTION = (
    "Answer only from the passage. If the passage does not state the answer, say it is not stated."
)
#: A judge answers with one letter; a few tokens leave room for "A." or "(B)".
JUDGE_MAX_TOKENS = 8


def resolve_datasets(spec: str | Sequence[str] = "") -> list[Path]:
    """Dataset files from a comma-separated list of names (`facts` = <workspace>/datasets/facts.jsonl;
    the bundled example's experiments/datasets/), `scenario:<name>` (that scenario's qa task) or
    paths (.jsonl or .csv; relative ones: the workspace's); "all" = every file in the workspace's
    datasets/; empty = the workspace's prototyping scenario's qa task, else "all";
    `image_spotcheck` = the generated image spot-check (`workbench.imageset`, written into the
    cache on first use). Unknown names list the valid ones."""
    from workbench.experiments import workspace_inputs

    ws = workspace.current()
    if isinstance(spec, str) and not spec.strip():
        spec = str(workspace_inputs(ws).get("hallucination", {}).get("datasets", ""))
    datasets_dir = ws.root / "datasets"
    names = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else [s.strip() for s in spec]
    names = [n for n in names if n]
    if not names or names == ["all"]:
        found = sorted(datasets_dir.glob("*.jsonl"))
        if not found:
            raise ConfigError(str(datasets_dir), None, "no QA datasets (*.jsonl) here: give a prototyping "
                              "scenario a qa task (task: {type: qa, data: FILE}) or --param datasets=FILE")
        return found
    out: list[Path] = []
    for name in names:
        p = Path(name)
        if name.startswith(SCENARIO_PREFIX):
            task = scenario_task(name.removeprefix(SCENARIO_PREFIX), ws)
            if task.type != "qa":
                raise ConfigError(str(ws.scenarios_file), f"scenarios.{name.removeprefix(SCENARIO_PREFIX)}.task",
                                  f"a {task.type} task has no questions: the hallucination check needs type qa")
            out.append(task.path(ws))
            continue
        if p.suffix in (".jsonl", ".csv"):
            out.append(ws.resolve(p))
            continue
        candidate = datasets_dir / f"{name}.jsonl"
        if not candidate.exists() and name == IMAGE_SPOTCHECK:
            out.append(spotcheck_file())
            continue
        if not candidate.exists():
            valid = ", ".join(sorted([*(f.stem for f in datasets_dir.glob("*.jsonl")), IMAGE_SPOTCHECK]))
            raise ConfigError(name, None, f"no such dataset; valid names: {valid}, or a .jsonl path")
        out.append(candidate)
    return out


def load_items(datasets: str | Sequence[str] = "", sample_size: int = 0, seed: int = 0) -> list[QAItem]:
    """The items to ask: the datasets loaded and validated, then a stratified sample of
    `sample_size` (every category in proportion, deterministic for a seed); 0 = all items."""
    if sample_size < 0:
        raise ValueError(f"sample_size must be >= 0 (0 = the full dataset), got {sample_size}")
    items = load_dataset(resolve_datasets(datasets))
    return stratified_sample(items, sample_size, seed) if sample_size else items


def build_prompt(item: QAItem, contender: Contender) -> Prompt:
    """The item as this contender is asked it (see the module docstring for why it differs by
    API kind). The item's metadata rides along in `meta` for the record."""
    if item.passage:
        text = f"Passage: {item.passage}\nQuestion: {item.question}\n{GROUNDED_INSTRUCTION}"
    else:
        text = item.question
    chat = not get_provider(contender.api).needs_prompt_template
    return Prompt(
        id=item.id,
        text=text,
        system=CHAT_SYSTEM_PROMPT if chat else None,
        meta={"category": item.category, "answerable": item.answerable},
        images=item.images,
    )


def _judge_prompt(item: QAItem, response: str) -> Prompt:
    target = "; ".join(item.answers) if item.answerable else (
        "(the question has no answer: its premise is false or the information is not available)")
    text = JUDGE_PROMPT.format(question=item.question, target=target, response=response)
    return Prompt(id=f"judge:{item.id}", text=text, system=None)


def _item_fields(item: QAItem, sample_index: int, temperature: float) -> dict[str, Any]:
    return {"item_id": item.id, "category": item.category, "answerable": item.answerable,
            "question": item.question, "sample_index": sample_index, "temperature": temperature}


def _grade(rec: Record, item: QAItem) -> None:
    """Grade a successful answer in place; a failed request keeps grade None (not a hallucination)."""
    response = rec.output_text if rec.ok else None
    rec.extra["response"] = response
    if response is None:
        rec.extra.update(grade=None, grade_reason=None, grade_doubt=None, f1=None)
        return
    graded = grade_response(response, list(item.answers), item.answerable, item.question)
    rec.extra.update(grade=graded.grade, grade_reason=graded.reason, grade_doubt=graded.doubt)
    rec.extra["f1"] = token_f1(response, list(item.answers)) if item.answerable else None


async def _run(
    session: Session, items: Sequence[QAItem], k_samples: int, temperature: float, seed: int,
    judge: Contender | None, concurrency: int,
) -> list[Record]:
    records: list[Record] = []
    done = session.completed_ids() if session.resume else set()
    if done:
        print(f"resuming: {len(done)} answers already recorded are skipped")
    judge_client = make_client(concurrency, judge.timeout_s) if judge is not None else None
    try:
        with session.writer() as writer:
            for c in session.contenders:
                # At most `concurrency` requests of a contender at a time (1: latency is recorded
                # unstressed; the answers, which are what this experiment grades, do not depend on it).
                target = session.target(c, keep_itl=False)
                gate = asyncio.Semaphore(concurrency)
                async with make_client(concurrency, c.timeout_s) as client:

                    async def ask(item: QAItem, sample_index: int, contender: Contender,
                                  client: httpx.AsyncClient = client, target: Target = target,
                                  c: Contender = c, gate: asyncio.Semaphore = gate) -> None:
                        request_id = f"{c.name}:{item.id}:{sample_index}"
                        if request_id in done:
                            return
                        async with gate:
                            rec = await probe(
                                client, target.replace(contender=contender), build_prompt(item, c),
                                request_id=request_id,
                                extra=_item_fields(item, sample_index, contender.sampling.temperature),
                            )
                            _grade(rec, item)
                            if judge is not None and judge_client is not None and sample_index == 0:
                                await _judge(session, judge, judge_client, item, rec)
                        writer.write(rec)
                        records.append(rec)

                    plan = [(0, c)] + [(i, c.with_sampling(temperature=temperature, seed=seed + i))
                                       for i in range(1, k_samples + 1 if k_samples > 1 else 1)]
                    await asyncio.gather(*(ask(item, i, contender) for item in items for i, contender in plan))
    finally:
        if judge_client is not None:
            await judge_client.aclose()
    return records


async def _judge(
    session: Session, judge: Contender, client: httpx.AsyncClient, item: QAItem, rec: Record
) -> None:
    """Ask the judge about one graded answer; its verdict goes on the answer's record."""
    rec.extra.update(judge_grade=None, judge_response=None, judge_error=None)
    response = rec.extra.get("response")
    if response is None:
        return
    jrec = await probe(client, session.target(judge, keep_itl=False), _judge_prompt(item, response),
                       request_id=f"judge:{judge.name}:{rec.request_id}")
    if not jrec.ok:
        rec.extra["judge_error"] = f"{jrec.error_class}: {jrec.error_message}"
        return
    rec.extra["judge_response"] = jrec.output_text
    rec.extra["judge_grade"] = parse_judge_verdict(jrec.output_text or "")
    if rec.extra["judge_grade"] is None:
        rec.extra["judge_error"] = "unrecognised verdict"


def run_hallucination(
    session: Session,
    items: Sequence[QAItem],
    *,
    k_samples: int = 1,
    temperature: float = 0.8,
    seed: int = 0,
    judge_contender: str = "",
    concurrency: int = 1,
) -> list[Record]:
    """Ask every contender every item, at most `concurrency` at a time per contender; records
    are appended to `<run>/hallucination.jsonl` as they complete. Request ids are stable
    (`{contender}:{item}:{sample}`): a resumed session skips those already recorded. `k_samples` > 1 adds K answers
    at `temperature` per item for the consistency rate; `judge_contender` names one of the
    session's contenders to grade answers as well."""
    if k_samples < 1:
        raise ValueError(f"k_samples must be >= 1 (1 = no consistency samples), got {k_samples}")
    if k_samples > 1 and temperature <= 0:
        raise ValueError("k_samples > 1 needs temperature > 0: greedy samples always agree")
    if not items:
        raise ValueError("no items to ask")
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    judge: Contender | None = None
    if judge_contender:
        by_name = {c.name: c for c in session.contenders}
        if judge_contender not in by_name:
            raise ConfigError("judge_contender", None,
                              f"{judge_contender!r} is not a contender of this run; valid: "
                              f"{', '.join(by_name)}")
        judge = by_name[judge_contender].with_sampling(temperature=0.0, max_tokens=JUDGE_MAX_TOKENS)
    return run_sync(_run(session, items, k_samples, temperature, seed, judge, concurrency))
