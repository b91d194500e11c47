"""Wire formats, one module each, registered by api kind (see `base.register`).

Importing this package registers every provider; `get_provider(kind)` finds one and lists
the valid kinds when the name is unknown.
"""

from workbench.providers import anthropic as _anthropic  # noqa: F401  (registers)
from workbench.providers import gemini as _gemini  # noqa: F401  (registers)
from workbench.providers import generic as _generic  # noqa: F401  (registers)
from workbench.providers import openai as _openai  # noqa: F401  (registers)
from workbench.providers import openai_responses as _openai_responses  # noqa: F401  (registers)

# The package's public names are base.py's, re-exported: this is the import users write.
from workbench.providers.base import (
    Completion,
    HttpRequest,
    Provider,
    StreamParser,
    api_kinds,
    get_provider,
    provider_for,
    register,
)

__all__ = [
    "Completion",
    "HttpRequest",
    "Provider",
    "StreamParser",
    "api_kinds",
    "get_provider",
    "provider_for",
    "register",
]
