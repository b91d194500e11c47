"""A contender as the wire formats see it: what a provider reads of one (`WireContender`, which
`workbench.config.Contender` satisfies, so nothing here imports the config above), and its
typed `options` (`ProviderOptions`, subclassed by each api kind as `Provider.Options`)."""

from __future__ import annotations

from typing import Any, Protocol, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = ["ContenderIdentity", "ProviderOptions", "ReasoningSettings", "SamplingSettings", "ThinkingOptions",
           "WireContender", "options_as", "options_error"]


class SamplingSettings(Protocol):
    """The decoding settings a request carries (`workbench.config.Sampling` is one)."""

    @property
    def temperature(self) -> float: ...
    @property
    def top_p(self) -> float | None: ...
    @property
    def max_tokens(self) -> int: ...
    @property
    def stop(self) -> list[str]: ...
    @property
    def seed(self) -> int | None: ...


class ReasoningSettings(Protocol):
    """How much a reasoning model thinks (`workbench.config.Reasoning` is one)."""

    @property
    def effort(self) -> str | None: ...
    @property
    def budget_tokens(self) -> int | None: ...
    @property
    def adaptive(self) -> bool: ...


class ContenderIdentity(Protocol):
    """Which contender, on which wire format, model and server: what every reader of a contender
    below the config needs (the wire formats here, pricing beside them)."""

    @property
    def name(self) -> str: ...
    @property
    def api(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def base_url(self) -> str | None: ...


class WireContender(ContenderIdentity, Protocol):
    """What a provider reads of a contender (`workbench.config.Contender` is one): named here so
    the wire formats need nothing from the config above them. The provider modules annotate with
    it under the name `Contender`."""

    @property
    def headers(self) -> dict[str, str]: ...
    @property
    def options(self) -> dict[str, Any]: ...
    @property
    def provider_options(self) -> ProviderOptions: ...
    @property
    def system_prompt(self) -> str | None: ...
    @property
    def prompt_template(self) -> str | None: ...
    @property
    def sampling(self) -> SamplingSettings: ...
    @property
    def reasoning(self) -> ReasoningSettings | None: ...
    @property
    def wire_max_tokens(self) -> int: ...
    @property
    def thinking_budget(self) -> int | None: ...
    @property
    def is_local(self) -> bool: ...

    def override(self, source: str = "overrides", /, **fields: Any) -> Self:
        """A validated copy with top-level fields replaced."""
        ...


class ProviderOptions(BaseModel):
    """A contender's `options` as its provider reads them: every API kind's `Provider.Options` is
    this or a subclass, validated with the contender (an unknown key is an error naming the
    contender, the field and the valid names, never a silently ignored typo)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    omit_temperature: bool = Field(False, description="send no temperature (models that take only their default)")
    extra_body: dict[str, Any] = Field(
        default_factory=dict, description="fields merged into the request body as given (a provider feature the "
                                          "workbench does not model)")
    prefix_cache_min_tokens: int | None = Field(
        None, ge=1, description="the shortest prefix the API caches, over the documented value (caching.py)")


class ThinkingOptions(ProviderOptions):
    """Options of an API with a thinking budget (Anthropic, Gemini)."""

    thinking_budget: int | None = Field(
        None, ge=-1, description="the older spelling of reasoning.budget_tokens (Gemini: 0 off, -1 dynamic)")


def options_error(kind: str, options_cls: type[ProviderOptions], exc: ValidationError) -> str:
    """The first problem with a contender's options as one line: `options.<field>: <reason>`,
    an unknown field listing the valid ones for api `kind`."""
    err = exc.errors()[0]
    where = ".".join(str(p) for p in ("options", *err["loc"]))
    if err["type"] == "extra_forbidden":
        return f"{where}: unknown option for api {kind!r}; valid: {', '.join(sorted(options_cls.model_fields))}"
    return f"{where}: {str(err['msg']).removeprefix('Value error, ')}"


OptionsT = TypeVar("OptionsT", bound=ProviderOptions)


def options_as(contender: WireContender, cls: type[OptionsT]) -> OptionsT:
    """The contender's typed options as its provider's own `Options` class `cls`."""
    opts = contender.provider_options
    if not isinstance(opts, cls):
        raise TypeError(f"contender {contender.name}: options are {type(opts).__name__}, not {cls.__name__}")
    return opts
