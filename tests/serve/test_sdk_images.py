"""The official SDKs show the mock server an image and read its answer (offline: loopback only).

The mock answers an image request by a rule (each image's pixel size and type), so an SDK that
reads "1 image: 16x16 png" back has sent the image in its own spelling and parsed the mock's
answer in the provider's shape — the same path as a text answer, with an image on the way in."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from workbench.measure.image_probe import probe_image
from workbench.serve.mock import MockServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]  # the vendor SDKs' first imports

ANSWER = "1 image: 16x16 png"


def _png_b64() -> str:
    return base64.b64encode(probe_image().data).decode()


def test_openai_sdk_chat_and_responses() -> None:
    openai = pytest.importorskip("openai")
    url = f"data:image/png;base64,{_png_b64()}"
    with MockServer() as srv, openai.OpenAI(base_url=srv.base_url, api_key="test-key", max_retries=0) as client:
        chat: Any = client.chat.completions.create(model="m", messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "What is this?"}]}])
        resp: Any = client.responses.create(model="m", input=[{"role": "user", "content": [
            {"type": "input_image", "image_url": url, "detail": "auto"},
            {"type": "input_text", "text": "What is this?"}]}])
    assert ANSWER in chat.choices[0].message.content
    assert ANSWER in resp.output_text


def test_anthropic_sdk() -> None:
    anthropic = pytest.importorskip("anthropic")
    with (MockServer() as srv,
          anthropic.Anthropic(base_url=srv.url, api_key="test-key", max_retries=0) as client):
        msg: Any = client.messages.create(model="m", max_tokens=64, messages=[{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": _png_b64()}},
            {"type": "text", "text": "What is this?"}]}])
    assert ANSWER in msg.content[0].text


def test_google_genai_sdk() -> None:
    genai = pytest.importorskip("google.genai")
    from google.genai import types

    with MockServer() as srv:
        client = genai.Client(api_key="test-key", http_options=types.HttpOptions(base_url=srv.url,
                                                                                 api_version="v1beta"))
        try:
            out = client.models.generate_content(model="gemini-test", contents=[
                types.Part.from_bytes(data=probe_image().data, mime_type="image/png"), "What is this?"])
        finally:
            client.close()
    assert ANSWER in (out.text or "")
