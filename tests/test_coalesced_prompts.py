"""Coalesced prompts: the coalesced-answer parser loses nothing; dedupe and cache; the dataset."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import yaml

from workbench.coalesced_prompts import (
    AnswerCache,
    build_batch_prompt,
    dedupe,
    normalize_doc,
    parse_batch_answer,
    parse_single_label,
)

LABELS = ["billing", "shipping", "technical", "account", "other"]
DATA = Path(__file__).resolve().parents[1] / "experiments" / "annotation"


def test_prompt_numbers_documents_and_states_format() -> None:
    p = build_batch_prompt([("a", "first\ndoc"), ("b", "second")], LABELS)
    assert "1. first doc\n2. second" in p
    assert '"<n>: <label>"' in p and "exactly 2 lines" in p and "billing, shipping" in p
    assert "a" not in p.split("Documents:")[1].split()  # ids stay on our side
    with pytest.raises(ValueError):
        build_batch_prompt([], LABELS)


def test_clean_answer() -> None:
    r = parse_batch_answer("1: billing\n2: shipping\n3: other", 3, LABELS)
    assert r.labels == {1: "billing", 2: "shipping", 3: "other"} and r.complete
    assert r.missing == [] and r.invalid == {} and r.extra == [] and r.duplicates == {}


def test_reordered_and_list_forms() -> None:
    text = "\n".join(
        [
            "3) Technical.",
            "- 1. BILLING",
            "* **2**: `shipping`",
            "#4 - account",
            "Document 5: Other!",
            "[6] billing",
            "  7 = label: shipping",
        ]
    )
    r = parse_batch_answer(text, 7, LABELS)
    assert r.labels == {
        1: "billing",
        2: "shipping",
        3: "technical",
        4: "account",
        5: "other",
        6: "billing",
        7: "shipping",
    }
    assert r.complete and r.extra == []


def test_missing_and_malformed_are_reported() -> None:
    r = parse_batch_answer("Sure! Here are the labels:\n1: billing\n\nbilling for the third one\n", 3, LABELS)
    assert r.labels == {1: "billing"}
    assert r.missing == [2, 3]
    assert r.extra == ["Sure! Here are the labels:", "billing for the third one"]
    assert not r.complete


def test_duplicate_numbers_first_wins_and_recorded() -> None:
    r = parse_batch_answer("1: billing\n2: other\n1: shipping\n1: account", 2, LABELS)
    assert r.labels == {1: "billing", 2: "other"}
    assert r.duplicates == {1: ["shipping", "account"]}


def test_unknown_labels_and_out_of_range_numbers() -> None:
    r = parse_batch_answer("1: refund\n2: Shipping\n3: tech\n4: billing\n0: other", 3, LABELS)
    assert r.labels == {2: "shipping"}
    assert r.invalid == {1: "refund", 3: "tech"}
    assert r.missing == []  # answered, just not validly
    assert r.extra == ["4: billing", "0: other"]


def test_code_fences_are_ignored_but_nothing_else_is() -> None:
    r = parse_batch_answer("```\n1: billing\n2: other\n```", 2, LABELS)
    assert r.complete and r.extra == []
    with pytest.raises(ValueError):
        parse_batch_answer("", 0, LABELS)
    empty = parse_batch_answer("", 2, LABELS)
    assert empty.missing == [1, 2] and empty.labels == {}


def test_every_line_accounted_for() -> None:
    text = "intro\n1: billing\n2: nope\n2: other\n5: account\n3) shipping"
    r = parse_batch_answer(text, 4, LABELS)
    used = len(r.labels) + len(r.invalid) + len(r.extra) + sum(len(v) for v in r.duplicates.values())
    assert used == len([ln for ln in text.splitlines() if ln.strip()])
    assert r.missing == [4]


def test_parse_single_label() -> None:
    assert parse_single_label("billing", LABELS) == "billing"
    assert parse_single_label("  Shipping.\n", LABELS) == "shipping"
    assert parse_single_label("Label: **Technical**", LABELS) == "technical"
    assert parse_single_label("The category is account.", LABELS) == "account"
    assert parse_single_label("billing or shipping", LABELS) is None
    assert parse_single_label("refund", LABELS) is None
    assert parse_single_label("", LABELS) is None


def test_normalize_doc() -> None:
    a = "Can I get an invoice with my company's VAT number on it?"
    assert normalize_doc(a) == normalize_doc(
        "  can i get an invoice   with my company's vat number on it!!\n"
    )
    assert normalize_doc(a) == normalize_doc("Can I get an invoice, with my company's VAT number on it")
    assert normalize_doc("reset email") != normalize_doc("reset e-mail")  # wording, not formatting
    assert normalize_doc("ten days") != normalize_doc("10 days")


def test_dedupe_keeps_first_and_maps_all() -> None:
    docs = [("a", "Hello there."), ("b", "Other text"), ("c", "hello THERE"), ("d", "Hello there.")]
    unique, mapping = dedupe(docs)
    assert unique == [("a", "Hello there."), ("b", "Other text")]
    assert mapping == {"a": "a", "b": "b", "c": "a", "d": "a"}
    with pytest.raises(ValueError, match="duplicate document id"):
        dedupe([("a", "x"), ("a", "y")])


def test_answer_cache_counts() -> None:
    cache = AnswerCache()
    assert cache.get("My card was declined.") is None
    cache.put("My card was declined.", "billing")
    assert cache.get("my card was declined") == "billing"
    assert cache.get("Something else") is None
    assert (cache.hits, cache.misses) == (1, 2)
    assert len(cache) == 1 and "MY CARD WAS DECLINED!" in cache


def _rows() -> list[dict[str, str]]:
    with (DATA / "documents.jsonl").open(encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_dataset_shares() -> None:
    rows = _rows()
    labels = yaml.safe_load((DATA / "labels.yaml").read_text())["labels"]
    assert list(labels) == LABELS and all(isinstance(v, str) and v for v in labels.values())
    assert len(rows) >= 120
    ids = [r["id"] for r in rows]
    assert len(set(ids)) == len(ids)
    by_id = {r["id"]: r for r in rows}
    position = {i: n for n, i in enumerate(ids)}
    kinds = Counter(r.get("dup_kind", "original") for r in rows)
    assert kinds == {"original": 100, "exact": 21, "near": 21}
    for kind in ("exact", "near"):
        assert 0.12 <= kinds[kind] / len(rows) <= 0.18
    for r in rows:
        assert set(r) <= {"id", "text", "label", "dup_of", "dup_kind", "variation"}
        assert r["label"] in LABELS and r["text"].strip()
        if "dup_of" in r:
            orig = by_id[r["dup_of"]]
            assert "dup_of" not in orig and position[orig["id"]] < position[r["id"]]
            assert r["label"] == orig["label"]
            if r["dup_kind"] == "exact":
                assert r["text"] == orig["text"]
            else:
                assert r["text"] != orig["text"] and r["variation"] in {
                    "case",
                    "whitespace",
                    "punctuation",
                    "wording",
                }
    assert Counter(r["label"] for r in rows) == {
        "billing": 36, "shipping": 36, "technical": 31, "account": 23, "other": 16,
    }  # fmt: skip


def test_dedupe_on_dataset_merges_formatting_dups_only() -> None:
    rows = _rows()
    unique, mapping = dedupe([(r["id"], r["text"]) for r in rows])
    originals = [r for r in rows if "dup_of" not in r]
    wording = [r for r in rows if r.get("variation") == "wording"]
    assert len(unique) == len(originals) + len(wording)  # 107: no two originals collide
    for r in rows:
        if "dup_of" in r and r.get("variation") != "wording":
            assert mapping[r["id"]] == r["dup_of"]
        else:
            assert mapping[r["id"]] == r["id"]


def test_labels_with_underscores_survive_the_markdown_cleanup() -> None:
    """Emphasis marks around a label are dropped; the `_` inside `card_lost` is the label's own
    (it used to be stripped, so every `card_lost` line of a batch answer was invalid)."""
    labels = ["card_lost", "card-fees", "other", "billing"]
    got = parse_batch_answer("1: card_lost\n2: **card-fees**\n3: _other_\n**4.** `billing`", 4, labels)
    assert got.labels == {1: "card_lost", 2: "card-fees", 3: "other", 4: "billing"} and not got.invalid
    assert parse_single_label("**card_lost**", labels) == "card_lost"
