"""Preflight: a hosted contender whose model is not found, retired or not accessible is skipped with
one line before any work is sent; a request that hits it anyway is `model_not_found`."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import contender_for
from tests.providers.test_contract import go
from workbench.cli import main
from workbench.config import Contender
from workbench.measure.preflight import run_preflight
from workbench.serve.mock import MockServer

pytestmark = pytest.mark.timeout(30)

FORMATS = ["openai-chat", "openai-responses", "anthropic", "gemini"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_lookup_skips_a_missing_model_with_the_providers_message(wire: MockServer, fmt: str) -> None:
    gone = contender_for(fmt, wire, name="gone", model="retired-model-1")
    here = contender_for(fmt, wire, name="here")
    wire.missing_models.add("retired-model-1")
    results = {p.contender: p for p in run_preflight([gone, here])}
    assert results["here"].ok is True and results["here"].how == "lookup"
    miss = results["gone"]
    assert miss.ok is False and miss.how == "lookup"
    assert "HTTP 404 model_not_found" in miss.message and "retired-model-1" in miss.message
    assert miss.skip_line.startswith("skipped gone: model 'retired-model-1' unavailable — HTTP 404")
    assert "\n" not in miss.skip_line
    # Only lookups, no generation was sent.
    assert all(r["method"] == "GET" for r in wire.requests)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_request_to_a_missing_model_is_model_not_found(wire: MockServer, fmt: str) -> None:
    wire.missing_models.add("retired-model-1")
    for stream in (True, False):
        rec = go(contender_for(fmt, wire, model="retired-model-1"), stream=stream)
        assert (rec.error_class, rec.http_status) == ("model_not_found", 404), rec.error_message
        assert "retired-model-1" in (rec.error_message or "")


def test_a_lookup_that_answers_is_read_not_trusted(wire: MockServer) -> None:
    """A retired Anthropic model (a 200 lookup, `lifecycle: retired`: it "remains in the
    catalogue") and an OpenAI model past its `shutdown_date` are skipped before anything is sent;
    one retiring within 30 days, or deprecated, runs with a warning; an active one runs quietly."""
    from datetime import UTC, datetime, timedelta

    soon = (datetime.now(UTC) + timedelta(days=4)).date().isoformat()
    wire.model_fields.update({
        "claude-gone": {"lifecycle": "retired", "retires_at": "2026-02-19T00:00:00Z"},
        "claude-old": {"lifecycle": "deprecated", "retires_at": "2027-06-01T00:00:00Z"},
        "gpt-gone": {"shutdown_date": "2026-07-23"},
        "gpt-soon": {"shutdown_date": soon},
    })
    cs = [contender_for("anthropic", wire, name="a-gone", model="claude-gone"),
          contender_for("anthropic", wire, name="a-old", model="claude-old"),
          contender_for("anthropic", wire, name="a-ok", model="claude-ok"),
          contender_for("openai-chat", wire, name="o-gone", model="gpt-gone"),
          contender_for("openai-responses", wire, name="o-soon", model="gpt-soon"),
          contender_for("openai-chat", wire, name="o-ok", model="gpt-ok")]
    r = {p.contender: p for p in run_preflight(cs)}
    assert r["a-gone"].ok is False and "retired (lifecycle: retired, retires_at: 2026-02-19" in r["a-gone"].skip_line
    assert r["o-gone"].ok is False and "shut down on 2026-07-23 (shutdown_date: 2026-07-23)" in r["o-gone"].message
    assert r["o-soon"].ok is True and re.match(f"retires in [34] days, on {soon} ", r["o-soon"].warning)
    assert r["o-soon"].warning_line.startswith("warning: o-soon: model 'gpt-soon' retires in")
    assert r["a-old"].ok is True and r["a-old"].warning.startswith("deprecated (lifecycle: deprecated")
    assert (r["a-ok"].ok, r["a-ok"].warning, r["o-ok"].ok, r["o-ok"].warning) == (True, "", True, "")
    assert all(q["method"] == "GET" for q in wire.requests)  # nothing generated


def test_the_lifecycle_rules_as_each_provider_documents_them() -> None:
    from datetime import UTC, datetime

    from workbench.providers import get_provider

    now = datetime(2026, 12, 7, tzinfo=UTC)
    anthropic, openai = get_provider("anthropic"), get_provider("openai-chat")
    # Anthropic: a past retires_at on a deprecated model is overdue, not retired (`lifecycle` decides)
    overdue = anthropic.lifecycle({"lifecycle": "deprecated", "retires_at": "2026-11-01T00:00:00Z"})
    assert overdue is not None and overdue.verdict(now) == (
        True, "retires overdue, on 2026-11-01 (lifecycle: deprecated, retires_at: 2026-11-01T00:00:00Z)")
    active = anthropic.lifecycle({"lifecycle": "active", "retires_at": None})
    assert active is not None and active.verdict(now) == (True, None)
    # OpenAI: past shutdown_date the model is gone; none announced says nothing
    gone = openai.lifecycle({"shutdown_date": "2026-12-01"})
    assert gone is not None and gone.verdict(now)[0] is False
    assert openai.lifecycle({"id": "gpt-6-luna", "shutdown_date": None}) is None
    assert get_provider("gemini").lifecycle({"name": "models/gemini-3.8-flash"}) is None


def test_generic_is_checked_with_a_one_token_generation(wire: MockServer) -> None:
    c = contender_for("generic", wire)
    [p] = run_preflight([c])
    assert (p.ok, p.how) == (True, "generation")
    assert wire.requests[-1]["json"]["max_tokens"] == 1


def test_an_unreachable_endpoint_is_inconclusive(wire: MockServer) -> None:
    """Not a reason to skip: run it, and the records say what happened."""
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    down = contender_for("anthropic", wire, name="down", base_url=f"http://127.0.0.1:{port}/v1")
    [p] = run_preflight([down])
    assert p.ok is None and "lookup failed" in p.message


def _contenders_file(tmp_path: Path, contenders: list[Contender]) -> Path:
    p = tmp_path / "contenders.yaml"
    p.write_text(yaml.safe_dump({"contenders": [c.model_dump(mode="json", exclude_none=True) for c in contenders]}))
    return p


def test_workbench_run_prints_one_line_and_runs_the_rest(wire: MockServer, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """The acceptance case: a contender whose server answers 404 model-not-found is skipped with one
    line naming it, its model and the provider's message; the experiment runs the rest."""
    import papermill as pm

    from workbench.session import open_session

    wire.missing_models.add("claude-3-7-sonnet-20250219")
    gone = contender_for("anthropic", wire, name="claude-3.7-sonnet", model="claude-3-7-sonnet-20250219")
    here = contender_for("openai-chat", wire, name="gpt-here")
    cfile = _contenders_file(tmp_path, [gone, here])
    sessions: list[Any] = []

    def fake_notebook(_src: str, _out: str, *, parameters: dict[str, Any], **_kw: Any) -> None:
        # What the notebook does first: open its session in the run folder.
        sessions.append(open_session("latency", out_dir=parameters["out_dir"],
                                     contenders_file=parameters["contenders_file"]))

    monkeypatch.setattr(pm, "execute_notebook", fake_notebook)
    out_dir = tmp_path / "run"
    code = main(["run", "--experiments", "latency", "--contenders-file", str(cfile), "--out", str(out_dir)])
    out = capsys.readouterr().out
    assert code == 0
    lines = [ln for ln in out.splitlines() if ln.startswith("skipped claude-3.7-sonnet")]
    assert len(lines) == 2  # the runner's line, and the notebook session's (from the manifest)
    assert "'claude-3-7-sonnet-20250219'" in lines[0] and "model: claude-3-7-sonnet-20250219" in lines[0]
    [session] = sessions
    assert [c.name for c in session.contenders] == ["gpt-here"]
    manifest = json.loads((out_dir / "manifest.json").read_text())
    assert manifest["preflight"]["claude-3.7-sonnet"]["ok"] is False
    assert manifest["preflight"]["gpt-here"]["ok"] is True
    # The session used the runner's preflight: the model was looked up once per contender.
    assert sum(r["method"] == "GET" for r in wire.requests) == 2
    # what each contender's requests carry besides the prompt, as built (no key among them)
    sent = manifest["experiments"]["latency"]["requests"]["gpt-here"]
    assert sent["path"] == "completions" and "max_tokens" in sent["fields"] and not any(
        "auth" in h.lower() for h in sent["headers"])


def test_the_manifest_says_what_anthropic_requests_carry(wire: MockServer, tmp_path: Path) -> None:
    """Under anthropic-version 2026-10-21 no temperature is sent, whatever the contenders file
    asks: the manifest says so beside the contender's settings."""
    from workbench.session import open_session

    claude = contender_for("anthropic", wire, name="claude", sampling={"temperature": 0.0, "max_tokens": 8})
    session = open_session("latency", out_dir=str(tmp_path / "run"),
                           contenders_file=str(_contenders_file(tmp_path, [claude])))
    session.close()
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    sent = manifest["experiments"]["latency"]["requests"]["claude"]
    assert sent["headers"] == {"anthropic-version": "2026-10-21"} and sent["path"] == "messages"
    assert sent["fields"]["max_tokens"] == 8 and "temperature" not in sent["fields"]
    assert manifest["experiments"]["latency"]["contenders"][0]["sampling"]["temperature"] == 0.0


def test_the_sync_entry_points_work_inside_a_running_event_loop(wire: MockServer) -> None:
    """A notebook run on its own (JupyterLab, papermill, nbval) calls them with the kernel's loop
    running: `asyncio.run` there raised "cannot be called from a running event loop"."""
    import asyncio

    from workbench.measure.probe import probe_once
    from workbench.measure.target import Target
    from workbench.types import Prompt

    c = contender_for("openai-chat", wire)

    async def in_a_kernel() -> tuple[list[Any], Any]:
        return run_preflight([c]), probe_once(Target(c, c.base_url or "", stream=False), Prompt("p", "hello"))

    [pre], rec = asyncio.run(in_a_kernel())
    assert pre.ok is True
    assert rec.ok, rec.error_message
