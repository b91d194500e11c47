"""The user's data files: JSONL and CSV read the same way, every mistake one line naming the place."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.datafiles import KINDS, load_labelled_texts, read_rows
from workbench.errors import ConfigError


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_csv_and_jsonl_give_the_same_labelled_texts(tmp_path: Path) -> None:
    csv_file = write(tmp_path, "m.csv", 'text,label,acceptable\n"lost my card, help",card_lost,card-stolen|other\n'
                                         "where is my parcel,shipping,\n")
    jsonl_file = write(tmp_path, "m.jsonl", '{"text": "lost my card, help", "label": "card_lost", '
                                             '"acceptable": ["card-stolen", "other"]}\n'
                                             '{"text": "where is my parcel", "label": "shipping"}\n')
    a, b = load_labelled_texts(csv_file), load_labelled_texts(jsonl_file)
    assert a == b
    assert a[0].id == "row-1" and a[0].accepted == ("card_lost", "card-stolen", "other")
    assert a[1].acceptable == ()


def test_qa_answers_split_and_empty_means_unanswerable(tmp_path: Path) -> None:
    p = write(tmp_path, "qa.csv", "id,question,answers\nq1,Capital of France?,Paris|Paris France\n"
                                  "q2,Who first walked on Mars?,\n")
    rows = read_rows(p, KINDS["qa"])
    assert rows[0].values["answers"] == ["Paris", "Paris France"]
    assert rows[1].values["answers"] == []


def test_a_record_spanning_lines_is_named_by_row_and_first_line(tmp_path: Path) -> None:
    p = write(tmp_path, "m.csv", 'text,label\n"two\nlines",a\nthree,\n')
    with pytest.raises(ConfigError) as e:
        load_labelled_texts(p)
    assert "row 2 (line 4): label" in str(e.value) and "must not be empty" in str(e.value)


@pytest.mark.parametrize(("name", "text", "where", "reason"), [
    ("a.csv", "text\nhello\n", "line 1 (header)", "missing column 'label'"),
    ("b.csv", "text,label,colour\nhi,a,red\n", "colour", "unknown column; valid: text, label, id, acceptable"),
    ("c.csv", 'text,label\n"unclosed,a\n', "row 1", "bad CSV"),
    ("d.csv", 'text,label\n"ab"c,a\n', "row 1", "bad CSV"),
    ("e.jsonl", '{"text": "hi"}\n', "line 1: label", "required field missing"),
    ("f.jsonl", '{"text": "hi", "label": "a"}\n{"text": "x", "label": "b", "id": "row-1"}\n', "line 2: id",
     "duplicate id 'row-1'"),
    ("g.jsonl", "{not json}\n", "line 1", "not valid JSON"),
    ("h.txt", "text,label\n", "", "unknown data format '.txt'; valid: .jsonl, .csv"),
    ("i.csv", "", "", "no rows"),
    ("j.csv", "text,label\nhi,a,extra\n", "row 1 (line 2)", "3 cells, the header has 2"),
])
def test_each_mistake_is_one_line_with_file_place_and_reason(tmp_path: Path, name: str, text: str, where: str,
                                                             reason: str) -> None:
    p = write(tmp_path, name, text)
    with pytest.raises(ConfigError) as e:
        load_labelled_texts(p)
    msg = str(e.value)
    assert "\n" not in msg
    assert name in msg and where in msg and reason in msg


def test_a_missing_file_and_non_utf8_say_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_labelled_texts(tmp_path / "absent.csv")
    p = tmp_path / "latin.csv"
    p.write_bytes("text,label\ncaf\xe9,a\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_labelled_texts(p)
