"""A new wire format added in this one file: a provider that registers itself works through the
probe, capabilities, the `sdk` retry preset, prefix caching, pricing and the contender's typed
options, with no edit to the package. The server is in the test (`httpx.MockTransport`): the
real client code runs, only the wire is replaced.

The format ("acme"): `POST {base}/complete` with `{"model", "input", "max_new_tokens"}` answers
`{"output", "stop", "usage": {"in", "out"}}`, or with `"stream": true` Server-Sent Events
`{"delta"}` ... `{"stop", "usage"}`; `GET {base}/models/{model}` answers `{"context_length"}`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import Field

from workbench.aio import run
from workbench.config import Contender, load_contenders
from workbench.errors import ConfigError
from workbench.measure.capabilities import probe_capabilities
from workbench.measure.probe import probe
from workbench.measure.retry import RetryPolicy, probe_with_retries
from workbench.measure.target import Target
from workbench.pricing import price_for
from workbench.providers import (
    ENTRY_POINT_GROUP,
    Completion,
    HttpRequest,
    Provider,
    ProviderOptions,
    SdkRetry,
    ToolSpec,
    WireContender,
    api_kinds,
    base,
    get_provider,
    load_entry_points,
    register,
)
from workbench.providers.base import api_headers, event_json, json_post
from workbench.providers.caching import how_cached, min_prefix_tokens, prefix_cached
from workbench.providers.contender import options_as
from workbench.providers.errors import classify
from workbench.providers.sse import SSEEvent
from workbench.types import ErrorInfo, Prompt, StreamDelta, Usage

KIND = "acme"
CTX = 8192


class AcmeOptions(ProviderOptions):
    """The format's own option: a server-side cache switch."""

    keep_prefix: bool = Field(False, description="ask the server to keep the prompt's prefix")


def _usage(u: Any) -> Usage | None:
    return Usage(input_tokens=u.get("in"), output_tokens=u.get("out")) if isinstance(u, Mapping) else None


class AcmeStream:
    def feed(self, event: SSEEvent) -> list[StreamDelta]:
        obj = event_json(event.data)
        if isinstance(obj, list):
            return obj
        out = [StreamDelta(text=obj["delta"])] if obj.get("delta") else []
        if (usage := _usage(obj.get("usage"))) is not None:
            out.append(StreamDelta(usage=usage))
        if obj.get("stop"):
            out += [StreamDelta(finish_reason=obj["stop"]), StreamDelta(done=True)]
        return out


class Acme(Provider):
    Options = AcmeOptions
    efforts = ("quick", "thorough")
    how_cached = "explicit: keep_prefix in the body"
    price_provider = "mistral"  # any genai-prices provider id: this one prices the model below
    price_hosts = ("api.acme.test",)
    sdk_retry = SdkRetry(sdk="acme", max_attempts=3, backoff_base_s=0.0, backoff_cap_s=0.0,
                         retry_statuses=frozenset({429, 503}))

    def headers(self, contender: WireContender, api_key: str | None) -> dict[str, str]:
        return api_headers(contender, {"x-acme-key": api_key} if api_key else None)

    def build_request(self, contender: WireContender, prompt: Prompt, *, stream: bool, api_key: str | None,
                      base_url: str) -> HttpRequest:
        body: dict[str, Any] = {"model": contender.model, "input": prompt.text,
                                "max_new_tokens": contender.wire_max_tokens}
        if options_as(contender, AcmeOptions).keep_prefix:
            body["keep_prefix"] = True
        if contender.reasoning is not None and contender.reasoning.effort:
            body["effort"] = contender.reasoning.effort
        if stream:
            body["stream"] = True
        return json_post(base_url.rstrip("/") + "/complete", body, self.headers(contender, api_key), stream=stream)

    def parse_response(self, body: Any) -> Completion:
        if not isinstance(body, Mapping) or not isinstance(body.get("output"), str):
            raise ValueError("response has no 'output'")
        return Completion(text=body["output"], usage=_usage(body.get("usage")) or Usage(),
                          finish_reason=body.get("stop"))

    def stream_parser(self) -> AcmeStream:
        return AcmeStream()

    def classify_error(self, status: int, body: Any, headers: Mapping[str, str]) -> ErrorInfo:
        err = body.get("error") if isinstance(body, Mapping) else None
        return classify(status, err, str(body)[:200], headers)

    def model_url(self, model: str, root: str) -> str | None:
        return f"{root.rstrip('/')}/models/{model}"

    def json_mode_body(self, body: dict[str, Any]) -> dict[str, Any] | None:
        return {**body, "format": "json"}

    def tools_body(self, body: dict[str, Any], tool: ToolSpec) -> dict[str, Any] | None:
        return {**body, "functions": [{"name": tool.name, "schema": tool.parameters}]}

    def tool_called(self, body: Any) -> bool:
        return isinstance(body, Mapping) and "call" in body

    def min_prefix_tokens(self, model: str) -> tuple[int | None, str]:
        return 512, "acme docs"

    def prefix_cache_options(self, on: bool) -> dict[str, Any] | None:
        return {"keep_prefix": on}


@pytest.fixture(autouse=True, scope="module")
def _registered() -> Iterator[None]:
    """The format registers itself for this module's tests only (other modules list the kinds)."""
    register(KIND)(Acme)
    yield
    base._REGISTRY.pop(KIND, None)


