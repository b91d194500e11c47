"""Preflight: before an experiment sends work, is each hosted contender's model there for this key?

Models are retired (Anthropic retired `claude-3-7-sonnet-20250219` on
19 February 2026) and keys lack access; a run should not spend its time finding that out one
failed request at a time. For each hosted contender, one cheap call:

1. the provider's model lookup — `GET {base}/models/{model}` (OpenAI, Anthropic) or
   `GET {base}/models/{model}` under v1beta (Gemini) — with the contender's own key headers;
2. where there is none (generic endpoints), or the lookup route itself is missing (a 404 that
   does not say "model not found", as from a gateway without the route), one generation with
   a 1-token cap.

Before that, with no key and no request, the installed SDK's own deprecation tables
(`hosted_models.sdk_lifecycle`: OpenAI's announced shutdown dates, Anthropic's end-of-life
dates; only for the provider's own API host) skip a model past its date and warn within 30 days.

A lookup that answers is read, not trusted: its lifecycle fields (`Provider.lifecycle`: Anthropic's
`lifecycle` / `retires_at`, OpenAI's `shutdown_date`) skip a retired model or one past its
shutdown, and warn about a deprecated one or one retiring within 30 days.

The answer is `ok=True` (run it; `warning` when its model is on its way out), `ok=False` (skip it,
with a one-line reason naming the contender, the model and the provider's own message: model not
found or retired, no access, bad key, no quota) or `ok=None` (inconclusive — rate limited,
overloaded, unreachable: run it and let the records say what happened). Embedded models are
never checked: the workbench serves them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from workbench.aio import run_sync
from workbench.config import Contender
from workbench.hosted_models import sdk_lifecycle
from workbench.measure.probe import make_client, probe
from workbench.measure.target import Target
from workbench.providers import provider_for
from workbench.types import ErrorClass, Prompt

__all__ = ["Preflight", "check", "model_url", "run_preflight"]

#: Classes that mean "this contender cannot run with this key": skip it.
_FATAL = frozenset({ErrorClass.MODEL_NOT_FOUND, ErrorClass.AUTH, ErrorClass.QUOTA_EXHAUSTED})
_MESSAGE_CHARS = 300


@dataclass(frozen=True)
class Preflight:
    """One contender's preflight: ok True (available), False (skip), None (inconclusive)."""

    contender: str
    model: str
    ok: bool | None
    message: str
    how: str  # "sdk" (its deprecation tables, nothing sent) | "lookup" | "generation" | "local"
    #: runnable, but said before the run: deprecated, or retiring within
    #: `providers.base.RETIREMENT_WARNING_DAYS` (from the lookup's lifecycle fields)
    warning: str = ""

    @property
    def skip_line(self) -> str:
        """The one line a run prints for a skipped contender."""
        return f"skipped {self.contender}: model {self.model!r} unavailable — {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Preflight:
        return cls(str(d["contender"]), str(d["model"]), d.get("ok"), str(d.get("message", "")),
                   str(d.get("how", "lookup")), str(d.get("warning", "")))

    @property
    def warning_line(self) -> str:
        """The one line a run prints for a runnable contender whose model is on its way out."""
        return f"warning: {self.contender}: model {self.model!r} {self.warning}"


def model_url(contender: Contender, base_url: str) -> str | None:
    """The provider's model-lookup URL for this contender, or None when the API has none."""
    root = base_url.rstrip("/")
    model = contender.model
    if contender.api.startswith("openai") or contender.api == "anthropic":
        return f"{root}/models/{model}"
    if contender.api == "gemini":
        return f"{root}/{model if model.startswith(('models/', 'tunedModels/')) else 'models/' + model}"
    return None


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MESSAGE_CHARS else text[:_MESSAGE_CHARS] + "…"


