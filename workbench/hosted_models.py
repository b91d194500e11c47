"""The hosted providers' current models, as the installed official SDKs and genai-prices say.

A hand-kept list of model names goes stale within months (a model the project shipped enabled
shut down while it was still listed). The official SDKs regenerate their model types from each
provider's API spec with every release and carry its deprecation notes; genai-prices carries
prices, context windows and a deprecated flag. `workbench models` reads them, so upgrading those
packages refreshes the list:

- OpenAI (openai-python): the `ChatModel` and `ResponsesModel` literal types
  (`types/shared/chat_model.py`, `responses_model.py`) and the "Deprecated values" notes written
  under `ChatModel` ("Announced shutdown date: YYYY-MM-DD", "Not a supported model ID").
- Anthropic (anthropic-sdk-python): the `Model` literal type (`types/model.py`) and the SDK's
  table of deprecated models with their end-of-life dates (`_data/deprecated_models.py`, which
  the SDK itself warns from).
- Google (google-genai): the SDK has no model type, so the Gemini models are genai-prices'
  (`gemini-*` under the `google` provider), with its deprecated flag.

Hand-written because no library exposes this: the OpenAI notes are a string statement after a
type alias (not a runtime docstring), read from the module's source with `ast`; everything else
is the packages' own data; prices are `pricing.library_price`'s, as a run charges them. A package
that is not installed lists nothing and says so.
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.metadata
import importlib.util
import re
import typing
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from workbench.pricing import library_price
from workbench.providers.base import Lifecycle

if TYPE_CHECKING:
    from workbench.config import Contender

__all__ = ["OFFICIAL_HOSTS", "PROVIDERS", "Catalog", "ModelEntry", "catalog", "catalog_window", "format_catalog",
           "openai_deprecations", "sdk_lifecycle", "suggested_model"]

#: Provider name → (SDK distribution, genai-prices provider id).
PROVIDERS: dict[str, tuple[str, str]] = {
    "openai": ("openai", "openai"),
    "anthropic": ("anthropic", "anthropic"),
    "google": ("google-genai", "google"),
}
#: Wire format → (provider, the API host its SDK's deprecation tables speak for). A model served
#: elsewhere (a gateway, another cloud) keeps its own schedule: the tables say nothing of it.
OFFICIAL_HOSTS: dict[str, tuple[str, str]] = {
    "openai-chat": ("openai", "api.openai.com"),
    "openai-responses": ("openai", "api.openai.com"),
    "openai-completions": ("openai", "api.openai.com"),
    "anthropic": ("anthropic", "api.anthropic.com"),
    "gemini": ("google", "generativelanguage.googleapis.com"),
}
_SHUTDOWN = re.compile(r"shutdown date:\s*(\d{4}-\d{2}-\d{2})", re.I)
_ORDINAL = re.compile(r"(\d+)(st|nd|rd|th)\b")


@dataclass(frozen=True)
class ModelEntry:
    """One model of one provider: its end of life if announced, its price if known."""

    provider: str
    model: str
    shutdown: date | None = None  # announced shutdown / end-of-life date
    note: str = ""  # what the SDK says beyond a date (e.g. "Not a supported model ID")
    deprecated: bool = False
    input_usd_per_mtok: float | None = None
    output_usd_per_mtok: float | None = None
    context_window: int | None = None
    tiered: bool = False  # the prices are the base tier's: a longer prompt pays more

    def status(self, today: date) -> str:
        if self.shutdown is not None:
            left = (self.shutdown - today).days
            if left <= 0:
                return f"shut down {self.shutdown.isoformat()}"
            return f"shuts down {self.shutdown.isoformat()} (in {left} day{'s' if left != 1 else ''})"
        if self.note:
            return self.note
        return "deprecated" if self.deprecated else ""


@dataclass
class Catalog:
    entries: list[ModelEntry] = field(default_factory=list)
    #: one line per data source: package and version, or why it is missing
    sources: list[str] = field(default_factory=list)

    def get(self, provider: str, model: str) -> ModelEntry | None:
        return next((e for e in self.entries if e.provider == provider and e.model == model), None)


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _literals(tp: Any) -> Iterator[str]:
    """The string values of a (possibly nested) Literal / Union type, in declaration order."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) is typing.Literal:
        yield from (a for a in args if isinstance(a, str))
        return
    for a in args:
        yield from _literals(a)


def openai_deprecations(source: str, alias: str = "ChatModel") -> dict[str, tuple[date | None, str]]:
    """Model → (announced shutdown date, note) from the "Deprecated values" string written after
    `alias` in an openai-python module's `source`. Each bullet names quoted models, then what
    holds for them ("Announced shutdown date: 2026-12-11. See …" or "Not a supported model ID")."""
    tree = ast.parse(source)
    body = tree.body
    text = ""
    for i, node in enumerate(body[:-1]):
        targets = [node.target] if isinstance(node, ast.AnnAssign) else getattr(node, "targets", [])
        if any(isinstance(t, ast.Name) and t.id == alias for t in targets):
            nxt = body[i + 1]
            if isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str):
                text = nxt.value.value
            break
    out: dict[str, tuple[date | None, str]] = {}
    for bullet in re.split(r"\n(?=- )", text):
        bullet = " ".join(bullet.removeprefix("- ").split())
        names, sep, rest = bullet.partition('": ')
        if not sep:
            continue
        models = re.findall(r'"([^"]+)"', names + '"')
        when = _SHUTDOWN.search(rest)
        shutdown = date.fromisoformat(when.group(1)) if when else None
        note = "" if when else rest.split(". ")[0].rstrip(".")
        for m in models:
            out[m] = (shutdown, note)
    return out


