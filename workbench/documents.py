"""Long documents and the questions asked about them: the context experiment's data.

A document comes from one of two places:
- the bundled example, generated (`workbench.contract_text`): contracts of any length with
  facts planted at known depths;
- the user's own (a workspace's `task: {type: long_doc, data: …, questions: …}`): a documents
  file (kind `documents`: `text` or `file`, optional `id`) and a questions file (kind
  `doc_questions`: `document`, `question`, `answers`, optional `id`, `depth`), JSONL or CSV like
  every data file (`workbench.datafiles`). A question's `depth` (0–1, the fraction of the
  document before its answer) is found where it is not given: where an accepted answer first
  appears in the text; a question none of whose answers is in its document is an error (the
  grader could only score it wrong).

Every mistake is a ConfigError naming the file, the row and the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from workbench.datafiles import KINDS, read_rows, unique_ids
from workbench.errors import ConfigError

__all__ = ["DocQuestion", "Document", "chars_per_4", "load_documents"]


@dataclass(frozen=True)
class DocQuestion:
    """One question about a document: its accepted answers, and where its answer sits (`depth`:
    the fraction of the document before it; `depths` for a question needing several facts;
    `target_depth` the depth it was meant to sit at, for a generated document)."""

    id: str
    question: str
    answers: tuple[str, ...]
    depth: float | None
    kind: str  # "single" | "two_fact"
    depths: tuple[float, ...] = ()
    target_depth: float | None = None


@dataclass(frozen=True)
class Document:
    """A document and its questions; `tokens` as `token_source` counted them (None: not yet)."""

    id: str
    text: str
    questions: tuple[DocQuestion, ...]
    tokens: int | None = None
    token_source: str = "unknown"
    meta: dict[str, object] = field(default_factory=dict)


def chars_per_4(text: str) -> int:
    """The estimate where no tokenizer is at hand: a token is about four characters of English."""
    return max(1, round(len(text) / 4))


def _depth(raw: str, src: str, where: str) -> float:
    try:
        d = float(raw)
    except ValueError:
        raise ConfigError(src, f"{where}: depth", f"{raw!r} is not a number (a fraction 0-1)") from None
    if not 0.0 <= d <= 1.0:
        raise ConfigError(src, f"{where}: depth", f"{d} is outside 0-1 (the fraction of the document before "
                                                  "the answer)")
    return d


def load_documents(documents: str | Path, questions: str | Path) -> list[Document]:
    """The user's documents, each with its questions (documents without a question are kept: they
    still measure latency and cost by length)."""
    dsrc, qsrc = str(documents), str(questions)
    rows = read_rows(documents, KINDS["documents"])
    ids = unique_ids(rows, dsrc)
    texts: dict[str, str] = {}
    for doc_id, row in zip(ids, rows, strict=True):
        text, file = row.values.get("text"), row.values.get("file")
        if bool(text) == bool(file):
            raise ConfigError(dsrc, f"{row.where}: text", "give the document as text or as file, one of them")
        if file:
            path = Path(dsrc).parent / str(file)
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(dsrc, f"{row.where}: file", f"cannot read {path}: {exc}") from None
            if not text.strip():
                raise ConfigError(dsrc, f"{row.where}: file", f"{path} is empty")
        texts[doc_id] = str(text)
    qrows = read_rows(questions, KINDS["doc_questions"])
    qids = unique_ids(qrows, qsrc)
    asked: dict[str, list[DocQuestion]] = {d: [] for d in texts}
    for qid, row in zip(qids, qrows, strict=True):
        doc = str(row.values["document"])
        if doc not in texts:
            raise ConfigError(qsrc, f"{row.where}: document", f"{doc!r} is not a document id in {dsrc}; "
                                                              f"valid: {', '.join(texts)}")
        answers = tuple(str(a) for a in row.values["answers"])
        text = texts[doc]
        found = [text.casefold().find(a.casefold()) for a in answers]
        at = min((i for i in found if i >= 0), default=-1)
        if at < 0:
            raise ConfigError(qsrc, f"{row.where}: answers", f"none of {list(answers)} appears in document "
                                                             f"{doc!r}: the grader could only score it wrong")
        raw = row.values.get("depth")
        depth = _depth(str(raw), qsrc, row.where) if raw else round(at / len(text), 3)
        asked[doc].append(DocQuestion(qid, str(row.values["question"]), answers, depth, "single"))
    return [Document(d, texts[d], tuple(asked[d]), meta={"source": dsrc}) for d in texts]
