"""Image parts in every hosted wire format: each request with an image matches the provider's
documented shape and the official SDK's own request for the same input, built offline (the SDK
sends to an `httpx.MockTransport` that keeps the body and answers 400; no key, no network)."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from workbench.config import Contender
from workbench.images import image_from_bytes
from workbench.imageset import draw_spotcheck
from workbench.providers import get_provider
from workbench.types import ImageInput, Prompt

PNG = draw_spotcheck(0)[0].png
B64 = base64.b64encode(PNG).decode("ascii")
URL = "https://example.com/chart.png"
IMAGES = (image_from_bytes(PNG, "shapes.png"), ImageInput(mime_type="image/png", url=URL, source=URL))
PROMPT = Prompt(id="p", text="How many circles?", images=IMAGES)


def _body(api: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    c = Contender(name="c", api=api, model="m", base_url="http://127.0.0.1/v1", options=options or {})
    return get_provider(api).build_request(c, PROMPT, stream=False, api_key="k", base_url="http://127.0.0.1/v1").json


def _capture(http: Any = httpx) -> tuple[list[dict[str, Any]], Any]:
    """A client of `http` (httpx, or httpx2 for the SDKs built on it) that keeps each body sent."""
    sent: list[dict[str, Any]] = []

    def handler(request: Any) -> Any:
        sent.append(json.loads(request.content))
        return http.Response(400, json={"error": {"message": "captured", "type": "invalid_request_error"}})

    return sent, http.Client(transport=http.MockTransport(handler))


def test_text_only_prompts_are_unchanged() -> None:
    c = Contender(name="c", api="anthropic", model="m", base_url="http://127.0.0.1")
    body = get_provider("anthropic").build_request(c, Prompt(id="t", text="hi"), stream=False, api_key=None,
                                                   base_url="http://127.0.0.1").json
    assert body["messages"] == [{"role": "user", "content": "hi"}]


@pytest.mark.slow  # the vendor SDK's first import: up to ~10 s on 2 cores
def test_openai_chat_and_responses_match_the_sdk() -> None:
    openai = pytest.importorskip("openai")
    sent, http = _capture()
    documented = [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{B64}", "detail": "low"}},
                  {"type": "image_url", "image_url": {"url": URL, "detail": "low"}},
                  {"type": "text", "text": PROMPT.text}]
    with openai.OpenAI(base_url="http://sdk.test/v1", api_key="k", http_client=http, max_retries=0) as client:
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": documented}])
        with pytest.raises(openai.BadRequestError):
            client.responses.create(model="m", input=[{"role": "user", "content": [
                {"type": "input_image", "image_url": f"data:image/png;base64,{B64}", "detail": "auto"},
                {"type": "input_image", "image_url": URL, "detail": "auto"},
                {"type": "input_text", "text": PROMPT.text}]}])
    assert _body("openai-chat", {"image_detail": "low"})["messages"] == sent[0]["messages"]
    assert _body("openai-responses")["input"] == sent[1]["input"]


@pytest.mark.slow
def test_anthropic_matches_the_sdk() -> None:
    anthropic = pytest.importorskip("anthropic")
    sent, http = _capture(pytest.importorskip("httpx2"))  # anthropic 2.x is built on httpx2
    with (anthropic.Anthropic(base_url="http://sdk.test", api_key="k", http_client=http, max_retries=0) as client,
          pytest.raises(anthropic.BadRequestError)):
        client.messages.create(model="m", max_tokens=8, messages=[{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": B64}},
            {"type": "image", "source": {"type": "url", "url": URL}},
            {"type": "text", "text": PROMPT.text}]}])
    assert _body("anthropic")["messages"] == sent[0]["messages"]


@pytest.mark.slow
def test_gemini_matches_the_sdk_parts() -> None:
    genai = pytest.importorskip("google.genai")
    from google.genai import errors, types

    sent, http = _capture()
    client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url="http://sdk.test", httpx_client=http))
    with pytest.raises(errors.APIError):
        client.models.generate_content(model="m", contents=[types.Content(role="user", parts=[
            types.Part.from_bytes(data=PNG, mime_type="image/png"),
            types.Part.from_uri(file_uri=URL, mime_type="image/png"),
            types.Part.from_text(text=PROMPT.text)])])
    # The SDK spells fileData's fields in snake_case and encodes bytes URL-safe (pydantic); proto3
    # JSON, which the API reads, takes either name and either base64 alphabet. Same request.
    assert _proto_json(_body("gemini")["contents"]) == _proto_json(sent[0]["contents"])


def _proto_json(value: Any) -> Any:
    """Field names in lowerCamelCase and `data` as decoded bytes: proto3 JSON's equivalences."""
    if isinstance(value, list):
        return [_proto_json(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, v in value.items():
        head, *rest = key.split("_")
        name = head + "".join(w.title() for w in rest)
        decoded = name == "data" and isinstance(v, str)
        out[name] = base64.urlsafe_b64decode(v.replace("+", "-").replace("/", "_")) if decoded else _proto_json(v)
    return out


def test_completion_formats_and_embedded_models_get_unsupported_input(wire: Any) -> None:
    from workbench.measure.probe import probe_once
    from workbench.measure.target import Target

    embedded = Contender(name="e", api="openai-chat", model="m", local="qwen2.5-coder-0.5b-instruct")
    rec = probe_once(Target(embedded, base_url=wire.base_url_for("openai-chat")), PROMPT)
    assert (rec.status, rec.error_class) == ("error", "unsupported_input")
    assert "takes no image input" in (rec.error_message or "") and rec.e2e_s is None
    assert not wire.requests  # never sent
