"""Wire formats, one module each, registered by api kind (see `base.register`).

Importing this package registers the package's own providers; those other packages declare under
the `llm_workbench.providers` entry point group register on the first lookup, after them (one
registering a kind of the same name replaces it). `get_provider(kind)` finds one and lists the
valid kinds when the name is unknown.
"""

from workbench.providers import anthropic as _anthropic  # noqa: F401  (registers)
from workbench.providers import gemini as _gemini  # noqa: F401  (registers)
from workbench.providers import generic as _generic  # noqa: F401  (registers)
from workbench.providers import openai as _openai  # noqa: F401  (registers)
from workbench.providers import openai_responses as _openai_responses  # noqa: F401  (registers)

# The package's public names are base.py's, re-exported: this is the import users write.
from workbench.providers.base import (
    ENTRY_POINT_GROUP,
    Completion,
    HttpRequest,
    Provider,
    SdkRetry,
    StreamParser,
    ToolSpec,
    api_kinds,
    get_provider,
    load_entry_points,
    provider_for,
    register,
)
from workbench.providers.contender import ProviderOptions, ThinkingOptions, WireContender, options_error

__all__ = [
    "ENTRY_POINT_GROUP",
    "Completion",
    "HttpRequest",
    "Provider",
    "ProviderOptions",
    "SdkRetry",
    "StreamParser",
    "ThinkingOptions",
    "ToolSpec",
    "WireContender",
    "api_kinds",
    "get_provider",
    "load_entry_points",
    "options_error",
    "provider_for",
    "register",
]
