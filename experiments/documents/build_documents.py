"""Builds contracts.jsonl and questions.jsonl, the bundled example of a long_doc task; deterministic.

Run from the project root: `python experiments/documents/build_documents.py`. The contracts are
written by `workbench.contract_text` (sized by the chars/4 estimate: the example shows the file
format; the context experiment sizes its own documents in each contender's tokens).
"""

from __future__ import annotations

import json
from pathlib import Path

from workbench.contract_text import generate

HERE = Path(__file__).resolve().parent
LENGTHS = (1024, 4096)


def main() -> None:
    docs, questions = [], []
    for n in LENGTHS:
        doc = generate(f"msa-{n}", n, seed=11)
        docs.append({"id": doc.id, "text": doc.text})
        for q in doc.questions:
            row = {"id": q.id, "document": doc.id, "question": q.question, "answers": list(q.answers)}
            if q.depth is not None:
                row["depth"] = str(q.depth)
            questions.append(row)
    (HERE / "contracts.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    (HERE / "questions.jsonl").write_text("".join(json.dumps(q) + "\n" for q in questions), encoding="utf-8")


if __name__ == "__main__":
    main()
