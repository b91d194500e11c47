"""`workbench models`: the hosted providers' models as the installed SDKs and genai-prices say,
their notes parsed as the SDKs write them (pinned against the versions installed here)."""

from __future__ import annotations

import importlib.metadata
import typing
from datetime import date

import pytest

from workbench.cli import main
from workbench.hosted_models import ModelEntry, _anthropic_date, catalog, format_catalog, openai_deprecations

SOURCE = '''
from typing_extensions import Literal, TypeAlias

ChatModel: TypeAlias = Literal["gpt-9", "gpt-8", "gpt-8-mini", "gpt-7"]
"""Deprecated values:

- "gpt-8", "gpt-8-mini":
  Announced shutdown date: 2026-12-11. See
  https://developers.openai.com/api/docs/deprecations for details.
- "gpt-7": Not a supported model ID. Retained for SDK compatibility.
"""
'''


def test_the_openai_deprecation_notes_are_read_as_written() -> None:
    notes = openai_deprecations(SOURCE)
    assert notes == {"gpt-8": (date(2026, 12, 11), ""), "gpt-8-mini": (date(2026, 12, 11), ""),
                     "gpt-7": (None, "Not a supported model ID")}
    assert openai_deprecations("X = 1\n") == {}


def test_the_anthropic_table_dates_are_read_as_written() -> None:
    assert _anthropic_date("January 22nd, 2027") == date(2027, 1, 22)
    assert _anthropic_date("June 30th, 2026") == date(2026, 6, 30)
    assert _anthropic_date("soon") is None


def test_the_installed_sdks_models_are_all_listed() -> None:
    openai_types = pytest.importorskip("openai.types.shared.chat_model")
    anthropic_types = pytest.importorskip("anthropic.types.model")
    cat = catalog()
    listed = {(e.provider, e.model) for e in cat.entries}
    chat = [a for a in typing.get_args(openai_types.ChatModel)]
    assert chat and all(("openai", m) in listed for m in chat)
    claude = [a for t in typing.get_args(anthropic_types.Model) for a in typing.get_args(t) if isinstance(a, str)]
    assert claude and all(("anthropic", m) in listed for m in claude)
    assert any(e.provider == "google" and e.model.startswith("gemini-") and e.input_usd_per_mtok for e in cat.entries)
    assert any(e.shutdown is not None for e in cat.entries if e.provider == "openai")
    assert any(line.startswith(f"openai {importlib.metadata.version('openai')}:") for line in cat.sources)


def test_pinned_facts_of_the_sdk_versions_installed_here() -> None:
    """What openai 3.63.0, anthropic 2.17.0 and genai-prices 0.2.5 say (skipped on other versions)."""
    versions = {d: importlib.metadata.version(d) for d in ("openai", "anthropic", "genai-prices")}
    if versions != {"openai": "3.63.0", "anthropic": "2.17.0", "genai-prices": "0.2.5"}:
        pytest.skip(f"pinned against other versions: {versions}")
    cat = catalog()
    gpt5 = cat.get("openai", "gpt-5")
    assert gpt5 is not None and gpt5.shutdown == date(2026, 12, 11)
    opus = cat.get("anthropic", "claude-opus-4-5")
    assert opus is not None and opus.shutdown == date(2027, 1, 22) and opus.deprecated
    haiku = cat.get("anthropic", "claude-haiku-5-5")
    assert haiku is not None and (haiku.input_usd_per_mtok, haiku.output_usd_per_mtok, haiku.tiered) == (0.1, 0.5, True)
    flash = cat.get("google", "gemini-3.8-flash")
    assert flash is not None and flash.input_usd_per_mtok == 0.75


def test_the_table_hides_what_has_shut_down_and_says_so() -> None:
    from workbench.hosted_models import Catalog

    cat = Catalog([ModelEntry("openai", "gpt-8", date(2026, 12, 11), input_usd_per_mtok=1.25,
                              output_usd_per_mtok=10.0, context_window=400_000),
                   ModelEntry("openai", "gpt-7", date(2026, 1, 1)),
                   ModelEntry("openai", "gpt-9", input_usd_per_mtok=0.1, output_usd_per_mtok=0.5, tiered=True)],
                  ["openai 9.9.9: test"])
    text = format_catalog(cat, date(2026, 12, 7))
    assert "shuts down 2026-12-11 (in 4 days)" in text and "400,000" in text and "gpt-7" not in text
    assert "0.1*" in text and "base tier" in text and "(1 models past their shutdown date not shown" in text
    assert "shut down 2026-01-01" in format_catalog(cat, date(2026, 12, 7), include_shut_down=True)


def test_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--provider", "google"]) == 0
    out = capsys.readouterr().out
    assert "gemini-" in out and "openai" not in out.split("provider", 1)[1]
    assert main(["models", "--provider", "mistral"]) == 2
    assert "valid: openai, anthropic, google" in capsys.readouterr().err


def test_the_bundled_contenders_enable_only_current_models() -> None:
    """Every enabled hosted contender of the bundled example names a model its provider's SDK
    lists today, with no shutdown announced."""
    pytest.importorskip("openai")
    pytest.importorskip("anthropic")
    from workbench.config import DEFAULT_CONTENDERS_FILE, load_contenders

    cat = catalog()
    provider_of = {"openai-chat": "openai", "openai-responses": "openai", "anthropic": "anthropic", "gemini": "google"}
    checked = 0
    for c in load_contenders(DEFAULT_CONTENDERS_FILE):
        if c.is_local or not c.enabled or c.api not in provider_of:
            continue
        entry = cat.get(provider_of[c.api], c.model)
        assert entry is not None, f"{c.name}: {c.model} is not among {provider_of[c.api]}'s models"
        assert entry.shutdown is None and not entry.deprecated, (c.name, entry)
        checked += 1
    assert checked == 6  # gpt-5.5, gpt-6-luna, claude-sonnet-5.5, claude-haiku-5.5, gemini-3.8-flash, gemini-2.5-flash


