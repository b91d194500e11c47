"""How many input tokens an image costs, by each provider's documented rule: an estimate, used
only where the server does not say (its usage wins; the providers' usage parsers keep the
images' part as `Usage.image_input_tokens` where an API splits it out).

The rules, as the providers document them (read 2026-12-08):

- **OpenAI** (platform.openai.com/docs/guides/images-vision, "Calculating costs"; openai-python
  3.63.0 links it as developers.openai.com/api/docs/guides/images-vision):
  - *tile rule* (GPT-4o, GPT-4.1, GPT-4.5, GPT-5, o1, o3, computer-use): `detail: low` costs the
    base alone; otherwise the image is fitted in 2048 × 2048, then scaled so its shortest side is
    768 px (neither step enlarges it), and costs base + per-tile × the 512 px tiles covering it.
    Base and per-tile differ by model: 85 + 170 (GPT-4o, 4.1, 4.5), 70 + 140 (GPT-5),
    75 + 150 (o1, o3), 2833 + 5667 (GPT-4o mini), 65 + 129 (computer-use-preview).
    Worked examples: 1024 × 1024 high → 765; 2048 × 4096 high → 1105; any size low → 85.
  - *patch rule* (GPT-4.1 mini / nano, o4-mini, GPT-5 mini / nano): the 32 × 32 px patches
    covering the image, at most 1536 (a larger image is shrunk by √(1536·32²/(w·h)), then
    again so its width is a whole number of patches), times a model multiplier (1.62 for 4.1
    mini and 5 mini, 2.46 for 4.1 nano and 5 nano, 1.72 for o4-mini); `detail` does not apply.
    Worked examples: 1024 × 1024 → 1024 patches; 1800 × 2400 → 1452 patches.
- **Anthropic** (docs.anthropic.com/en/docs/build-with-claude/vision, "Evaluate image size"):
  tokens = width × height / 750, after an image whose long edge exceeds 1568 px or that would
  cost more than about 1600 tokens is scaled down, aspect ratio kept. Worked examples:
  200 × 200 → ~54; 1000 × 1000 → ~1334; 1092 × 1092 → ~1590 (rounded up, as the examples are).
- **Gemini** (ai.google.dev/gemini-api/docs/tokens, "Multimodal tokens"; and
  ai.google.dev/gemini-api/docs/media-resolution, "Token counts"):
  - Gemini 2.x and older: an image with both sides ≤ 384 px is 258 tokens; a larger one is
    cropped and scaled into 768 × 768 tiles, 258 tokens each (the tile count is estimated here
    as the 768 px tiles covering the image: the page does not give the crop).
  - Gemini 3 and later: a fixed budget per image by `media_resolution`: LOW 280, MEDIUM 560,
    HIGH 1120, ULTRA_HIGH 2240; unspecified means HIGH for images. The page calls these the
    maximum tokens allocated: an upper estimate.

Every result is an `ImageTokens` with `estimated=True` and the rule that produced it, so a
report can say where a number came from. Unknown models get the family's rule and say so.

Cost: all three bill image tokens as input tokens at the model's input rate (OpenAI's page says
so; Anthropic's and Gemini's price tables have no separate image rate for their chat models).
genai-prices 0.2.5 prices input image tokens apart (`input_image_mtok`) only for image-generation,
realtime / live and embedding models, none of them chat contenders here; so a record's
`input_tokens`, images included, is priced as it stands.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workbench.types import ImageInput, Prompt

if TYPE_CHECKING:
    from workbench.config import Contender

__all__ = [
    "ANTHROPIC_MAX_LONG_EDGE",
    "ANTHROPIC_MAX_TOKENS",
    "GEMINI3_BUDGETS",
    "ImageTokens",
    "anthropic_image_tokens",
    "contender_image_tokens",
    "estimate_image_tokens",
    "gemini_image_tokens",
    "openai_image_tokens",
    "prompt_image_tokens",
]


@dataclass(frozen=True, slots=True)
class ImageTokens:
    """One image's input tokens: `tokens`, the `rule` used (e.g. "openai tile 85+170×4"), and
    whether it is an estimate (always, from a rule; the server's usage is the measurement)."""

    tokens: int
    rule: str
    estimated: bool = True


# ---- OpenAI ------------------------------------------------------------------------------------

#: Tile-rule models: name prefix → (base tokens, tokens per 512 px tile).
_OPENAI_TILES: dict[str, tuple[int, int]] = {
    "gpt-4o": (85, 170), "chatgpt-4o": (85, 170), "gpt-4.1": (85, 170), "gpt-4.5": (85, 170),
    "gpt-4-turbo": (85, 170), "gpt-5": (70, 140), "o1": (75, 150), "o3": (75, 150),
    "gpt-4o-mini": (2833, 5667), "computer-use-preview": (65, 129),
}
#: Patch-rule models: name prefix → multiplier on the patch count.
_OPENAI_PATCHES: dict[str, float] = {
    "gpt-4.1-mini": 1.62, "gpt-4.1-nano": 2.46, "o4-mini": 1.72, "gpt-5-mini": 1.62, "gpt-5-nano": 2.46,
}
_PATCH = 32
_PATCH_CAP = 1536


def _longest_prefix(model: str, table: Mapping[str, Any]) -> str | None:
    hits = [p for p in table if model == p or model.startswith(p + "-") or model.startswith(p + ".")]
    return max(hits, key=len) if hits else None


def _patches(width: int, height: int) -> int:
    def covered(w: float, h: float) -> int:
        return math.ceil(w / _PATCH) * math.ceil(h / _PATCH)

    if covered(width, height) <= _PATCH_CAP:
        return covered(width, height)
    shrink = math.sqrt(_PATCH_CAP * _PATCH**2 / (width * height))
    w, h = width * shrink, height * shrink
    fit = math.floor(w / _PATCH) / (w / _PATCH)  # the width a whole number of patches
    return min(_PATCH_CAP, covered(w * fit, h * fit))


def _tiles(width: int, height: int) -> int:
    scale = min(1.0, 2048 / max(width, height))
    w, h = width * scale, height * scale
    scale = min(1.0, 768 / min(w, h))
    w, h = w * scale, h * scale
    return math.ceil(round(w, 6) / 512) * math.ceil(round(h, 6) / 512)


def openai_image_tokens(width: int, height: int, model: str, detail: str = "auto") -> ImageTokens:
    """One image's tokens for an OpenAI model (module docstring). `detail` low, high or auto
    (auto is counted as high: the larger of what the model may choose)."""
    _check_size(width, height)
    name = model.removeprefix("openai/")
    patch = _longest_prefix(name, _OPENAI_PATCHES)
    tile = _longest_prefix(name, _OPENAI_TILES)
    if patch is not None and (tile is None or len(patch) >= len(tile)):
        n = _patches(width, height)
        mult = _OPENAI_PATCHES[patch]
        return ImageTokens(math.ceil(n * mult), f"openai patches {n}×{mult} ({patch})")
    known = tile is not None
    base, per_tile = _OPENAI_TILES[tile or "gpt-4o"]
    label = tile if known else "gpt-4o's, the model is not in the documented table"
    if detail == "low":
        return ImageTokens(base, f"openai detail low: base {base} ({label})")
    n = _tiles(width, height)
    return ImageTokens(base + per_tile * n, f"openai tiles {base}+{per_tile}×{n} ({label})")


# ---- Anthropic ---------------------------------------------------------------------------------

ANTHROPIC_MAX_LONG_EDGE = 1568
ANTHROPIC_MAX_TOKENS = 1600
_ANTHROPIC_PIXELS_PER_TOKEN = 750


def anthropic_image_tokens(width: int, height: int) -> ImageTokens:
    """One image's tokens for Claude: w·h/750 after the documented downscale (module docstring)."""
    _check_size(width, height)
    scale = min(1.0, ANTHROPIC_MAX_LONG_EDGE / max(width, height),
                math.sqrt(ANTHROPIC_MAX_TOKENS * _ANTHROPIC_PIXELS_PER_TOKEN / (width * height)))
    w, h = math.floor(round(width * scale, 6)), math.floor(round(height * scale, 6))
    tokens = math.ceil(w * h / _ANTHROPIC_PIXELS_PER_TOKEN)
    resized = "" if scale >= 1.0 else f", resized to {w}×{h}"
    return ImageTokens(tokens, f"anthropic {w}×{h}/750{resized}")


# ---- Gemini ------------------------------------------------------------------------------------

#: Gemini 3 `media_resolution` → tokens per image (the page's "Token counts" table).
GEMINI3_BUDGETS: dict[str, int] = {"MEDIA_RESOLUTION_LOW": 280, "MEDIA_RESOLUTION_MEDIUM": 560,
                                   "MEDIA_RESOLUTION_HIGH": 1120, "MEDIA_RESOLUTION_ULTRA_HIGH": 2240}
_GEMINI_TILE = 768
_GEMINI_TILE_TOKENS = 258
_GEMINI_SMALL = 384


def _gemini_generation(model: str) -> int | None:
    name = model.removeprefix("models/").removeprefix("google/")
    if not name.startswith("gemini-"):
        return None
    major = name.removeprefix("gemini-").split(".", 1)[0].split("-", 1)[0]
    return int(major) if major.isdigit() else None


def gemini_image_tokens(width: int, height: int, model: str, media_resolution: str | None = None) -> ImageTokens:
    """One image's tokens for a Gemini model (module docstring). `media_resolution` as the API
    spells it (MEDIA_RESOLUTION_LOW, ...; "low" is accepted); it sets the budget on Gemini 3+."""
    _check_size(width, height)
    gen = _gemini_generation(model)
    if gen is not None and gen >= 3:
        res = (media_resolution or "MEDIA_RESOLUTION_HIGH").upper()
        res = res if res.startswith("MEDIA_RESOLUTION_") else f"MEDIA_RESOLUTION_{res}"
        if res == "MEDIA_RESOLUTION_UNSPECIFIED":
            res = "MEDIA_RESOLUTION_HIGH"
        if res not in GEMINI3_BUDGETS:
            raise ValueError(f"unknown media_resolution {media_resolution!r}; valid: {', '.join(GEMINI3_BUDGETS)}")
        return ImageTokens(GEMINI3_BUDGETS[res], f"gemini 3 {res.removeprefix('MEDIA_RESOLUTION_').lower()} budget")
    if width <= _GEMINI_SMALL and height <= _GEMINI_SMALL:
        return ImageTokens(_GEMINI_TILE_TOKENS, "gemini ≤384 px: 258")
    n = math.ceil(width / _GEMINI_TILE) * math.ceil(height / _GEMINI_TILE)
    return ImageTokens(_GEMINI_TILE_TOKENS * n, f"gemini 768 px tiles 258×{n}")


# ---- by api kind -------------------------------------------------------------------------------


def estimate_image_tokens(api_kind: str, model: str, width: int, height: int, *,
                          detail: str = "auto", media_resolution: str | None = None) -> ImageTokens | None:
    """One image's token estimate for a contender's wire format, or None for a format that takes
    no images (completions, generic) or whose model's rule is not documented here."""
    if api_kind in ("openai-chat", "openai-responses"):
        return openai_image_tokens(width, height, model, detail)
    if api_kind == "anthropic":
        return anthropic_image_tokens(width, height)
    if api_kind == "gemini":
        return gemini_image_tokens(width, height, model, media_resolution)
    return None


def prompt_image_tokens(api_kind: str, model: str, images: Sequence[ImageInput], *, detail: str = "auto",
                        media_resolution: str | None = None) -> ImageTokens | None:
    """All of a prompt's images together (None: no images, or a format that takes none). Images
    given by URL have no size here: they are left out, and the rule says how many were."""
    sized = [im for im in images if im.width is not None and im.height is not None]
    each = [estimate_image_tokens(api_kind, model, im.width or 0, im.height or 0, detail=detail,
                                  media_resolution=media_resolution) for im in sized]
    counted = [e for e in each if e is not None]
    if not images or (sized and not counted):
        return None
    rule = "; ".join(e.rule for e in counted) or "no image with a known size"
    if len(sized) < len(images):
        rule += f"; {len(images) - len(sized)} image(s) by URL not counted"
    return ImageTokens(sum(e.tokens for e in counted), rule)


def contender_image_tokens(contender: Contender, prompt: Prompt) -> ImageTokens | None:
    """`prompt_image_tokens` for the prompt's images as this contender sends them: its wire
    format, model, `options.image_detail` (OpenAI) and the Gemini request's
    `generationConfig.mediaResolution` (set through `options.extra_body`)."""
    if not prompt.images:
        return None
    opts = contender.provider_options
    gen = opts.extra_body.get("generationConfig") or {}
    resolution = gen.get("mediaResolution") if isinstance(gen, Mapping) else None
    return prompt_image_tokens(contender.api, contender.model, prompt.images,
                               detail=str(getattr(opts, "image_detail", None) or "auto"),
                               media_resolution=str(resolution) if resolution else None)


def _check_size(width: int, height: int) -> None:
    if width < 1 or height < 1:
        raise ValueError(f"an image is at least 1×1 pixels, got {width}×{height}")
