"""The `image_input` integration fact: probed with a tiny image when the contender is keyed, else
declared, else unknown — in the shape of `workbench.measure.capabilities` facts
(`{"value", "source": "probed" | "declared" | "unknown", "detail"}`), so it can join them.

The probe sends one non-streamed request showing a 16 × 16 single-colour PNG (a few dozen image
tokens on any provider) and asks its colour. An answer is a probed `True`; a 400 (or an
unreadable answer) is a probed `False`: the API refused the image part. Anything transient (a
429, a timeout, an outage) leaves the fact to the declaration, else unknown — never a `False`.
A contender that takes no images by declaration or by kind (`workbench.images.image_input_support`:
the embedded models, the completion formats) is not sent anything.
"""

from __future__ import annotations

import io
from typing import Any

import httpx

from workbench.images import image_from_bytes, image_input_support
from workbench.measure.probe import probe
from workbench.measure.target import Target
from workbench.types import ErrorClass, ImageInput, Prompt

__all__ = ["IMAGE_INPUT", "PROBE_MAX_TOKENS", "probe_image", "probe_image_input"]

IMAGE_INPUT = "image_input"
PROBE_MAX_TOKENS = 16
#: Failures that say the API refused the request itself (as the capability probes read them).
_REFUSALS = {ErrorClass.BAD_REQUEST.value, ErrorClass.PROTOCOL.value}


def _fact(value: Any, source: str, detail: str) -> dict[str, Any]:
    return {"value": value, "source": source, "detail": detail}


def probe_image() -> ImageInput:
    """The probe's image: a 16 × 16 red PNG, drawn here (nothing to ship)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (220, 30, 30)).save(buf, format="PNG")
    return image_from_bytes(buf.getvalue(), "probe:red-16x16.png")


async def probe_image_input(client: httpx.AsyncClient, target: Target) -> dict[str, Any]:
    """The `image_input` fact for the target's contender (see the module docstring)."""
    c = target.contender
    takes, why = image_input_support(c)
    if takes is False:
        return _fact(False, "declared", why)
    fallback = _fact(True, "declared", why) if takes else _fact(None, "unknown", why)
    if c.key_missing():
        return {**fallback, "detail": f"{fallback['detail']}; not probed: ${c.api_key_env} is not set"}
    small = c.with_sampling(max_tokens=min(c.sampling.max_tokens, PROBE_MAX_TOKENS))
    prompt = Prompt(id="capabilities:image_input", text="What colour is this image? One word.",
                    images=(probe_image(),))
    rec = await probe(client, target.replace(contender=small, stream=False, keep_itl=False,
                                             experiment="capabilities"), prompt)
    if rec.ok:
        return _fact(True, "probed", f"answered a 16x16 image: {(rec.output_text or '')[:40]!r}")
    if rec.error_class in _REFUSALS:
        return _fact(False, "probed", f"refused: {rec.error_class}: {(rec.error_message or '')[:200]}")
    return {**fallback, "detail": f"{fallback['detail']}; probe inconclusive: {rec.error_class}"}