def test_the_bundled_contenders_name_no_model_past_its_shutdown() -> None:
    """No entry of the bundled example, enabled or not, names a model its provider's installed SDK
    announces as shut down (OpenAI's "Deprecated values", Anthropic's deprecated-models table).
    When this fails, the SDK has announced a date that has now passed: drop or replace the entry
    (`workbench models` lists the current ones)."""
    pytest.importorskip("openai")
    pytest.importorskip("anthropic")
    from datetime import UTC, datetime

    from workbench.config import DEFAULT_CONTENDERS_FILE, load_contenders
    from workbench.hosted_models import sdk_lifecycle

    now = datetime.now(UTC)
    for c in load_contenders(DEFAULT_CONTENDERS_FILE):
        life = sdk_lifecycle(c)
        if life is not None:
            runnable, why = life.verdict(now)
            assert runnable, f"{c.name} ({c.model}): {why}"


def _contender(model: str, base_url: str = "https://api.openai.com/v1") -> typing.Any:
    from workbench.config import Contender

    return Contender(name=model, api="openai-chat", model=model, base_url=base_url, api_key_env="OPENAI_API_KEY")


def _run_check(c: typing.Any, now: typing.Any, answer: typing.Any) -> tuple[typing.Any, list[str]]:
    """`preflight.check` with the wire replaced: `answer` (None: nothing may be sent) stands for
    the provider's model lookup."""
    import asyncio

    import httpx

    from workbench.measure.preflight import check

    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(str(request.url))
        if answer is None:
            raise AssertionError(f"sent {request.url}")
        return httpx.Response(200, json=answer)

    async def go() -> typing.Any:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            return await check(client, c, c.base_url, now)

    return asyncio.run(go()), sent


def test_the_offline_check_skips_a_model_past_its_shutdown_before_anything_is_sent(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """gpt-5 shuts down on 2026-12-11 per openai-python 3.63.0: the day after, the installed SDK's
    table alone skips it with one line — no key read, no lookup sent."""
    pytest.importorskip("openai")
    from datetime import UTC, datetime

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    pf, sent = _run_check(_contender("gpt-5"), datetime(2026, 12, 12, tzinfo=UTC), None)
    assert (pf.ok, pf.how, sent) == (False, "sdk", [])
    assert pf.skip_line.startswith("skipped gpt-5: model 'gpt-5' unavailable — shut down on 2026-12-11 (openai-python")
    assert "\n" not in pf.skip_line


def test_the_offline_check_warns_within_30_days_and_the_lookup_still_runs() -> None:
    pytest.importorskip("openai")
    from datetime import UTC, datetime

    looked_up = {"id": "gpt-5", "object": "model", "created": 0, "owned_by": "system"}  # no shutdown_date field
    pf, sent = _run_check(_contender("gpt-5"), datetime(2026, 12, 8, tzinfo=UTC), looked_up)
    assert pf.ok is True and sent == ["https://api.openai.com/v1/models/gpt-5"]
    assert pf.warning.startswith("retires in 3 days, on 2026-12-11 (openai-python")
    current, _ = _run_check(_contender("gpt-6.2-sol"), datetime(2026, 12, 8, tzinfo=UTC),
                            {**looked_up, "id": "gpt-6.2-sol"})
    assert current.ok is True and current.warning == ""


def test_the_tables_speak_only_for_the_providers_own_api() -> None:
    """The same model name served elsewhere (a gateway, a local server) keeps its own schedule."""
    from workbench.hosted_models import sdk_lifecycle

    assert sdk_lifecycle(_contender("gpt-5", "http://127.0.0.1:8000/v1")) is None
    pytest.importorskip("openai")
    life = sdk_lifecycle(_contender("gpt-5"))
    assert life is not None and life.ends is not None and life.ends.date() == date(2026, 12, 11)


def test_init_suggests_each_providers_current_lead_model_from_its_sdk() -> None:
    """The new workspace's hosted examples name the model each installed SDK's README leads with
    (pinned for the versions installed here), each current in the catalogue — no hand-kept list."""
    pytest.importorskip("openai")
    pytest.importorskip("anthropic")
    pytest.importorskip("google.genai")
    from workbench.hosted_models import suggested_model
    from workbench.workspace_files import _hosted_examples

    text = _hosted_examples()
    cat = catalog()
    for provider in ("openai", "anthropic", "google"):
        entry, why = suggested_model(provider)
        assert entry is not None and f"model: {entry.model} " in text and "README examples" in why, (provider, why)
        listed = cat.get(provider, entry.model)
        assert listed is not None and listed.shutdown is None and not listed.deprecated
    if (importlib.metadata.version("openai"), importlib.metadata.version("anthropic"),
            importlib.metadata.version("google-genai")) == ("3.63.0", "2.17.0", "3.6.1"):
        assert [suggested_model(p)[0].model for p in ("openai", "anthropic", "google")] == [  # type: ignore[union-attr]
            "gpt-6.2-sol", "claude-opus-5-5", "gemini-3.8-flash"]
