"""Exceptions the workbench raises for bad input, each with a message a user can act on.

Failed *requests* are never exceptions: they become records (see `workbench.types.ErrorInfo`).
These are for mistakes in what the user asked for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

T = TypeVar("T")

__all__ = ["ConfigError", "ServerStartError", "UnknownNameError", "WorkbenchError", "lookup"]


class WorkbenchError(Exception):
    """Base for every error the workbench raises on purpose."""


class ConfigError(WorkbenchError):
    """A config file is invalid: says which file, which field and why."""

    def __init__(self, path: str, field: str | None, reason: str) -> None:
        self.path = path
        self.field = field
        self.reason = reason
        where = f"{path}: {field}" if field else path
        super().__init__(f"{where}: {reason}")


class UnknownNameError(WorkbenchError, KeyError):
    """A name (contender, experiment, api kind, model) that does not exist; lists valid ones."""

    def __init__(self, kind: str, name: str, valid: Iterable[str]) -> None:
        self.kind = kind
        self.name = name
        self.valid = sorted(valid)
        super().__init__(f"unknown {kind} {name!r}; valid: {', '.join(self.valid) or '(none)'}")

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


def lookup(kind: str, name: str, table: Mapping[str, T]) -> T:
    """`table[name]`, or UnknownNameError listing the valid names: every registry's lookup."""
    try:
        return table[name]
    except KeyError:
        raise UnknownNameError(kind, name, table) from None


class ServerStartError(WorkbenchError):
    """A local model server did not come up; carries the tail of its log."""
