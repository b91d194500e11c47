"""Prompt caching switched on and off the documented way, per wire format (providers/caching.py)."""

from __future__ import annotations

import pytest

from tests.conftest import contender_for
from workbench.providers.base import provider_for, request_summary
from workbench.providers.caching import OPENAI_NO_CACHE, how_cached, prefix_cached
from workbench.serve.mock import MockServer
from workbench.types import Prompt


@pytest.mark.parametrize("fmt", ["openai-chat", "openai-responses"])
def test_openai_caching_is_switched_off_with_explicit_mode_and_no_breakpoint(wire: MockServer, fmt: str) -> None:
    c = contender_for(fmt, wire)
    assert prefix_cached(c, True) is c  # on: the API's own default, nothing sent
    off = prefix_cached(c, False)
    assert off is not None
    req = provider_for(off).build_request(off, Prompt(id="p", text="hi", system="shared"), stream=True,
                                          api_key="k", base_url=off.base_url or "")
    assert req.json["prompt_cache_options"] == {"mode": "explicit"}
    assert request_summary(off)["fields"]["prompt_cache_options"] == {"mode": "explicit"}  # the manifest says so
    assert "prompt_cache_options" not in request_summary(c)["fields"]
    assert "off: prompt_cache_options" in how_cached(c)


def test_the_field_is_the_installed_sdks_own() -> None:
    """The field and its value as openai-python declares them (main namespace, not beta)."""
    pytest.importorskip("openai")
    import typing

    from openai.types.chat.completion_create_params import CompletionCreateParamsBase, PromptCacheOptions
    from openai.types.responses.response_create_params import ResponseCreateParamsBase

    for params in (CompletionCreateParamsBase, ResponseCreateParamsBase):
        assert "prompt_cache_options" in params.__annotations__
    [(key, value)] = OPENAI_NO_CACHE["prompt_cache_options"].items()
    assert value in typing.get_args(typing.get_type_hints(PromptCacheOptions)[key])


@pytest.mark.parametrize("fmt", ["gemini", "openai-completions"])
def test_implicit_caches_without_a_switch_cannot_be_turned_off(wire: MockServer, fmt: str) -> None:
    c = contender_for(fmt, wire, **({"prompt_template": "{prompt}"} if fmt == "openai-completions" else {}))
    assert prefix_cached(c, False) is None and prefix_cached(c, True) is c
