"""The report: what a run folder's summary shows, and how it reaches a reader.

`summary` builds the decision matrix and the report's parts from a run's records; the report's
page is made through `templates/`; `check` opens the page in a real browser and says what a
reader would trip over. The summary notebook calls `run_summary`; `workbench report` re-renders.
"""

from __future__ import annotations

from workbench.report.summary import Summary, build_summary, run_summary

__all__ = ["Summary", "build_summary", "run_summary"]
