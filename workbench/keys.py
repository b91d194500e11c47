"""API keys: read from the environment only, and kept out of everything the workbench writes.

The one home of the rules (config, session, results and the probe used to carry a copy each):

- a contender names the environment variable that holds its key (`check_env_name` refuses a
  value that looks like a pasted key); headers never carry one (`SECRET_HEADERS`);
- parameters are never keys (`check_parameters`): papermill writes parameters into the executed
  notebook, so a key passed as one would be saved in plain text;
- a key is read with `read_key(name)` only when a request is built, and the process then
  remembers it: with the values of every variable a loaded contenders file names (`watch`),
  those are what `guard` refuses to write into a record, a manifest or a log;
- a server that echoes the key it was sent has it cut from the record (`redact`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

from workbench.errors import WorkbenchError

__all__ = [
    "SECRET_HEADERS",
    "check_env_name",
    "check_parameters",
    "guard",
    "read_key",
    "redact",
    "watch",
    "watched_values",
]

#: Headers that carry a credential; a contender's `headers:` may not set them.
SECRET_HEADERS = frozenset({"authorization", "x-api-key", "x-goog-api-key", "api-key"})

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Shapes of real keys; a value like this where a variable name belongs means a key was pasted.
_KEY_LIKE = re.compile(r"^(sk-|sk_|AIza|xai-|gsk_|hf_)|^[A-Za-z0-9_\-]{40,}$")
# Parameter names that say "credential": api_key, openai_token, secret, password... but not
# max_tokens, tokens_per_doc or a *_env variable *name* (which is what config should hold).
_SECRET_NAME = re.compile(r"(api[_-]?key|secret|password|passwd|bearer|credential|(^|_)(token|key)$)", re.IGNORECASE)
_SECRET_VALUE = re.compile(r"^(sk-|sk_|AIza|xai-|gsk_)[A-Za-z0-9_\-]{8,}")
# Shorter values are not guarded: they would match ordinary text.
_MIN_GUARDED = 8

_watched_names: set[str] = set()
_read_values: set[str] = set()


def check_env_name(value: str) -> str:
    """`value` must be an environment variable's NAME, not a key (raises ValueError)."""
    if _KEY_LIKE.search(value) and not value.isupper():
        raise ValueError("this looks like a key; put the variable's NAME here, the key in the environment")
    if not _ENV_NAME.match(value):
        raise ValueError(f"{value!r} is not an environment variable name")
    return value


def check_parameters(params: Mapping[str, Any]) -> None:
    """Refuse a parameter whose name or value looks like a secret (raises WorkbenchError)."""
    for name, value in params.items():
        if _SECRET_NAME.search(name) and not name.endswith("_env"):
            raise WorkbenchError(
                f"parameter {name!r} looks like a secret; keys are never parameters — put the key in "
                "the environment variable named by the contender's api_key_env"
            )
        if isinstance(value, str) and _SECRET_VALUE.match(value):
            raise WorkbenchError(
                f"parameter {name!r} holds what looks like an API key; keys are never parameters — "
                "set the environment variable named by the contender's api_key_env"
            )


def watch(names: Iterable[str]) -> None:
    """Guard the values of these variables from now on (config calls it for every `api_key_env`)."""
    _watched_names.update(names)


def read_key(name: str) -> str | None:
    """The key in variable `name`, or None when unset or empty; remembered for `guard`."""
    value = os.environ.get(name) or None
    if value is not None:
        _watched_names.add(name)
        if len(value) >= _MIN_GUARDED:
            _read_values.add(value)
    return value


def watched_values() -> list[str]:
    """Every key this process must not write: those it read, and those of the watched variables."""
    values = set(_read_values)
    for name in _watched_names:
        value = os.environ.get(name)
        if value and len(value) >= _MIN_GUARDED:
            values.add(value)
    return sorted(values)


def guard(text: str, where: str, values: Iterable[str] | None = None) -> None:
    """Raise instead of writing `text` to `where` when it holds a key (never names the key)."""
    for value in watched_values() if values is None else values:
        if value and value in text:
            raise WorkbenchError(f"refusing to write an API key into {where}")


def redact(text: str, key: str | None) -> str:
    """`text` with every occurrence of `key` replaced by `[REDACTED]`."""
    if not key or len(key) < 4 or key not in text:
        return text
    return text.replace(key, "[REDACTED]")