def _anthropic_date(text: str) -> date | None:
    """"January 22nd, 2027" (the SDK's table) → a date; None if it reads otherwise."""
    try:
        return datetime.strptime(_ORDINAL.sub(r"\1", text.strip()), "%B %d, %Y").date()
    except ValueError:
        return None


def _sdk_entries(provider: str) -> tuple[list[ModelEntry], str]:
    dist = PROVIDERS[provider][0]
    version = _version(dist)
    if provider == "google":
        return [], f"{dist} {version or 'not installed'}: no model type in the SDK; Gemini models from genai-prices"
    if version is None:
        return [], f"{dist} not installed (pip install {dist}): no {provider} models from its SDK"
    if provider == "openai":
        chat = importlib.import_module("openai.types.shared.chat_model")
        responses = importlib.import_module("openai.types.shared.responses_model")
        spec = importlib.util.find_spec("openai.types.shared.chat_model")
        source = Path(spec.origin).read_text(encoding="utf-8") if spec and spec.origin else ""
        notes = openai_deprecations(source)
        names = list(dict.fromkeys([*_literals(chat.ChatModel), *_literals(responses.ResponsesModel)]))
        entries = [ModelEntry(provider, m, *notes.get(m, (None, ""))) for m in names]
        return entries, (f"openai {version}: types/shared/chat_model.py and responses_model.py "
                         f"({len(names)} models, {sum(m in notes for m in names)} with deprecation notes)")
    model_type = importlib.import_module("anthropic.types.model")
    try:
        table: dict[str, str] = dict(importlib.import_module("anthropic._data").DEPRECATED_MODELS)
    except (ImportError, AttributeError):
        table = {}
    names = list(dict.fromkeys(_literals(model_type.Model)))
    entries = [ModelEntry(provider, m, _anthropic_date(table[m]) if m in table else None, deprecated=m in table)
               for m in names]
    return entries, (f"anthropic {version}: types/model.py ({len(names)} models) and _data/deprecated_models.py "
                     f"({len(table)} deprecated)")


def _tiered(model: Any) -> bool:
    """Whether genai-prices bills this model in tiers (a longer prompt pays more than the base
    rate `pricing.library_price` reports for a short request)."""
    prices = model.get_prices(datetime.now(UTC))
    return any(hasattr(getattr(prices, f, None), "base") for f in ("input_mtok", "output_mtok"))


def _priced(entries: list[ModelEntry], provider: str) -> tuple[list[ModelEntry], str]:
    """Prices, context windows and deprecated flags from genai-prices; for Google, its models."""
    from genai_prices import data_snapshot

    snap = data_snapshot.get_snapshot()
    prov = next((p for p in snap.providers if p.id == PROVIDERS[provider][1]), None)
    version = _version("genai-prices")
    if prov is None:
        return entries, f"genai-prices {version}: no provider {PROVIDERS[provider][1]!r}"
    if provider == "google":
        entries = [ModelEntry(provider, m.id) for m in prov.models if m.id.startswith("gemini-")]
    out = []
    for e in entries:
        found = prov.find_model(e.model)
        if found is None:
            out.append(e)
            continue
        price = library_price(e.model, provider_id=prov.id)  # the rates the run would charge
        out.append(ModelEntry(e.provider, e.model, e.shutdown, e.note, e.deprecated or bool(found.deprecated),
                              price.input if price else None, price.output if price else None,
                              found.context_window, _tiered(found)))
    return out, f"genai-prices {version}: prices and context windows ({prov.id})"


def catalog(providers: Iterable[str] | None = None) -> Catalog:
    """Every model of each provider (default: all of `PROVIDERS`), newest first as the SDK lists them."""
    cat = Catalog()
    for provider in providers or PROVIDERS:
        if provider not in PROVIDERS:
            raise ValueError(f"unknown provider {provider!r}; valid: {', '.join(PROVIDERS)}")
        entries, line = _sdk_entries(provider)
        entries, price_line = _priced(entries, provider)
        cat.entries.extend(entries)
        cat.sources += [line, price_line]
    return cat