class AcmeServer:
    """The in-test server: answers the acme wire, failing the first `fail` requests with a 503."""

    def __init__(self, fail: int = 0) -> None:
        self.fail = fail
        self.requests: list[tuple[str, str, dict[str, Any]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else {}
        self.requests.append((request.method, request.url.path, body))
        if request.method == "GET" and "/models/" in request.url.path:
            return httpx.Response(200, json={"id": request.url.path.rsplit("/", 1)[1], "context_length": CTX})
        if self.fail:
            self.fail -= 1
            return httpx.Response(503, json={"error": "overloaded"})
        usage = {"in": 7, "out": 2}
        if body.get("stream"):
            events = [{"delta": "Hello"}, {"delta": " there"}, {"stop": "end", "usage": usage}]

            async def sse() -> AsyncIterator[bytes]:
                for e in events:
                    yield f"data: {json.dumps(e)}\n\n".encode()

            return httpx.Response(200, content=sse(), headers={"content-type": "text/event-stream"})
        answer: dict[str, Any] = {"output": '{"city": "Paris"}', "stop": "end", "usage": usage}
        if "functions" in body:
            answer["call"] = {"name": "get_weather", "arguments": {"city": "Paris"}}
        return httpx.Response(200, json=answer)


def contender(**fields: Any) -> Contender:
    return Contender.model_validate({"name": "acme-1", "api": KIND, "model": "mistral-large-latest",
                                     "base_url": "https://api.acme.test/v1", **fields})


def client(server: AcmeServer) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(server))


def test_it_is_a_registered_kind_with_typed_options(tmp_path: Path) -> None:
    assert KIND in api_kinds() and get_provider(KIND).kind == KIND
    c = contender(options={"keep_prefix": True}, reasoning={"effort": "quick"})
    assert isinstance(c.provider_options, AcmeOptions) and c.provider_options.keep_prefix
    path = tmp_path / "contenders.yaml"
    path.write_text("contenders:\n  - {name: acme-1, api: acme, model: m, base_url: 'https://api.acme.test',\n"
                    "     options: {keep_prefx: true}}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_contenders(path)
    assert str(err.value) == (f"{path}: contenders[acme-1].options: options.keep_prefx: unknown option for api "
                              "'acme'; valid: extra_body, keep_prefix, omit_temperature, prefix_cache_min_tokens")
    with pytest.raises(ConfigError, match="reasoning.effort 'max' is not one of acme's: quick, thorough"):
        c.override(reasoning={"effort": "max"})


def test_probe_streams_and_reads_usage() -> None:
    server = AcmeServer()

    async def go() -> Any:
        async with client(server) as http:
            return await probe(http, Target.hosted(contender(), stream=True), Prompt(id="p", text="hi"))

    rec = run(go())
    assert rec.ok and rec.n_chunks == 2 and rec.input_tokens == 7 and rec.output_tokens == 2
    assert rec.ttft_s is not None and server.requests[0][1] == "/v1/complete"


def test_capabilities_ask_the_provider() -> None:
    server = AcmeServer()

    async def go() -> dict[str, dict[str, Any]]:
        async with client(server) as http:
            return await probe_capabilities(http, Target.hosted(contender()))

    facts = run(go())
    assert facts["streaming"]["value"] is True and facts["usage_in_stream"]["value"] is True
    assert facts["json_mode"] == {**facts["json_mode"], "value": True, "detail": "accepted; answer parsed as JSON"}
    assert facts["tool_calling"]["detail"] == "accepted; model called the tool"
    assert facts["context_window"]["value"] == CTX and facts["openai_compatible"]["value"] is False
    sent = [body for method, _path, body in server.requests if method == "POST"]
    assert any(b.get("format") == "json" for b in sent) and any("functions" in b for b in sent)


def test_sdk_retry_preset_is_the_providers() -> None:
    policy = RetryPolicy.preset("sdk", KIND, seed=1)
    assert policy.name == "sdk:acme" and policy.max_attempts == 3
    server = AcmeServer(fail=2)

    async def nap(_s: float) -> None:
        return None

    async def go() -> Any:
        async with client(server) as http:
            return await probe_with_retries(http, Target.hosted(contender(), stream=False),
                                            Prompt(id="p", text="hi"), policy, sleep=nap)

    records = run(go())
    assert [r.http_status for r in records] == [503, 503, 200] and records[-1].ok


def test_prefix_caching_is_the_providers() -> None:
    c = contender()
    assert how_cached(c) == "explicit: keep_prefix in the body"
    assert min_prefix_tokens(c) == (512, "acme docs")
    on = prefix_cached(c, True)
    assert on is not None and on.provider_options == AcmeOptions(keep_prefix=True)
    req = get_provider(KIND).build_request(on, Prompt(id="p", text="x"), stream=False, api_key=None,
                                           base_url="http://h")
    assert req.json["keep_prefix"] is True


def test_pricing_asks_the_provider() -> None:
    price = price_for(contender())
    assert price is not None and price.input is not None and price.input > 0 and "mistral" in price.source


def test_a_format_from_another_package_registers_through_the_entry_point(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A distribution on the path that declares `llm_workbench.providers` is loaded, and its kind
    becomes valid, without editing the workbench."""
    (tmp_path / "acme_wire.py").write_text(
        "from workbench.providers import register\n"
        "from tests.providers.test_new_wire_format import Acme\n"
        "register('acme-plugin')(type('AcmePlugin', (Acme,), {}))\n", encoding="utf-8")
    dist = tmp_path / "acme_wire-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-wire\nVersion: 1.0\n", encoding="utf-8")
    (dist / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nacme = acme_wire\n", encoding="utf-8")
    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))  # the plugin's kind ends with the test
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "acme_wire", raising=False)
    assert "acme" in load_entry_points()
    assert "acme-plugin" in api_kinds()
    assert contender(api="acme-plugin").provider_options == AcmeOptions()
