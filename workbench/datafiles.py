"""The user's data files: JSONL or CSV by extension, read as typed rows that know their place.

A workspace brings data in the shapes people already have — JSON Lines (one object a line) or
CSV with a header row (UTF-8; a list-valued column holds `|`-separated values) — and every
reader of the workbench (labelled texts, QA items, prompts) goes through `read_rows`, so a
mistake is reported the same way everywhere: file, line or row, field, reason, one line.

The kinds (`KINDS`), their fields and what an omitted field means:
- **labelled texts** (routing messages, documents to annotate): `text`, `label`, optional `id`
  (else `row-N`), optional `acceptable` (other labels that also count as right);
- **QA items** (hallucination spot-checks): `question`, `answers` (empty = unanswerable, a false
  premise), optional `passage` (grounded questions), `id`, `category`, `images`;
- **prompts** (generation, prototyping, load): `text`, optional `id`, `system`, `images`;
- **documents** (long documents, the context experiment): `text` or `file` (a text file beside
  the data file), optional `id`; and their **doc_questions**: `document` (an id), `question`,
  `answers`, optional `id`, `depth` (`workbench.documents`).

`images` lists image files relative to the data file (or http(s) URLs), shown to the model with
the text; `workbench.images` reads and checks them.

Parsing is the csv and json modules' (CSV in strict mode, so a stray quote is an error, not a
silently merged field); what is written here is only the one error shape and the row numbering
(a CSV record may span lines: it is named by its record number and first line).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from workbench.errors import ConfigError

__all__ = [
    "KINDS",
    "FieldSpec",
    "LabelledText",
    "Row",
    "jsonl_records",
    "load_labelled_texts",
    "read_rows",
]

#: Extensions read, by format.
FORMATS: dict[str, str] = {".jsonl": "jsonl", ".csv": "csv"}
#: The separator of a list-valued CSV cell ("Paris|Paris, France").
LIST_SEPARATOR = "|"


@dataclass(frozen=True)
class FieldSpec:
    """One column of a data kind: its type and whether a row may omit it."""

    type: Literal["str", "list", "bool"] = "str"
    required: bool = False
    #: An empty value is an error (for required text columns); False lets `answers` be empty.
    nonempty: bool = True
    doc: str = ""


@dataclass(frozen=True)
class Row:
    """One record: its values by field (already typed) and where it is, for error messages."""

    values: dict[str, Any]
    where: str  # "line 3" (JSONL) or "row 2 (line 3)" (CSV)
    number: int  # 1-based record number: the default id is row-<number>


KINDS: dict[str, dict[str, FieldSpec]] = {
    "labelled": {
        "text": FieldSpec(required=True, doc="the message or document"),
        "label": FieldSpec(required=True, doc="the right label"),
        "id": FieldSpec(doc="unique id (default row-N)"),
        "acceptable": FieldSpec("list", nonempty=False, doc="other labels that also count as right"),
    },
    "qa": {
        "question": FieldSpec(required=True, doc="the question"),
        "answers": FieldSpec("list", required=True, nonempty=False,
                             doc="accepted answers; empty = unanswerable (a false premise)"),
        "passage": FieldSpec(nonempty=False, doc="the text to answer from (grounded questions)"),
        "id": FieldSpec(doc="unique id (default row-N)"),
        "category": FieldSpec(doc="a slug to group results by"),
        "answerable": FieldSpec("bool", doc="default: answers is not empty"),
        "images": FieldSpec("list", nonempty=False, doc="image files (relative to this file) or URLs shown with it"),
    },
    "prompts": {
        "text": FieldSpec(required=True, doc="the prompt"),
        "id": FieldSpec(doc="unique id (default row-N)"),
        "system": FieldSpec(nonempty=False, doc="a system message"),
        "images": FieldSpec("list", nonempty=False, doc="image files (relative to this file) or URLs shown with it"),
    },
    "documents": {
        "text": FieldSpec(nonempty=False, doc="the document (or give file)"),
        "file": FieldSpec(nonempty=False, doc="a UTF-8 text file holding the document, relative to this file"),
        "id": FieldSpec(doc="unique id (default row-N)"),
    },
    "doc_questions": {
        "document": FieldSpec(required=True, doc="the id of the document asked about"),
        "question": FieldSpec(required=True, doc="the question"),
        "answers": FieldSpec("list", required=True, doc="accepted answers, each appearing in the document"),
        "id": FieldSpec(doc="unique id (default row-N)"),
        "depth": FieldSpec(doc="fraction 0-1 of the document before the answer (default: where it first appears)"),
    },
}


def data_format(path: Path) -> str:
    """`jsonl` or `csv` from the extension; anything else is a ConfigError naming the valid ones."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ConfigError(str(path), None, f"unknown data format {path.suffix or '(no extension)'!r}; "
                                           f"valid: {', '.join(FORMATS)}")
    return fmt