def format_catalog(cat: Catalog, today: date | None = None, *, include_shut_down: bool = False) -> str:
    """A plain-text table: provider, model, $/MTok in and out, context window, status; sources first."""
    today = today or datetime.now(UTC).date()
    lines = [f"# {s}" for s in dict.fromkeys(cat.sources)]
    rows = [e for e in cat.entries if include_shut_down or e.shutdown is None or e.shutdown > today]
    hidden = len(cat.entries) - len(rows)

    def usd(x: float | None, tiered: bool) -> str:
        return "-" if x is None else f"{x:g}{'*' if tiered else ''}"

    table = [("provider", "model", "in $/MTok", "out $/MTok", "context", "status")]
    table += [(e.provider, e.model, usd(e.input_usd_per_mtok, e.tiered), usd(e.output_usd_per_mtok, e.tiered),
               f"{e.context_window:,}" if e.context_window else "-", e.status(today)) for e in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table]
    if any(e.tiered for e in rows):
        lines.append("* the base tier's price: a prompt above the model's threshold pays more (genai-prices tiers)")
    if hidden:
        lines.append(f"({hidden} models past their shutdown date not shown: --all lists them)")
    return "\n".join(lines)


@functools.cache
def _announced(provider: str) -> dict[str, ModelEntry]:
    """The provider's models as its installed SDK declares them (no prices: no genai-prices
    lookups), by name; read once per process."""
    entries, _ = _sdk_entries(provider)
    return {e.model: e for e in entries}


def catalog_window(contender: Contender) -> int | None:
    """The hosted model's context window as the model catalogue (genai-prices' model data) gives
    it; None when its provider or model is not there."""
    from workbench.pricing import provider_for_api

    provider = next((p for p, (_sdk, gp) in PROVIDERS.items() if gp == provider_for_api(contender.api)), None)
    entry = catalog([provider]).get(provider, contender.model) if provider else None
    return entry.context_window if entry is not None and entry.context_window else None


def sdk_lifecycle(contender: Contender) -> Lifecycle | None:
    """The contender's model's lifecycle as the installed SDK's own tables announce it — OpenAI's
    "Deprecated values" shutdown dates, Anthropic's deprecated-models end-of-life dates — with no
    key and no request; None when the contender is not on its provider's own API (`OFFICIAL_HOSTS`)
    or the SDK says nothing of its model. The same `Lifecycle.verdict` as a model lookup's: past
    the date it is skipped, within `providers.base.RETIREMENT_WARNING_DAYS` it warns."""
    official = OFFICIAL_HOSTS.get(contender.api)
    if official is None or contender.is_local or urlsplit(contender.base_url or "").hostname != official[1]:
        return None
    provider = official[0]
    if provider == "google" or _version(PROVIDERS[provider][0]) is None:
        return None  # google-genai has no model type nor deprecation table
    entry = _announced(provider).get(contender.model)
    if entry is None or (entry.shutdown is None and not entry.deprecated and not entry.note):
        return None
    ends = datetime(entry.shutdown.year, entry.shutdown.month, entry.shutdown.day, tzinfo=UTC) \
        if entry.shutdown is not None else None
    table = ("openai-python types/shared/chat_model.py deprecations" if provider == "openai"
             else "anthropic-sdk-python deprecated models")
    source = f"{table}, {PROVIDERS[provider][0]} {_version(PROVIDERS[provider][0])}"
    stage = "deprecated" if entry.deprecated or entry.note or ends is not None else "active"
    return Lifecycle(stage=stage, ends=ends, source=source + (f": {entry.note}" if entry.note else ""))


def _current(provider: str) -> list[str]:
    """The provider's model names with no deprecation or shutdown announced, in the SDK's order
    (Gemini's: genai-prices' models not flagged deprecated); no prices looked up."""
    if provider != "google":
        return [e.model for e in _announced(provider).values()
                if e.shutdown is None and not e.deprecated and not e.note]
    from genai_prices import data_snapshot

    prov = next((p for p in data_snapshot.get_snapshot().providers if p.id == PROVIDERS[provider][1]), None)
    return [m.id for m in prov.models if m.id.startswith("gemini-") and not m.deprecated] if prov else []


def suggested_model(provider: str) -> tuple[ModelEntry | None, str]:
    """(model, why) to suggest for `provider` in a new workspace — never a hand-kept name: the
    model the installed SDK's own README examples use most (the provider's lead model of that
    release), if the SDK and genai-prices list it as current (priced, no deprecation or shutdown
    announced); else the first current one of the SDK's model type. (None, why) when there is none.
    Only the chosen model is priced, so `workbench init` stays quick."""
    dist = PROVIDERS[provider][0]
    version = _version(dist)
    if version is None:
        return None, f"{dist} is not installed"
    current = _current(provider)
    readme = importlib.metadata.metadata(dist).get_payload() or ""  # type: ignore[attr-defined]
    used = re.findall(r"""model\s*=\s*['"]([\w.-]+)['"]""", str(readme))
    led = [m for m in sorted(set(used), key=lambda m: (-used.count(m), used.index(m))) if m in current]
    for name, why in [*((m, "README examples") for m in led), *((m, "model type") for m in current)]:
        price = library_price(name, provider_id=PROVIDERS[provider][1])
        if price is not None and price.input is not None:
            return (ModelEntry(provider, name, input_usd_per_mtok=price.input, output_usd_per_mtok=price.output),
                    f"{dist} {version}'s {why}")
    return None, f"no current, priced {provider} model in {dist} {version}"
