"""llm-workbench: measure LLM contenders on your own workloads and decide with the numbers.

The public API is re-exported here; notebooks import `workbench as wb`.
"""

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