def read_rows(path: str | Path, fields: Mapping[str, FieldSpec], *,
              extra: Literal["forbid", "keep"] = "forbid") -> list[Row]:
    """Every record of a JSONL or CSV file, typed by `fields`; any mistake is a ConfigError with
    file, line/row, field and reason. `extra="keep"` passes unknown fields through untyped (for
    kinds that carry free metadata); `"forbid"` names the valid fields."""
    p = Path(path)
    src = str(p)
    fmt = data_format(p)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(src, None, "no such file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(src, None, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(src, None, f"cannot read: {exc.strerror or exc}") from None
    raw = jsonl_records(text, src) if fmt == "jsonl" else _csv_records(text, src, fields, extra)
    rows = [Row(_typed(obj, where, src, fields, extra, fmt), where, n) for n, (obj, where) in enumerate(raw, 1)]
    if not rows:
        raise ConfigError(src, None, "no rows (the file is empty)")
    return rows


def jsonl_records(text: str, src: str) -> Iterator[tuple[dict[str, Any], str]]:
    """Each JSON object of a JSONL text and where it stands (`line N`); blank lines skipped. A line
    that is not JSON, or not an object, is a ConfigError naming file `src` and the line."""
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(src, f"line {n}", f"not valid JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise ConfigError(src, f"line {n}", "each line must be a JSON object")
        yield obj, f"line {n}"


def _csv_records(text: str, src: str, fields: Mapping[str, FieldSpec], extra: str
                 ) -> Iterator[tuple[dict[str, Any], str]]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise ConfigError(src, "line 1 (header)", f"bad CSV: {exc}") from None
    if header is None:
        return
    header = [h.strip() for h in header]
    for col in header:
        if extra == "forbid" and col not in fields:
            raise ConfigError(src, f"line 1 (header): {col}", f"unknown column; valid: {', '.join(fields)}")
    for name, spec in fields.items():
        if spec.required and name not in header:
            raise ConfigError(src, "line 1 (header)", f"missing column {name!r} (required)")
    row = 0
    while True:
        first_line = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ConfigError(src, f"row {row + 1} (line {first_line})", f"bad CSV: {exc}") from None
        if not any(c.strip() for c in cells):
            continue
        row += 1
        where = f"row {row} (line {first_line})"
        if len(cells) != len(header):
            raise ConfigError(src, where, f"{len(cells)} cells, the header has {len(header)}")
        # an empty cell is an omitted field, except in a required column (then "must not be empty")
        kept = {h: c for h, c in zip(header, cells, strict=True) if c != "" or fields.get(h, FieldSpec()).required}
        yield kept, where


def _typed(obj: Mapping[str, Any], where: str, src: str, fields: Mapping[str, FieldSpec], extra: str,
           fmt: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in obj.items():
        spec = fields.get(name)
        if spec is None:
            if extra == "forbid":
                raise ConfigError(src, f"{where}: {name}", f"unknown field; valid: {', '.join(fields)}")
            out[name] = value
            continue
        out[name] = _coerce(value, spec, fmt, src, f"{where}: {name}")
    for name, spec in fields.items():
        if spec.required and name not in out:
            raise ConfigError(src, f"{where}: {name}", "required field missing")
    return out


def _coerce(value: Any, spec: FieldSpec, fmt: str, src: str, where: str) -> Any:
    if spec.type == "list":
        if fmt == "csv" and isinstance(value, str):
            value = [v.strip() for v in value.split(LIST_SEPARATOR) if v.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise ConfigError(src, where, f"must be a list of non-empty strings (CSV: '{LIST_SEPARATOR}'-separated)")
        if spec.nonempty and not value:
            raise ConfigError(src, where, "must not be empty")
        return [v.strip() for v in value]
    if spec.type == "bool":
        if fmt == "csv" and isinstance(value, str):
            low = value.strip().lower()
            if low in ("true", "yes", "1"):
                return True
            if low in ("false", "no", "0"):
                return False
        if not isinstance(value, bool):
            raise ConfigError(src, where, "must be true or false")
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and fmt == "jsonl":
        value = str(value)  # an id or label written as a number
    if not isinstance(value, str):
        raise ConfigError(src, where, "must be a string")
    if spec.nonempty and not value.strip():
        raise ConfigError(src, where, "must not be empty")
    return value


def unique_ids(rows: list[Row], src: str) -> list[str]:
    """Each row's id (`id` or `row-N`), checked unique: a duplicate names both places."""
    seen: dict[str, str] = {}
    ids = []
    for r in rows:
        rid = str(r.values.get("id") or f"row-{r.number}")
        if rid in seen:
            raise ConfigError(src, f"{r.where}: id", f"duplicate id {rid!r} (first at {seen[rid]})")
        seen[rid] = r.where
        ids.append(rid)
    return ids


@dataclass(frozen=True)
class LabelledText:
    """A text with its right label (a routing message, a document to annotate)."""

    id: str
    text: str
    label: str
    acceptable: tuple[str, ...] = field(default_factory=tuple)

    @property
    def accepted(self) -> tuple[str, ...]:
        """Every label that counts as right: the label, then the acceptable ones."""
        return (self.label, *[a for a in self.acceptable if a != self.label])


def load_labelled_texts(path: str | Path) -> list[LabelledText]:
    """Labelled texts from a JSONL or CSV file (see the module docstring for the fields)."""
    rows = read_rows(path, KINDS["labelled"])
    ids = unique_ids(rows, str(path))
    return [LabelledText(i, r.values["text"], r.values["label"].strip(), tuple(r.values.get("acceptable", ())))
            for i, r in zip(ids, rows, strict=True)]
