"""The mock server's side of image input: the images a request carries, read in each dialect,
and the small rule it answers them by, so a test sees the whole path (file → wire part → server
→ answer) and can check the bytes arrived whole.

The rule: an answer naming each image's pixel size and type as the server decoded it
("1 image: 320x240 png."); an image given by URL is named, not fetched. The usage it reports
counts each decoded image at its provider's documented rule (`workbench.image_tokens`) on top of
the scenario's prompt tokens, as a provider's count includes the images. An image part the server
cannot decode gets the dialect's 400 invalid-request error, as the providers answer one.
The shapes read are those `workbench.providers.image_parts` writes (and the SDKs send).
"""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from workbench.image_tokens import estimate_image_tokens
from workbench.serve.wire import anthropic_error, google_error, openai_error

__all__ = ["SeenImage", "bad_image_error", "describe", "image_tokens", "request_images"]


@dataclass(frozen=True, slots=True)
class SeenImage:
    """One image part of a request: decoded (`width`, `height`, `format`), or a URL not fetched."""

    width: int | None = None
    height: int | None = None
    format: str | None = None
    url: str | None = None


def _last_user_parts(fmt: str, req: Mapping[str, Any]) -> list[Any]:
    key = {"openai-responses": "input", "gemini": "contents"}.get(fmt, "messages")
    turns = req.get(key)
    if not isinstance(turns, list) or not turns or not isinstance(turns[-1], Mapping):
        return []
    content = turns[-1].get("parts" if fmt == "gemini" else "content")
    return content if isinstance(content, list) else []


def _decode(b64: Any) -> SeenImage:
    from PIL import Image, UnidentifiedImageError

    if not isinstance(b64, str):
        raise ValueError("image data is not a base64 string")
    try:
        raw = base64.b64decode(b64.replace("-", "+").replace("_", "/"), validate=True)
        with Image.open(io.BytesIO(raw)) as im:
            return SeenImage(im.size[0], im.size[1], (im.format or "").lower())
    except (binascii.Error, UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"could not process image: {exc}") from None


def _from_url(url: Any) -> SeenImage:
    if isinstance(url, str) and url.startswith("data:"):
        return _decode(url.partition(",")[2])
    return SeenImage(url=str(url))


def _seen(fmt: str, part: Any) -> SeenImage | None:
    if not isinstance(part, Mapping):
        return None
    kind = part.get("type")
    if fmt in ("openai-chat", "generic", "openai-completions") and kind == "image_url":
        inner = part.get("image_url")
        return _from_url(inner.get("url") if isinstance(inner, Mapping) else inner)
    if fmt == "openai-responses" and kind == "input_image":
        return _from_url(part.get("image_url"))
    if fmt == "anthropic" and kind == "image":
        source = part.get("source")
        if isinstance(source, Mapping) and source.get("type") == "url":
            return SeenImage(url=str(source.get("url")))
        return _decode(source.get("data") if isinstance(source, Mapping) else None)
    if fmt == "gemini":
        inline = part.get("inlineData") or part.get("inline_data")
        if isinstance(inline, Mapping):
            return _decode(inline.get("data"))
        file_data = part.get("fileData") or part.get("file_data")
        if isinstance(file_data, Mapping):
            return SeenImage(url=str(file_data.get("fileUri") or file_data.get("file_uri")))
    return None


def request_images(fmt: str, req: Mapping[str, Any]) -> list[SeenImage]:
    """The images of the request's last user turn, in order (none for a text-only request: a
    cheap check, as every load-test request passes here). ValueError for an undecodable image."""
    parts = _last_user_parts(fmt, req)
    return [seen for p in parts if (seen := _seen(fmt, p)) is not None] if parts else []


def describe(images: list[SeenImage]) -> str:
    """The mock's answer to a request with images: each one's size and type, in order."""
    names = [f"an image at {im.url}" if im.url is not None else f"{im.width}x{im.height} {im.format}"
             for im in images]
    return f"{len(images)} image{'s' if len(images) != 1 else ''}: {', '.join(names)}."


def image_tokens(fmt: str, model: str, images: list[SeenImage]) -> int:
    """The decoded images' tokens by the format's documented rule (URL images, not fetched: 0)."""
    total = 0
    for im in images:
        if im.width is not None and im.height is not None:
            est = estimate_image_tokens(fmt, model, im.width, im.height)
            total += est.tokens if est is not None else 0
    return total


def bad_image_error(fmt: str, reason: str) -> tuple[int, Any]:
    """(400, the dialect's invalid-request body) for an image part the server cannot decode."""
    if fmt == "anthropic":
        return 400, anthropic_error("invalid_request_error", f"messages.0.content: {reason}")
    if fmt == "gemini":
        return 400, google_error(400, "INVALID_ARGUMENT", f"Unable to process input image: {reason}")
    return 400, openai_error(f"Invalid image: {reason}", "invalid_request_error", "invalid_image")
