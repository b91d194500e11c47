"""Images through the whole path against the mock server: data file → wire part → mock (which
decodes each image and answers its size) → record → deterministic grade; and the image
spot-check run end to end by the hallucination experiment (bounded: a few seconds)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from tests.conftest import contender_for
from workbench.analysis.grading import load_dataset
from workbench.config import Contender
from workbench.experiments.hallucination import run_hallucination
from workbench.images import image_from_bytes
from workbench.imageset import draw_spotcheck, spotcheck_file
from workbench.measure.probe import probe_once
from workbench.measure.target import Target
from workbench.results import RunDir
from workbench.serve.image_input import describe, request_images
from workbench.serve.mock import MockServer
from workbench.session import Session
from workbench.types import ImageInput, Prompt

HOSTED = ("openai-chat", "openai-responses", "anthropic", "gemini")
SHAPES = image_from_bytes(draw_spotcheck(0)[0].png, "shapes.png")  # 320 × 240
URL = ImageInput(mime_type="image/png", url="https://example.com/a.png", source="https://example.com/a.png")

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("fmt", HOSTED)
@pytest.mark.parametrize("stream", [True, False])
def test_each_dialect_carries_the_image_to_the_server(wire: MockServer, fmt: str, stream: bool) -> None:
    c = contender_for(fmt, wire)
    rec = probe_once(Target(c, base_url=c.base_url or "", stream=stream),
                     Prompt(id="p", text="What is this?", images=(SHAPES, URL)))
    assert rec.ok, rec.error_message
    assert rec.output_text == "2 images: 320x240 png, an image at https://example.com/a.png."
    assert rec.extra["n_images"] == 2 and rec.extra["image_tokens_estimate"] > 0  # the URL image not counted
    assert "1 image(s) by URL not counted" in rec.extra["image_tokens_rule"]
    # The server's count holds the image: the scenario's 12 prompt tokens plus the documented rule's.
    assert rec.token_source == "server" and rec.input_tokens == 12 + rec.extra["image_tokens_estimate"]
    assert wire.requests[-1]["json"] is not None


@pytest.mark.parametrize("fmt", HOSTED)
def test_an_undecodable_image_gets_the_dialects_bad_request(wire: MockServer, fmt: str) -> None:
    broken = ImageInput(mime_type="image/png", data=b"not a png", source="broken.png")
    c = contender_for(fmt, wire)
    rec = probe_once(Target(c, base_url=c.base_url or ""), Prompt(id="p", text="What?", images=(broken,)))
    assert (rec.status, rec.error_class, rec.http_status) == ("error", "bad_request", 400)


def test_the_rule_reads_sdk_spellings_and_ignores_text_only_requests() -> None:
    b64 = base64.urlsafe_b64encode(draw_spotcheck(0)[1].png).decode()  # google-genai's alphabet and names
    seen = request_images("gemini", {"contents": [{"parts": [{"inline_data": {"data": b64}}, {"text": "x"}]}]})
    assert describe(seen) == "1 image: 400x300 png."
    assert request_images("openai-chat", {"messages": [{"role": "user", "content": "hi"}]}) == []


def test_the_image_spotcheck_runs_end_to_end(wire: MockServer, tmp_path: Path) -> None:
    """Every hosted wire format and the embedded model, through the hallucination experiment: the
    hosted ones are answered by the mock's size rule and graded; the embedded one, text only, gets
    `unsupported_input` records, never a request."""
    items = load_dataset(spotcheck_file(cache=tmp_path / "cache"))
    hosted = [contender_for(fmt, wire, name=f"h-{fmt}") for fmt in HOSTED]
    embedded = Contender(name="embedded", api="openai-chat", model="m", local="qwen2.5-coder-0.5b-instruct")
    contenders = [*hosted, embedded]
    urls = {c.name: c.base_url or "" for c in hosted} | {"embedded": wire.base_url_for("openai-chat")}
    session = Session(run=RunDir.create(tmp_path), experiment="hallucination", contenders=contenders, skipped=[],
                      base_urls=urls)
    records = run_hallucination(session, items)
    assert len(records) == len(items) * len(contenders)
    for rec in records:
        if rec.contender == "embedded":
            assert rec.error_class == "unsupported_input" and rec.extra["grade"] is None
            continue
        assert rec.ok and (rec.output_text or "").startswith("1 image: "), rec.error_message
        assert rec.extra["grade"] in ("correct", "incorrect", "not_attempted")
    assert len(wire.requests) == len(items) * len(hosted)  # the embedded model's were never sent
    sizes = {(im.width, im.height) for item in items for im in item.images}
    answered = {r.output_text for r in records if r.ok}
    assert answered == {f"1 image: {w}x{h} png." for w, h in sizes}
