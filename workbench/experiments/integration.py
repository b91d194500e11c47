"""Integration-effort facts for every contender of a session, saved as `capabilities.json`.

The facts come from `workbench.measure.capabilities.probe_capabilities` (observed where the API
allows). For embedded models the served context window is known exactly — the workbench
starts llama.cpp with it — so it is filled in as declared when the listing reports none.
"""

from __future__ import annotations

import json
from typing import Any

from workbench.aio import run_sync
from workbench.embedded import LOCAL_MODELS
from workbench.measure.capabilities import probe_capabilities
from workbench.measure.probe import make_client
from workbench.session import Session

__all__ = ["CAPABILITIES_FILE", "capabilities_table", "collect_capabilities"]

CAPABILITIES_FILE = "capabilities.json"


async def _collect(session: Session) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    async with make_client(4) as client:
        for c in session.contenders:
            facts = await probe_capabilities(client, session.target(c))
            if c.local is not None and facts.get("context_window", {}).get("value") is None:
                facts["context_window"] = {"value": LOCAL_MODELS[c.local].n_ctx, "source": "declared",
                                           "detail": "n_ctx the workbench serves this model with"}
            out[c.name] = facts
    return out


def collect_capabilities(session: Session) -> dict[str, dict[str, Any]]:
    """Probe each contender (a few tiny requests each) and write `<run>/capabilities.json`,
    merged with facts already there from other notebooks."""
    facts = run_sync(_collect(session))
    path = session.run.path / CAPABILITIES_FILE
    existing = json.loads(path.read_text()) if path.exists() else {}
    existing.update(facts)
    path.write_text(json.dumps(existing, indent=2, default=str) + "\n")
    return facts


def capabilities_table(facts: dict[str, dict[str, Any]]) -> Any:
    """Facts × contenders, each cell `value (source)`."""
    import pandas as pd

    names = sorted({f for per in facts.values() for f in per})
    return pd.DataFrame(
        {c: [f"{per[f]['value']} ({per[f]['source']})" if f in per else "" for f in names]
         for c, per in facts.items()},
        index=names,
    )