async def _lookup(client: httpx.AsyncClient, contender: Contender, base_url: str, url: str,
                  now: datetime | None = None) -> Preflight | None:
    """The lookup's verdict, or None when it cannot tell (no such route). `now` (default the
    clock) is what the model's lifecycle dates are compared with."""
    provider = provider_for(contender)
    req = provider.build_request(contender, Prompt(id="preflight", text=""), stream=False,
                                 api_key=contender.api_key(), base_url=base_url)
    headers = {k: v for k, v in req.headers.items() if k.lower() != "content-type"}
    name, model = contender.name, contender.model
    try:
        async with asyncio.timeout(min(contender.timeout_s, 30.0)):
            resp = await client.get(url, headers=headers)
            raw = await resp.aread()
    except (httpx.HTTPError, TimeoutError) as exc:
        return Preflight(name, model, None, f"model lookup failed: {type(exc).__name__}", "lookup")
    try:
        body: Any = json.loads(raw)
    except ValueError:
        body = raw[:500].decode("utf-8", "replace")
    if resp.status_code < 400:
        # A 2xx is not "available": a retired model "remains in the catalogue" (Anthropic), one
        # past its shutdown_date is gone (OpenAI) — the body says which.
        found = f"HTTP {resp.status_code} from {url}"
        life = provider.lifecycle(body)
        if life is None:
            return Preflight(name, model, True, found, "lookup")
        runnable, why = life.verdict(now or datetime.now(UTC))
        if not runnable:
            return Preflight(name, model, False, f"{why}: {found}", "lookup")
        return Preflight(name, model, True, found, "lookup", why or "")
    info = provider.classify_error(resp.status_code, body, resp.headers)
    what = f"HTTP {resp.status_code} {info.error_class.value}: {_short(info.message)}"
    if info.error_class in _FATAL:
        return Preflight(name, model, False, what, "lookup")
    if resp.status_code == 404:
        return None  # the route, not the model, may be missing: ask with a generation instead
    return Preflight(name, model, None, what, "lookup")


async def _generation(client: httpx.AsyncClient, contender: Contender, base_url: str) -> Preflight:
    tiny = contender.override("preflight", reasoning=None,
                              sampling={**contender.sampling.model_dump(), "max_tokens": 1})
    rec = await probe(client, Target(tiny, base_url, experiment="preflight", stream=False),
                      Prompt(id="preflight", text="Say OK."))
    name, model = contender.name, contender.model
    if rec.ok or rec.error_class == ErrorClass.TRUNCATED.value:
        return Preflight(name, model, True, "a 1-token generation answered", "generation")
    what = f"HTTP {rec.http_status} {rec.error_class}: {_short(rec.error_message or '')}"
    fatal = rec.error_class in {c.value for c in _FATAL}
    return Preflight(name, model, False if fatal else None, what, "generation")


async def check(client: httpx.AsyncClient, contender: Contender, base_url: str,
                now: datetime | None = None) -> Preflight:
    """One contender's preflight (see the module docstring)."""
    if contender.is_local:
        return Preflight(contender.name, contender.model, True, "served by the workbench", "local")
    # First what the installed SDK's own deprecation tables announce: no key, nothing sent.
    life = sdk_lifecycle(contender)
    runnable, announced = life.verdict(now or datetime.now(UTC)) if life is not None else (True, None)
    if not runnable:
        return Preflight(contender.name, contender.model, False, announced or "", "sdk")
    url = model_url(contender, base_url)
    found = await _lookup(client, contender, base_url, url, now) if url is not None else None
    if found is None:
        found = await _generation(client, contender, base_url)
    if announced and found.ok is not False and not found.warning:
        found = dataclasses.replace(found, warning=announced)
    return found


def run_preflight(contenders: Sequence[Contender], base_urls: Mapping[str, str] | None = None) -> list[Preflight]:
    """Check every contender at once (hosted ones make one call each); results in the same order.
    Callable from a notebook cell too: inside a running loop it runs on a worker thread's own
    (`workbench.aio.run_sync`)."""
    urls = dict(base_urls or {})

    async def _all() -> list[Preflight]:
        async with make_client(max(1, len(contenders))) as client:
            return list(await asyncio.gather(*(
                check(client, c, urls.get(c.name) or c.base_url or "") for c in contenders)))

    return run_sync(_all()) if contenders else []
