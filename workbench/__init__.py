"""llm-workbench: measure LLM contenders on your own workloads and decide with the numbers.

The public API is re-exported here; notebooks import `workbench as wb`. Each name is imported on
first use (PEP 562 `__getattr__`), so importing a part of the package costs only that part: `make
setup` builds llama-server (`python -m workbench.serve.llama_build`) beside `pip install`,
before any dependency is installed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workbench.analysis import plots
    from workbench.config import Contender, ContenderSet, load_contenders
    from workbench.errors import ConfigError, UnknownNameError, WorkbenchError
    from workbench.results import (
        RecordWriter,
        RunDir,
        error_table,
        load_records,
        load_runs,
        reasoning_tokens,
        token_sources,
    )
    from workbench.session import Session, open_session
    from workbench.types import ErrorClass, Prompt, Record, Usage

__all__ = [
    "ConfigError",
    "Contender",
    "ContenderSet",
    "ErrorClass",
    "Prompt",
    "Record",
    "RecordWriter",
    "RunDir",
    "Session",
    "UnknownNameError",
    "Usage",
    "WorkbenchError",
    "error_table",
    "load_contenders",
    "load_records",
    "load_runs",
    "open_session",
    "plots",
    "reasoning_tokens",
    "token_sources",
]

__version__ = "0.1.0"

#: Where each public name lives (a module's own name: the module itself).
_HOMES = {
    "plots": "workbench.analysis.plots",
    **dict.fromkeys(("Contender", "ContenderSet", "load_contenders"), "workbench.config"),
    **dict.fromkeys(("ConfigError", "UnknownNameError", "WorkbenchError"), "workbench.errors"),
    **dict.fromkeys(("RecordWriter", "RunDir", "error_table", "load_records", "load_runs", "reasoning_tokens",
                     "token_sources"), "workbench.results"),
    **dict.fromkeys(("Session", "open_session"), "workbench.session"),
    **dict.fromkeys(("ErrorClass", "Prompt", "Record", "Usage"), "workbench.types"),
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'workbench' has no attribute {name!r}")
    module = importlib.import_module(home)
    value = module if home.endswith("." + name) else getattr(module, name)
    globals()[name] = value  # once: later lookups do not come here
    return value
