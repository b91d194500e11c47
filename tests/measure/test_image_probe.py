"""The image_input fact (probed with a tiny image when keyed, else declared, else unknown) and a
scenario's `needs: [image_input]` judged from it: a text-only contender fails with the reason."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import contender_for, run
from workbench.config import Contender
from workbench.images import check_needs, needs_status
from workbench.measure.image_probe import probe_image_input
from workbench.measure.probe import make_client
from workbench.measure.target import Target
from workbench.serve.faults import error_fault
from workbench.serve.mock import MockServer

EMBEDDED = Contender(name="qwen", api="openai-chat", model="m", local="qwen2.5-coder-0.5b-instruct")


def _fact(c: Contender, base_url: str) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        async with make_client(1, 5.0) as client:
            return await probe_image_input(client, Target(c, base_url=base_url))

    return run(go())


@pytest.mark.parametrize("fmt", ["openai-chat", "openai-responses", "anthropic", "gemini"])
def test_keyed_hosted_contenders_are_probed_with_a_tiny_image(wire: MockServer, fmt: str) -> None:
    fact = _fact(contender_for(fmt, wire), wire.base_url_for(fmt))
    assert (fact["value"], fact["source"]) == (True, "probed") and "16x16" in fact["detail"]
    sent = wire.requests[-1]["json"]
    assert "max_tokens" not in sent or sent["max_tokens"] <= 16


def test_a_refused_image_is_a_probed_false_and_an_outage_is_not(wire: MockServer) -> None:
    c = contender_for("anthropic", wire)
    wire.fail(error_fault("anthropic", "bad_request"))
    assert _fact(c, wire.base_url_for("anthropic"))["value"] is False
    wire.fail(error_fault("anthropic", "overloaded"))
    declared = c.model_copy(update={"declared": {"image_input": True}})
    fact = _fact(declared, wire.base_url_for("anthropic"))
    assert (fact["value"], fact["source"]) == (True, "declared") and "inconclusive: overloaded" in fact["detail"]


def test_text_only_and_unkeyed_contenders_are_not_sent_anything(wire: MockServer,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    assert _fact(EMBEDDED, wire.base_url_for("openai-chat"))["source"] == "declared"
    monkeypatch.delenv("WB_TEST_KEY")
    fact = _fact(contender_for("gemini", wire), wire.base_url_for("gemini"))
    assert fact["value"] is None and "not probed: $WB_TEST_KEY is not set" in fact["detail"]
    assert not wire.requests


def test_needs_image_input_fails_a_text_only_contender_with_the_reason(wire: MockServer) -> None:
    needs = check_needs(["image_input"])
    status, why = needs_status(needs, {"image_input": _fact(EMBEDDED, wire.base_url_for("openai-chat"))})
    assert status == "fail" and why.startswith("no image_input (declared: embedded model qwen2.5-coder")
    hosted = {"image_input": _fact(contender_for("gemini", wire), wire.base_url_for("gemini"))}
    assert needs_status(needs, hosted)[0] == "pass"
    assert needs_status(needs, {})[0] == "inconclusive"
    assert needs_status([], {}) == ("pass", "nothing needed")
    with pytest.raises(ValueError, match="unknown modality 'audio_input'; valid: image_input"):
        check_needs(["audio_input"])
