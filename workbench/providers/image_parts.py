"""A prompt's images as each wire format's content parts: the one place the four image shapes live.

Each function returns what the format's user turn carries: the prompt text alone when there are
no images (so a text-only request is byte-for-byte what it was), else the images first, then the
text (Anthropic's vision guide: images before the question work best; the others do not mind).
Shapes, as documented and as the official SDKs type them (read from the installed packages):

- OpenAI chat (platform.openai.com/docs/guides/images-vision; openai-python 3.63.0
  `types/chat/chat_completion_content_part_image_param.py`): `{"type": "image_url",
  "image_url": {"url": <https URL or data:<mime>;base64,...>, "detail"?}}` beside
  `{"type": "text", "text": ...}`.
- OpenAI Responses (`types/responses/response_input_image_param.py`): `{"type": "input_image",
  "image_url": <URL or data URL>, "detail": low|high|auto}` (detail is required there) beside
  `{"type": "input_text", "text": ...}`.
- Anthropic Messages (docs.anthropic.com/en/docs/build-with-claude/vision; anthropic-sdk-python
  2.17.0 `types/image_block_param.py`, `base64_image_source_param.py`, `url_image_source_param.py`):
  `{"type": "image", "source": {"type": "base64", "media_type", "data"}}` or
  `{"type": "image", "source": {"type": "url", "url"}}` beside `{"type": "text", "text"}`.
- Gemini (ai.google.dev/api/caching#Part; google-genai 3.6.1 `types.Part.from_bytes` /
  `from_uri`): `{"inlineData": {"mimeType", "data": <base64>}}` or
  `{"fileData": {"mimeType", "fileUri"}}` beside `{"text": ...}`.

`options.image_detail` (low / high / auto / original) sets OpenAI's `detail`; Responses sends
`auto` when unset, chat leaves it out (the API's default is auto).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from workbench.types import ImageInput

__all__ = ["anthropic_content", "data_url", "gemini_parts", "openai_chat_content", "responses_content"]


def _b64(image: ImageInput) -> str:
    assert image.data is not None
    return base64.b64encode(image.data).decode("ascii")


def data_url(image: ImageInput) -> str:
    """The image as OpenAI takes it: its URL, or its bytes as a base64 data URL."""
    return image.url if image.url is not None else f"data:{image.mime_type};base64,{_b64(image)}"


def openai_chat_content(text: str, images: Sequence[ImageInput], detail: str | None = None
                        ) -> str | list[dict[str, Any]]:
    """A chat completions user message's `content`."""
    if not images:
        return text
    extra = {"detail": detail} if detail else {}
    return [*({"type": "image_url", "image_url": {"url": data_url(im), **extra}} for im in images),
            {"type": "text", "text": text}]


def responses_content(text: str, images: Sequence[ImageInput], detail: str | None = None
                      ) -> str | list[dict[str, Any]]:
    """A Responses API input message's `content`."""
    if not images:
        return text
    return [*({"type": "input_image", "image_url": data_url(im), "detail": detail or "auto"} for im in images),
            {"type": "input_text", "text": text}]


def anthropic_content(text: str, images: Sequence[ImageInput]) -> str | list[dict[str, Any]]:
    """A Messages API user turn's `content`."""
    if not images:
        return text
    blocks: list[dict[str, Any]] = [
        {"type": "image", "source": {"type": "url", "url": im.url} if im.url is not None else
         {"type": "base64", "media_type": im.mime_type, "data": _b64(im)}}
        for im in images]
    return [*blocks, {"type": "text", "text": text}]


def gemini_parts(text: str, images: Sequence[ImageInput]) -> list[dict[str, Any]]:
    """A generateContent user turn's `parts`."""
    parts: list[dict[str, Any]] = [
        {"fileData": {"mimeType": im.mime_type, "fileUri": im.url}} if im.url is not None else
        {"inlineData": {"mimeType": im.mime_type, "data": _b64(im)}}
        for im in images]
    return [*parts, {"text": text}]
