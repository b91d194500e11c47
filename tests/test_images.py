"""Image inputs in data files (workbench.images) and the generated image spot-check (workbench.imageset)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workbench.analysis.grading import grade_response, load_dataset
from workbench.config import Contender
from workbench.errors import ConfigError
from workbench.images import image_from_bytes, image_input_support, unsupported_reason
from workbench.imageset import draw_spotcheck, spotcheck_file, write_spotcheck
from workbench.tasks import load_prompt_rows
from workbench.types import Prompt


def test_spotcheck_is_deterministic_small_and_graded_by_the_qa_reader(tmp_path: Path) -> None:
    assert [i.png for i in draw_spotcheck(3)] == [i.png for i in draw_spotcheck(3)]
    assert [i.png for i in draw_spotcheck(3)] != [i.png for i in draw_spotcheck(4)]
    items = load_dataset(write_spotcheck(tmp_path, seed=3))
    assert sum(len(i.png) for i in draw_spotcheck(3)) < 100_000 and len(items) == 27
    assert {i.category for i in items} >= {"image_count", "image_colour", "image_chart", "image_text", "image_table",
                                           "image_unanswerable"}
    assert all(len(i.images) == 1 and i.images[0].mime_type == "image/png" and i.images[0].data for i in items)
    unanswerable = [i for i in items if not i.answerable]
    assert len(unanswerable) == 9
    for item in items:  # the truth grades itself correct; an abstention is right only where nothing is there
        if item.answerable:
            assert grade_response(item.answers[0], item.answers, True, question=item.question).grade == "correct"
        else:
            assert grade_response("I don't know.", item.answers, False, question=item.question).grade == "correct"


def test_spotcheck_file_is_written_once_into_the_cache(tmp_path: Path) -> None:
    first = spotcheck_file(cache=tmp_path)
    stamp = first.stat().st_mtime_ns
    assert spotcheck_file(cache=tmp_path) == first and first.stat().st_mtime_ns == stamp


def test_prompt_rows_read_images_relative_to_the_data_file(tmp_path: Path) -> None:
    write_spotcheck(tmp_path / "pics")
    data = tmp_path / "prompts.jsonl"
    data.write_text(json.dumps({"text": "Describe it.", "images": ["pics/chart-1.png", "https://example.com/a.webp"]})
                    + "\n", encoding="utf-8")
    (prompt,) = load_prompt_rows(data)
    local, remote = prompt.images
    assert (local.width, local.height, local.mime_type) == (400, 300, "image/png")
    assert remote.url == "https://example.com/a.webp" and remote.mime_type == "image/webp" and remote.data is None


@pytest.mark.parametrize(("content", "reason"), [
    ({"text": "x", "images": ["missing.png"]}, "no such image file"),
    ({"text": "x", "images": ["notes.txt"]}, "not a readable image"),
    ({"text": "x", "images": ["https://example.com/a.bmp"]}, "must end in one of"),
])
def test_bad_images_name_the_file_line_and_reason(tmp_path: Path, content: dict[str, object], reason: str) -> None:
    (tmp_path / "notes.txt").write_text("not an image", encoding="utf-8")
    data = tmp_path / "prompts.jsonl"
    data.write_text(json.dumps(content) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=reason) as err:
        load_prompt_rows(data)
    assert str(data) in str(err.value) and "line 1: images" in str(err.value)


def test_an_unsupported_image_type_is_refused(tmp_path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (4, 4)).save(tmp_path / "a.bmp")
    data = tmp_path / "qa.csv"
    data.write_text("question,answers,images\nWhat is it?,thing,a.bmp\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"row 1 \(line 2\): images: .*unsupported image type BMP"):
        load_dataset(data)


def test_image_support_declared_embedded_or_unknown() -> None:
    image = image_from_bytes(draw_spotcheck(0)[0].png, "shapes.png")
    embedded = Contender(name="e", api="openai-chat", model="m", local="qwen2.5-coder-0.5b-instruct")
    hosted = Contender(name="h", api="anthropic", model="claude", base_url="http://127.0.0.1")
    declared = hosted.model_copy(update={"declared": {"image_input": False}})
    completions = Contender(name="c", api="openai-completions", model="m", base_url="http://127.0.0.1",
                            prompt_template="{prompt}")
    assert image_input_support(embedded)[0] is False and image_input_support(hosted)[0] is None
    assert image_input_support(declared) == (False, "declared in the contenders file (declared.image_input)")
    assert image_input_support(completions)[0] is False
    claimed = completions.model_copy(update={"declared": {"image_input": True}})
    assert image_input_support(claimed) == (False, "wire format openai-completions has no image part")
    prompt = Prompt(id="p", text="Describe it.", images=(image,))
    assert "takes no image input" in (unsupported_reason(embedded, prompt) or "")
    assert unsupported_reason(hosted, prompt) is None
    assert unsupported_reason(embedded, Prompt(id="t", text="text only")) is None


def test_the_spotcheck_is_a_named_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from workbench.experiments.hallucination import IMAGE_SPOTCHECK, load_items

    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    items = load_items(IMAGE_SPOTCHECK)
    assert items and all(i.images for i in items) and str(items[0].images[0].source).startswith(str(tmp_path))


def test_validate_reads_every_image_a_task_names(tmp_path: Path) -> None:
    from workbench.tasks import Task

    data = tmp_path / "qa.jsonl"
    data.write_text(json.dumps({"question": "q?", "answers": ["a"], "images": ["gone.png"]}) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="line 1: images: no such image file"):
        Task(type="qa", data=str(data)).check()


def test_the_spotchecks_categories_are_listed() -> None:
    from workbench.analysis.grading import CATEGORIES

    assert {q[1] for img in draw_spotcheck(0) for q in img.questions} <= set(CATEGORIES)


def test_prompt_sets_take_images_too(tmp_path: Path) -> None:
    from workbench.prompts import load_prompts

    write_spotcheck(tmp_path)
    (tmp_path / "set.jsonl").write_text(json.dumps({"id": "a", "text": "Title?", "images": ["chart-1.png"]}) + "\n"
                                        + json.dumps({"id": "b", "text": "x", "images": "chart-1.png"}) + "\n",
                                        encoding="utf-8")
    with pytest.raises(ConfigError, match="line 2: images: must be a list"):
        load_prompts(tmp_path / "set.jsonl")
    (tmp_path / "ok.jsonl").write_text(json.dumps({"id": "a", "text": "Title?", "images": ["chart-1.png"]}) + "\n",
                                       encoding="utf-8")
    (prompt,) = load_prompts(tmp_path / "ok.jsonl")
    assert (prompt.images[0].width, prompt.images[0].height) == (400, 300)
