"""Contenders config: the shipped file validates; each mistake names file, field and reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.config import DEFAULT_CONTENDERS_FILE, load_contenders
from workbench.errors import ConfigError, UnknownNameError

LOCAL = """
  - name: g
    api: openai-completions
    local: gemma-3-270m
    model: gemma
    prompt_template: "Q: {prompt}\\nA:"
"""


def write(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "contenders.yaml"
    p.write_text(body)
    return p


def test_shipped_file_validates_and_local_models_are_enabled() -> None:
    cs = load_contenders(DEFAULT_CONTENDERS_FILE)
    locals_ = [c for c in cs if c.is_local]
    assert {c.local for c in locals_} == {"gemma-3-270m", "qwen2.5-coder-0.5b-instruct"}
    assert all(c.enabled for c in locals_)
    for name in ("gpt-6-luna", "claude-3.7-sonnet", "claude-3.5-haiku", "gemini-2.5-flash"):
        assert cs.get(name).api_key_env
    # The seed's retired Claude models stay as named entries, off by default; the current models
    # of each family are the enabled hosted examples, reasoning models with their settings.
    assert not cs.get("claude-3.7-sonnet").enabled and not cs.get("claude-3.5-haiku").enabled
    for name in ("gpt-5.5", "gpt-6-luna", "claude-sonnet-5.5", "claude-haiku-5.5", "gemini-3.8-flash"):
        assert cs.get(name).enabled and cs.get(name).api_key_env
    for name in ("gpt-5.5", "gpt-6-luna", "gemini-3.8-flash", "gemini-2.5-flash"):
        assert cs.get(name).reasoning_label(), name


def test_hosted_contender_without_key_is_skipped_with_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    chosen, skipped = load_contenders().select("enabled")
    assert "gpt-5.5" not in [c.name for c in chosen]
    assert any(s.name == "gpt-5.5" and "OPENAI_API_KEY is not set" in s.reason for s in skipped)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-canary-000000000000")
    chosen, _ = load_contenders().select("gpt-6-luna")
    assert [c.name for c in chosen] == ["gpt-6-luna"]


def test_unknown_contender_lists_valid_names() -> None:
    with pytest.raises(UnknownNameError, match="valid: .*gemma-3-270m"):
        load_contenders().select("nope")


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ("contenders:\n  - name: g\n    api: telepathy\n    base_url: http://x\n    model: m\n",
         "contenders[g].api", "unknown api kind 'telepathy'; valid: .*openai-chat"),
        ("contenders:" + LOCAL + "    colour: red\n", "contenders[g].colour", "unknown field"),
        ("contenders:" + LOCAL.replace('    prompt_template: "Q: {prompt}\\nA:"\n', ""),
         "contenders[g]", "prompt_template is required"),
        ("contenders:" + LOCAL.replace("local: gemma-3-270m", "local: llama-70b"),
         "contenders[g].local", "unknown local model 'llama-70b'; valid:"),
        ("contenders:" + LOCAL + LOCAL, "contenders[g]", "duplicate contender name"),
        ("contenders:" + LOCAL.replace("model: gemma", "model: gemma\n    sampling: {max_tokens: lots}"),
         "contenders[g].sampling.max_tokens", "valid integer"),
        ("contenders:\n  - name: h\n    api: openai-chat\n    base_url: http://x\n    model: m\n"
         "    api_key_env: sk-abcdefabcdefabcdefabcdef\n", "contenders[h].api_key_env", "looks like a key"),
        ("contenders:\n  - name: h\n    api: openai-chat\n    model: m\n", "contenders[h]",
         "exactly one of base_url"),
        ("contenders:\n  - name: h\n    api: openai-chat\n    base_url: http://x\n    model: m\n"
         "    headers: {Authorization: Bearer x}\n", "contenders[h].headers", "carries a secret"),
        ("contenders:" + LOCAL + '    price: {machine_hour_usd: "cheap"}\n', "contenders[g].price.machine_hour_usd",
         "valid number"),
        ("contenders:" + LOCAL + "    price: {machine_hour_usd: 0.4, gpu: a100}\n", "contenders[g].price.gpu",
         "unknown field; valid: .*machine_hour_usd"),
        ("contenders:" + LOCAL + "    price: {input: -1, output: 2}\n", "contenders[g].price.input",
         "greater than or equal to 0"),
        ("contenders:" + LOCAL + "    price: {batch_discount: 1.5}\n", "contenders[g].price.batch_discount",
         "less than 1"),
        ("contenders:" + LOCAL + "    price: cheap\n", "contenders[g].price", "valid dictionary"),
        ("contenders:\n  - name: h\n    api: openai-chat\n    base_url: http://x\n    model: m\n"
         "    options: {omit_temprature: true}\n", "contenders[h].options",
         "options.omit_temprature: unknown option for api 'openai-chat'; valid: extra_body, image_detail, "
         "max_tokens_field, omit_temperature"),
        ("contenders:\n  - name: a\n    api: anthropic\n    base_url: http://x\n    model: m\n"
         "    options: {cache_prefix: sometimes}\n", "contenders[a].options", "options.cache_prefix: .*valid boolean"),
        ("contenders: [\n", "line", "invalid YAML"),
        ("stuff: 1\n", "stuff", "unknown top-level field"),
    ],
)
def test_each_mistake_names_file_field_and_reason(tmp_path: Path, body: str, field: str, reason: str) -> None:
    p = write(tmp_path, body)
    with pytest.raises(ConfigError, match=reason) as info:
        load_contenders(p)
    err = info.value
    assert err.path == str(p)
    assert err.field is not None and err.field.startswith(field)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_contenders(tmp_path / "nope.yaml")


def test_sampling_override_is_top_of_precedence() -> None:
    c = load_contenders().get("gemma-3-270m")
    assert c.sampling.stop == ["\n"]  # from the entry
    assert c.sampling.max_tokens == 64  # from defaults:
    c2 = c.with_sampling(max_tokens=5)
    assert (c2.sampling.max_tokens, c2.sampling.stop) == (5, ["\n"])


def test_overrides_are_validated_like_the_file() -> None:
    c = load_contenders().get("qwen2.5-coder-0.5b")
    with pytest.raises(ConfigError, match=r"sampling parameters: contenders\[qwen2.5-coder-0.5b\].sampling.max_tokens"):
        c.with_sampling(source="sampling parameters", max_tokens=0)
    with pytest.raises(ConfigError, match=r"sampling.no_such_field: unknown field; valid: max_tokens"):
        c.with_sampling(no_such_field=1)
    with pytest.raises(ConfigError, match=r"annotation prompt: .*prompt_template must contain the placeholder"):
        load_contenders().get("gemma-3-270m").override("annotation prompt", prompt_template="no placeholder")
    assert c.override("x", system_prompt="Be terse.").system_prompt == "Be terse."
