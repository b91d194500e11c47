"""Typed contenders config: what to measure and how to reach it, validated before anything runs.

Precedence, lowest to highest (one chain, everywhere):
  1. field defaults in this module,
  2. the YAML file (`experiments/contenders.yaml`; its `defaults:` block, then each entry),
  3. notebook / `workbench run --param` overrides (e.g. `max_tokens`), applied by the caller.
API keys are never part of the config: an entry names the environment variable that holds its
key (`api_key_env`), and the key is read from the environment only when a request is built.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)

from workbench import keys, workspace
from workbench.errors import ConfigError, lookup
from workbench.pricing import PriceDeclaration
from workbench.providers import ProviderOptions, ThinkingOptions, api_kinds, get_provider, options_error

__all__ = [
    "DEFAULT_CONTENDERS_FILE",
    "Contender",
    "ContenderSet",
    "Reasoning",
    "Sampling",
    "Skipped",
    "load_contenders",
    "load_sections",
    "load_yaml",
    "validation_error",
]

#: The bundled example's contenders (a run reads the workspace's: `workbench.workspace`).
DEFAULT_CONTENDERS_FILE = workspace.bundled().contenders_file



class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Sampling(_Strict):
    """Decoding settings sent with every request unless an experiment overrides them."""

    temperature: float = Field(0.0, ge=0.0, le=2.0, description="0 = greedy, for repeatable runs")
    top_p: float | None = Field(None, gt=0.0, le=1.0, description="nucleus sampling; None = server default")
    max_tokens: int = Field(64, ge=1, le=32768, description="output cap per request")
    stop: list[str] = Field(default_factory=list, description="stop sequences")
    seed: int | None = Field(None, description="sampling seed, where the API supports one")


#: Output tokens reserved for reasoning when nothing else says how many (see `Reasoning.reserve_tokens`).
DEFAULT_REASONING_RESERVE = 4096


class Reasoning(_Strict):
    """How much a reasoning model thinks, per contender. It changes latency and cost, so it is part of
    the contender (its name belongs in every table; `Contender.reasoning_label`).

    On the wire: OpenAI `reasoning_effort` (chat) / `reasoning.effort` (Responses); Anthropic
    `thinking: {type: enabled, budget_tokens}` (≥ 1024; the temperature is then left at its
    default, which thinking requires) and `output_config.effort`; Gemini
    `generationConfig.thinkingConfig.thinkingBudget` (0 off, -1 dynamic) / `thinkingLevel`.

    `sampling.max_tokens` is the *visible* answer's cap everywhere in the workbench. Every
    provider's own cap covers reasoning too (OpenAI `max_completion_tokens`, Anthropic
    `max_tokens` > `budget_tokens`, Gemini `maxOutputTokens`), so the cap sent is
    `max_tokens + reserve` (`Contender.wire_max_tokens`)."""

    effort: str | None = Field(None, description="effort level; the api's own names (e.g. minimal, low, high)")
    budget_tokens: int | None = Field(
        None, ge=-1, description="thinking budget in tokens (Anthropic ≥ 1024; Gemini 0 = off, -1 = dynamic)")
    reserve_tokens: int | None = Field(
        None, ge=0, description="output tokens added to max_tokens for reasoning; default: budget_tokens when "
        f"> 0, 0 when reasoning is off (effort none, budget 0), else {DEFAULT_REASONING_RESERVE}")
    adaptive: bool = Field(False, description="Anthropic: thinking {type: adaptive} — Claude decides when and how "
                                              "much to think (anthropic-sdk-python ThinkingConfigAdaptiveParam)")

    def reserve(self) -> int:
        if self.reserve_tokens is not None:
            return self.reserve_tokens
        if self.budget_tokens is not None and self.budget_tokens >= 0:
            return self.budget_tokens
        if self.effort == "none":
            return 0
        return DEFAULT_REASONING_RESERVE

    def label(self) -> str:
        parts = [f"effort={self.effort}"] if self.effort else []
        if self.adaptive:
            parts.append("adaptive")
        if self.budget_tokens is not None:
            parts.append(f"budget={self.budget_tokens}")
        return ",".join(parts) or "default"


class Contender(_Strict):
    """One model behind one API: the unit the decision matrix ranks."""

    name: str = Field(description="unique name used everywhere (records, CLI, notebooks)")
    api: str = Field(description="wire format; one of workbench.providers.api_kinds()")
    model: str = Field(description="model id sent to the API")
    base_url: str | None = Field(None, description="API root, e.g. https://api.openai.com/v1")
    local: str | None = Field(None, description="embedded model name; the workbench serves it")
    api_key_env: str | None = Field(None, description="NAME of the env variable holding the key")
    prompt_template: str | None = Field(
        None, description="completion models: text with one {prompt} placeholder"
    )
    system_prompt: str | None = Field(None, description="chat models: optional system message")
    sampling: Sampling = Field(default_factory=Sampling)
    reasoning: Reasoning | None = Field(None, description="reasoning-model settings (see Reasoning)")
    enabled: bool = Field(True, description="false = never selected by default")
    timeout_s: float = Field(60.0, gt=0, description="per-request deadline, connect to last byte")
    headers: dict[str, str] = Field(default_factory=dict, description="extra non-secret headers")
    options: dict[str, Any] = Field(
        default_factory=dict, description="provider-specific settings, typed by the api kind's `Provider.Options` "
                                          "(e.g. generic field paths)"
    )
    declared: dict[str, Any] = Field(
        default_factory=dict, description="integration facts declared by hand (SDK, docs, ...)"
    )
    price: PriceDeclaration | None = Field(
        None, description="price fields declared by hand (workbench.pricing.PriceDeclaration), over the library's")
    hosting: Literal["embedded", "self-hosted", "hosted"] | None = Field(
        None, description="who runs the model, which says how it is costed: embedded (the workbench serves it, "
                          "`local`) and self-hosted (your own server: machine-hours, price.machine_hour_usd) at the "
                          "measured throughput; hosted (a provider) per token. Default: embedded with `local`, "
                          "else hosted")
    notes: str | None = Field(None, description="free text shown in reports")

    @field_serializer("price")
    def _price_as_declared(self, v: PriceDeclaration | None) -> dict[str, Any] | None:
        """Dumped as declared, so a contender rebuilt from its dump (`override`) declares the same."""
        return v.declared() if v is not None else None

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._\-]*", v):
            raise ValueError("use letters, digits, '.', '_' or '-' (it names files and columns)")
        return v

    @field_validator("api")
    @classmethod
    def _api_known(cls, v: str) -> str:
        if v not in api_kinds():
            raise ValueError(f"unknown api kind {v!r}; valid: {', '.join(sorted(api_kinds()))}")
        return v

    @field_validator("options")
    @classmethod
    def _options_typed(cls, v: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        """Checked against the api kind's `Options` (skipped when the api itself is invalid)."""
        api = info.data.get("api")
        if api is None:
            return v
        options_cls = get_provider(api).Options
        try:
            options_cls.model_validate(v)
        except ValidationError as exc:
            raise ValueError(options_error(api, options_cls, exc)) from None
        return v

    @field_validator("local")
    @classmethod
    def _local_known(cls, v: str | None) -> str | None:
        if v is None:
            return v
        from workbench.embedded import LOCAL_MODELS

        if v not in LOCAL_MODELS:
            raise ValueError(f"unknown local model {v!r}; valid: {', '.join(sorted(LOCAL_MODELS))}")
        return v

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, v: str | None) -> str | None:
        return v if v is None else keys.check_env_name(v)

    @field_validator("headers")
    @classmethod
    def _no_secret_headers(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            if key.lower() in keys.SECRET_HEADERS:
                raise ValueError(f"header {key!r} carries a secret; use api_key_env instead")
        return v

    @model_validator(mode="after")
    def _endpoint_and_template(self) -> Contender:
        if (self.base_url is None) == (self.local is None):
            raise ValueError("set exactly one of base_url (hosted) or local (embedded model)")
        if self.base_url is not None and not re.match(r"^https?://", self.base_url):
            raise ValueError(f"base_url {self.base_url!r} must start with http:// or https://")

        if self.hosting == "embedded" and self.local is None:
            raise ValueError("hosting embedded needs `local` (an embedded model); your own server is self-hosted")
        if self.local is not None and self.hosting not in (None, "embedded"):
            raise ValueError(f"an embedded model (`local`) is hosting embedded, not {self.hosting}")
        self._check_reasoning()
        provider = get_provider(self.api)
        if provider.needs_prompt_template:
            if not self.prompt_template:
                raise ValueError(f"api {self.api!r} is a completion API: prompt_template is required")
            if "{prompt}" not in self.prompt_template:
                raise ValueError("prompt_template must contain the placeholder {prompt}")
        return self

    def _check_reasoning(self) -> None:
        r = self.reasoning
        if r is None:
            return
        get_provider(self.api).check_reasoning(r.effort, r.budget_tokens, r.adaptive)
        if r.adaptive and r.budget_tokens is not None:
            raise ValueError("reasoning.adaptive: Claude chooses its own budget; leave budget_tokens out")

    @cached_property
    def provider_options(self) -> ProviderOptions:
        """`options`, typed by the api kind's `Provider.Options` (checked when the contender was)."""
        return get_provider(self.api).Options.model_validate(self.options)

    def _old_thinking_budget(self) -> int | None:
        opts = self.provider_options
        return opts.thinking_budget if isinstance(opts, ThinkingOptions) else None

    @property
    def thinking_budget(self) -> int | None:
        """The Gemini/Anthropic thinking budget: `reasoning.budget_tokens`, else the older
        `options.thinking_budget`."""
        if self.reasoning is not None and self.reasoning.budget_tokens is not None:
            return self.reasoning.budget_tokens
        return self._old_thinking_budget()

    @property
    def wire_max_tokens(self) -> int:
        """The output cap sent to the API: the visible cap plus the reasoning reserve (the API's
        cap counts both). A request's worst-case cost is priced on this."""
        return self.sampling.max_tokens + (self.reasoning.reserve() if self.reasoning is not None else 0)

    def reasoning_label(self) -> str | None:
        """"effort=low,budget=2048" for tables and records; None when no reasoning is configured."""
        if self.reasoning is not None:
            return self.reasoning.label()
        old = self._old_thinking_budget()
        if old is not None:
            return f"budget={old}"
        return None

    @property
    def is_local(self) -> bool:
        """Served by the workbench itself (an embedded model): its server, its wire rules."""
        return self.local is not None

    @property
    def hosted_by(self) -> str:
        """`embedded`, `self-hosted` or `hosted` (the field, else from `local`)."""
        return self.hosting or ("embedded" if self.local is not None else "hosted")

    @property
    def machine_priced(self) -> bool:
        """Costed by machine-hours at its measured throughput (embedded or self-hosted), not per token."""
        return self.hosted_by != "hosted"

    def machine_hour_usd(self, default: float) -> float:
        """USD per machine-hour: the contender's own `price.machine_hour_usd`, else `default` (the
        run's `machine_hour_usd` parameter)."""
        declared = self.price.machine_hour_usd if self.price is not None else None
        return float(declared) if declared is not None else default

    def api_key(self) -> str | None:
        """The key from the environment, or None. Never stored on the object."""
        return None if self.api_key_env is None else keys.read_key(self.api_key_env)

    def key_missing(self) -> bool:
        return self.api_key_env is not None and self.api_key() is None

    def with_sampling(self, *, source: str = "overrides", **overrides: Any) -> Contender:
        """A validated copy with sampling fields replaced (None values are ignored).

        The top of the precedence chain (notebook / `--param` overrides) goes through the same
        validation as the file: `max_tokens=0` or an unknown field raises ConfigError naming
        `source` and the field."""
        clean = {k: v for k, v in overrides.items() if v is not None}
        if not clean:
            return self
        return self.override(source, sampling={**self.sampling.model_dump(), **clean})

    def override(self, source: str = "overrides", /, **fields: Any) -> Contender:
        """A validated copy with top-level fields replaced (e.g. an experiment's own prompt).

        Never `model_copy(update=...)`, which skips validation: every contender that reaches
        the wire has passed the same checks as one read from the file."""
        data = {**self.model_dump(), **fields}
        try:
            return Contender.model_validate(data)
        except ValidationError as exc:
            raise _config_error(exc, source, f"contenders[{self.name}]") from None

    def public_dict(self) -> dict[str, Any]:
        """For manifests and reports: everything but secrets (there are none stored, by design)."""
        return self.model_dump(mode="json")


@dataclass(frozen=True)
class Skipped:
    """A contender left out of a run, with the one-line reason shown to the user."""

    name: str
    reason: str


class ContenderSet:
    """The validated contents of a contenders file, with name lookups that explain themselves."""

    def __init__(self, contenders: Iterable[Contender], source: str = "<memory>") -> None:
        self.source = source
        self._by_name: dict[str, Contender] = {}
        for c in contenders:
            if c.name in self._by_name:
                raise ConfigError(source, f"contenders[{c.name}]", "duplicate contender name")
            self._by_name[c.name] = c

    def __iter__(self) -> Iterator[Contender]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    def names(self) -> list[str]:
        return list(self._by_name)

    def get(self, name: str) -> Contender:
        return lookup("contender", name, self._by_name)

    def select(self, names: str | Iterable[str] | None = None) -> tuple[list[Contender], list[Skipped]]:
        """Resolve a selection to runnable contenders plus the skipped ones and why.

        `names` may be None / "" / "enabled" (every enabled entry), "all", a comma-separated
        string or a list. Named contenders that are unknown raise; named ones whose key is
        missing are skipped with a note, like disabled defaults.
        """
        if isinstance(names, str):
            names = [n.strip() for n in names.split(",") if n.strip()]
        wanted: list[Contender]
        if not names or list(names) == ["enabled"]:
            wanted = [c for c in self if c.enabled]
        elif list(names) == ["all"]:
            wanted = list(self)
        else:
            wanted = [self.get(n) for n in names]
        chosen: list[Contender] = []
        skipped: list[Skipped] = []
        for c in wanted:
            if c.key_missing():
                skipped.append(Skipped(c.name, f"skipped {c.name}: ${c.api_key_env} is not set"))
            else:
                chosen.append(c)
        return chosen, skipped


def load_yaml(path: str | Path) -> Any:
    """Parse a YAML file, turning syntax errors into a ConfigError with the line."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(p), None, f"cannot read: {exc.strerror or exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(str(p), where, f"invalid YAML: {problem}") from None


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def _field_path(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc) if loc else "(entry)"


def validation_error(exc: ValidationError, source: str, label: str,
                     fields_at: Callable[[tuple[int | str, ...]], Iterable[str]]) -> ConfigError:
    """The first validation error as ConfigError(file, field, reason); an unknown field lists
    the valid ones (`fields_at(location)`). Every typed file the workbench reads reports so."""
    err = exc.errors()[0]
    loc = tuple(err["loc"])
    reason = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        reason = f"unknown field; valid: {', '.join(fields_at(loc))}"
    return ConfigError(source, f"{label}.{_field_path(loc)}" if loc else label, reason)


def _contender_fields(loc: tuple[int | str, ...]) -> list[str]:
    nested: dict[str, type[BaseModel]] = {"sampling": Sampling, "reasoning": Reasoning, "price": PriceDeclaration}
    model = nested.get(str(loc[0]) if loc else "", Contender)
    return sorted(model.model_fields)


def _config_error(exc: ValidationError, source: str, label: str) -> ConfigError:
    return validation_error(exc, source, label, _contender_fields)


def load_sections(path: Path, fields: Sequence[str], what: str) -> dict[str, Any]:
    """A YAML file that must be a mapping of only `fields` (the first is required); ConfigError
    naming the file and the field otherwise."""
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(str(path), None, f"expected a mapping with {what}")
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(str(path), unknown[0], f"unknown top-level field; valid: {', '.join(sorted(fields))}")
    return data


def load_contenders(path: str | Path | None = None) -> ContenderSet:
    """Load and validate a contenders file; any mistake raises ConfigError naming file and field."""
    p = Path(path) if path is not None else workspace.current().contenders_file
    data = load_sections(p, ("contenders", "defaults"), "a 'contenders' list")
    src = str(p)
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise ConfigError(src, "defaults", "must be a mapping")
    entries = data.get("contenders")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(src, "contenders", "must be a non-empty list")
    contenders: list[Contender] = []
    for i, entry in enumerate(entries):
        label = f"contenders[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(src, label, "each contender must be a mapping")
        if isinstance(entry.get("name"), str):
            label = f"contenders[{entry['name']}]"
        try:
            contenders.append(Contender.model_validate(_merge(defaults, entry)))
        except ValidationError as exc:
            raise _config_error(exc, src, label) from None
    keys.watch(c.api_key_env for c in contenders if c.api_key_env)
    return ContenderSet(contenders, source=src)
