"""Image-token estimates against each provider's documented worked examples (workbench.image_tokens)."""

from __future__ import annotations

import pytest

from workbench.image_tokens import (
    anthropic_image_tokens,
    estimate_image_tokens,
    gemini_image_tokens,
    openai_image_tokens,
    prompt_image_tokens,
)


@pytest.mark.parametrize(("size", "detail", "tokens"), [
    ((1024, 1024), "high", 765),  # platform.openai.com/docs/guides/images-vision, "Calculating costs"
    ((2048, 4096), "high", 1105),
    ((4096, 8192), "low", 85),
    ((300, 200), "high", 255),  # smaller than a tile: base + one tile, never enlarged
])
def test_openai_tile_rule_matches_the_documented_examples(size: tuple[int, int], detail: str, tokens: int) -> None:
    got = openai_image_tokens(*size, model="gpt-4o-2024-08-06", detail=detail)
    assert got.tokens == tokens and got.estimated


def test_openai_patch_rule_matches_the_documented_examples() -> None:
    assert openai_image_tokens(1024, 1024, "gpt-4.1-mini").rule.startswith("openai patches 1024×1.62")
    assert openai_image_tokens(1800, 2400, "gpt-4.1-mini").rule.startswith("openai patches 1452×1.62")
    assert openai_image_tokens(1024, 1024, "gpt-4.1-nano").tokens == round(1024 * 2.46 + 0.5)
    assert openai_image_tokens(1024, 1024, "o4-mini", detail="low").tokens == 1762  # detail does not apply


def test_openai_models_pick_their_own_table_row() -> None:
    assert openai_image_tokens(1024, 1024, "gpt-4o-mini").tokens == 2833 + 5667 * 4
    assert openai_image_tokens(1024, 1024, "o3").tokens == 75 + 150 * 4
    assert openai_image_tokens(1024, 1024, "gpt-5.5").tokens == 70 + 140 * 4
    unknown = openai_image_tokens(1024, 1024, "some-gateway-model")
    assert unknown.tokens == 765 and "not in the documented table" in unknown.rule


@pytest.mark.parametrize(("size", "tokens"), [((200, 200), 54), ((1000, 1000), 1334), ((1092, 1092), 1590)])
def test_anthropic_matches_the_documented_examples(size: tuple[int, int], tokens: int) -> None:
    assert anthropic_image_tokens(*size).tokens == tokens  # docs.anthropic.com .../vision


def test_anthropic_scales_large_images_down_first() -> None:
    big = anthropic_image_tokens(4000, 3000)
    assert big.tokens <= 1600 and "resized" in big.rule
    assert anthropic_image_tokens(3000, 100).rule.startswith("anthropic 1568×52")  # long edge capped


def test_gemini_fixed_counts_and_tiles() -> None:
    assert gemini_image_tokens(384, 384, "gemini-2.5-flash").tokens == 258  # ai.google.dev/gemini-api/docs/tokens
    assert gemini_image_tokens(768, 768, "gemini-2.0-flash").tokens == 258 * 1
    assert gemini_image_tokens(1000, 1000, "gemini-2.5-pro").tokens == 258 * 4
    assert gemini_image_tokens(4000, 100, "gemini-3.8-flash").tokens == 1120  # HIGH: the image default
    assert gemini_image_tokens(10, 10, "models/gemini-3-pro", "MEDIA_RESOLUTION_LOW").tokens == 280
    assert gemini_image_tokens(10, 10, "gemini-3-pro", "ultra_high").tokens == 2240
    with pytest.raises(ValueError, match="valid: MEDIA_RESOLUTION_LOW"):
        gemini_image_tokens(10, 10, "gemini-3-pro", "huge")


def test_estimates_by_api_kind_and_none_for_text_only_formats() -> None:
    assert estimate_image_tokens("anthropic", "claude-haiku-5-5", 200, 200) is not None
    assert estimate_image_tokens("openai-completions", "x", 200, 200) is None
    with pytest.raises(ValueError, match="at least 1×1"):
        estimate_image_tokens("anthropic", "c", 0, 5)


def test_server_split_where_the_api_gives_one() -> None:
    """The providers' usage parsers keep the images' part of the prompt where the API splits it."""
    from workbench.providers import anthropic, gemini, openai

    chat = {"prompt_tokens": 800, "prompt_tokens_details": {"image_tokens": 765, "cached_tokens": 0}}
    assert (u := openai.parse_usage(chat)) is not None and u.image_input_tokens == 765
    meta = {"promptTokenCount": 270, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 12},
                                                             {"modality": "IMAGE", "tokenCount": 258}]}
    assert (g := gemini.parse_usage(meta)) is not None and g.image_input_tokens == 258
    assert (a := anthropic.parse_usage({"input_tokens": 60, "output_tokens": 1})) is not None
    assert a.image_input_tokens is None
    assert (o := openai.parse_usage({"prompt_tokens": 5})) is not None and o.image_input_tokens is None


def test_a_prompts_images_together_and_urls_left_out() -> None:
    from workbench.types import ImageInput

    small = ImageInput(mime_type="image/png", width=200, height=200, data=b"x")
    url = ImageInput(mime_type="image/png", url="https://example.com/a.png")
    both = prompt_image_tokens("anthropic", "claude", [small, small, url])
    assert both is not None and both.tokens == 108 and "1 image(s) by URL not counted" in both.rule
    assert prompt_image_tokens("anthropic", "claude", []) is None
    assert prompt_image_tokens("openai-completions", "m", [small]) is None


def test_the_budget_reserves_a_prompts_image_tokens() -> None:
    from workbench.config import Contender
    from workbench.measure.budget import estimate_input_tokens
    from workbench.types import ImageInput, Prompt

    c = Contender(name="c", api="openai-chat", model="gpt-4o", base_url="http://127.0.0.1")
    image = ImageInput(mime_type="image/png", width=1024, height=1024, data=b"x")
    text_only = estimate_input_tokens(c, Prompt(id="p", text="x" * 40))
    assert estimate_input_tokens(c, Prompt(id="p", text="x" * 40, images=(image,))) == text_only + 765


def test_a_contenders_settings_pick_the_rule() -> None:
    from workbench.config import Contender
    from workbench.image_tokens import contender_image_tokens
    from workbench.types import ImageInput, Prompt

    prompt = Prompt(id="p", text="x", images=(ImageInput(mime_type="image/png", width=1024, height=1024, data=b"x"),))
    low = Contender(name="o", api="openai-chat", model="gpt-4o", base_url="http://h", options={"image_detail": "low"})
    gemini = Contender(name="g", api="gemini", model="gemini-3-pro", base_url="http://h", options={
        "extra_body": {"generationConfig": {"mediaResolution": "MEDIA_RESOLUTION_LOW"}}})
    assert [contender_image_tokens(c, prompt).tokens for c in (low, gemini)] == [85, 280]  # type: ignore[union-attr]
    assert contender_image_tokens(low, Prompt(id="t", text="x")) is None
