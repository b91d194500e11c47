"""What a notebook opens first: the run folder, the chosen contenders, and endpoints for them.

`open_session()` resolves the contender selection (printing a one-line note for each skipped
one), preflights the hosted ones (`workbench.measure.preflight`: a model that is not found,
retired or not accessible with this key is skipped with one line naming the contender, the model
and the provider's message — or, under `workbench run`, the runner's preflight recorded in the
manifest is used), starts the embedded model servers the selection needs — or reuses servers named in
`local_endpoints` / `$WORKBENCH_LOCAL_ENDPOINTS`, e.g. those of `workbench serve` — and records
the experiment's parameters, contenders (no secrets) and server versions in the manifest.
Closing the session stops the servers it started; so does the end of the kernel.
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from workbench import keys
from workbench.config import Contender, Skipped, load_contenders
from workbench.errors import ConfigError, WorkbenchError
from workbench.measure.budget import Budget, budget_for
from workbench.measure.load.pool import RAY_MISSING, InlineRunner, ShardPool, check_load_options, load_runner
from workbench.measure.machine import listening_pid
from workbench.measure.preflight import Preflight, run_preflight
from workbench.measure.target import Target, check_url
from workbench.providers.base import request_summary
from workbench.results import (
    RESENT_ON_RESUME,
    RecordWriter,
    RunDir,
    read_jsonl_tolerant,
    read_manifest,
    update_manifest,
)
from workbench.serve.llama import REQUEST_HEADERS, LocalServer, start_server

__all__ = ["ENDPOINTS_ENV", "Session", "open_session", "preflight_hosted"]

ENDPOINTS_ENV = "WORKBENCH_LOCAL_ENDPOINTS"


@dataclass
class Session:
    """Everything an experiment needs to send requests and keep its records."""

    run: RunDir
    experiment: str
    contenders: list[Contender]
    skipped: list[Skipped]
    base_urls: dict[str, str]
    servers: dict[str, LocalServer] = field(default_factory=dict)
    reused_servers: dict[str, str] = field(default_factory=dict)
    budget: Budget | None = None  # spend cap (open_session(budget_usd=...)); None = none
    resume: bool = False  # skip request ids that already have a record (workbench run --resume)
    shards: int = 1  # load runs split over this many shards (0: one per CPU); see measure/load/pool.py
    backend: str = "auto"  # where the shards run: auto, processes, ray (RAY_ADDRESS names the cluster)

    @property
    def run_id(self) -> str:
        return self.run.path.name

    def own_pids(self) -> list[int]:
        """Processes besides this one's tree whose CPU is the session's own, for
        `measure.machine.CpuMeter`: the reused embedded servers (found by their listening port)."""
        ports = (urlsplit(u).port for u in self.reused_servers.values())
        return [pid for port in ports if port and (pid := listening_pid(port)) is not None]

    def base_url(self, contender: Contender) -> str:
        url = self.base_urls[contender.name]
        check_url(contender, url)
        return url

    def target(self, contender: Contender, **fields: Any) -> Target:
        """The one object a request of `contender` in this experiment goes out with (see
        `workbench.measure.target`): its endpoint, this run and experiment, and the session's
        budget; `fields` override (e.g. `stream=False`, `keep_itl=False`, or
        the `base_url` of a proxy in front of the contender — checked like any other)."""
        base: dict[str, Any] = {"base_url": self.base_urls[contender.name], "run_id": self.run_id,
                                "experiment": self.experiment, "budget": self.budget}
        if contender.is_local:  # the embedded server's own rule (see serve.llama.REQUEST_HEADERS)
            base["headers"] = REQUEST_HEADERS
        return Target(contender, **{**base, **fields})

    def load_runner(self) -> InlineRunner | ShardPool:
        """What runs this experiment's load: this process (one shard), or a pool of shard processes
        or Ray actors (`async with session.load_runner() as runner: await runner.closed_loop(...)`)."""
        return load_runner(self.shards, self.backend)

    def completed_records(self, experiment: str | None = None) -> dict[str, dict[str, Any]]:
        """Request id → record, for the requests that already have a record in the experiment's
        JSONL (empty if none).

        What a resumed run skips. A torn last line (the writer was killed mid-line) does not
        count; neither do `cancelled` or `expired` records (refused by a budget, stopped by the
        workbench, or a batch item whose batch ended before it ran: never answered, so a resume
        sends them)."""
        path = self.run.jsonl(experiment or self.experiment)
        if not path.exists():
            return {}
        return {str(r["request_id"]): r for r in read_jsonl_tolerant(path)
                if r.get("request_id") is not None and r.get("error_class") not in RESENT_ON_RESUME}

    def completed_ids(self, experiment: str | None = None) -> set[str]:
        """The request ids of `completed_records`."""
        return set(self.completed_records(experiment))

    def writer(self, name: str | None = None) -> RecordWriter:
        return self.run.writer(name or self.experiment)

    def server_for(self, contender: Contender) -> LocalServer | None:
        return self.servers.get(contender.local) if contender.local else None

    def close(self) -> None:
        for s in self.servers.values():
            s.stop()
        self.servers.clear()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _parse_endpoints(text: str) -> dict[str, str]:
    if not text:
        return {}
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        raise ConfigError("local_endpoints", None, "must be a JSON object {model: base_url}") from None
    if not isinstance(obj, dict) or not all(isinstance(v, str) for v in obj.values()):
        raise ConfigError("local_endpoints", None, "must be a JSON object {model: base_url}")
    return {str(k): v for k, v in obj.items()}


def preflight_hosted(contenders: list[Contender], run_dir: Path | None = None) -> list[Preflight]:
    """The preflight of the hosted contenders: the run's recorded one (`workbench run` checks once,
    before any notebook) where it covers them all, else a fresh check."""
    hosted = [c for c in contenders if not c.is_local]
    if not hosted:
        return []
    recorded = read_manifest(run_dir).get("preflight") if run_dir is not None else None
    if isinstance(recorded, dict) and all(c.name in recorded for c in hosted):
        return [Preflight.from_dict(recorded[c.name]) for c in hosted]
    return run_preflight(hosted)


def open_session(
    experiment: str,
    *,
    out_dir: str | Path = "",
    contenders: str = "enabled",
    contenders_file: str | Path = "",
    local_endpoints: str = "",
    parameters: Mapping[str, Any] | None = None,
    sampling: Mapping[str, Any] | None = None,
    budget_usd: float | None = None,
    resume: bool = False,
    shards: int = 1,
    backend: str = "auto",
    slots: int | None = None,
    n_ctx: int | None = None,
) -> Session:
    """Open a run folder and make every selected contender reachable.

    `sampling` overrides (e.g. max_tokens) are applied to every contender — the top of the
    precedence chain. Prints one line per skipped contender. `budget_usd` (None or 0: no cap)
    gives the session a `Budget` over the contenders' prices; `resume=True` marks the session
    as resuming an interrupted run (experiments skip `completed_ids()`). `shards` and `backend` say
    where load runs go (`workbench.measure.load.pool`; default: this process). `slots` and `n_ctx`
    size the embedded servers this session starts (default: `WORKBENCH_SLOTS` slots of the
    model's `n_ctx`; the context experiment serves long documents from one large slot); the
    manifest records them with the server."""
    check_load_options(shards, backend)
    if backend == "ray" and importlib.util.find_spec("ray") is None:  # say so before any server starts
        raise WorkbenchError(RAY_MISSING)
    params = dict(parameters or {})
    keys.check_parameters(params)
    chosen, skipped = _selected_contenders(contenders, contenders_file, sampling)
    run = RunDir.open_or_create(out_dir or None)
    checked = preflight_hosted(chosen, run.path)
    chosen = _drop_unavailable(chosen, skipped, checked)
    reuse = _parse_endpoints(local_endpoints or os.environ.get(ENDPOINTS_ENV, ""))
    session = Session(run=run, experiment=experiment, contenders=chosen, skipped=skipped, base_urls={},
                      budget=budget_for(budget_usd, chosen, run.path), resume=resume, shards=shards, backend=backend)
    atexit.register(session.close)
    try:
        _reach_contenders(session, reuse, slots=slots, n_ctx=n_ctx)
    except BaseException:
        session.close()
        raise
    _record_session(session, params, checked)
    return session


def _selected_contenders(selection: str, contenders_file: str | Path,
                         sampling: Mapping[str, Any] | None) -> tuple[list[Contender], list[Skipped]]:
    """The contenders `selection` picks from the contenders file (with the `sampling` overrides)
    and those it skips, each skip printed; raises when none is left, naming the valid ones."""
    cset = load_contenders(contenders_file or None)
    chosen, skipped = cset.select(selection)
    for s in skipped:
        print(s.reason)
    if sampling:
        chosen = [c.with_sampling(source="sampling parameters", **sampling) for c in chosen]
    if not chosen:
        raise WorkbenchError(
            f"no contender to run (selection {selection!r}); valid: {', '.join(cset.names())}"
        )
    return chosen, skipped


def _drop_unavailable(chosen: list[Contender], skipped: list[Skipped], checked: list[Preflight]) -> list[Contender]:
    """`chosen` without the contenders preflight found unavailable (each added to `skipped` and
    printed, as are preflight's warnings); raises when none is left."""
    unavailable = {p.contender: p for p in checked if p.ok is False}
    for p in unavailable.values():
        print(p.skip_line)
        skipped.append(Skipped(p.contender, p.skip_line))
    for p in checked:
        if p.ok and p.warning:
            print(p.warning_line)
    chosen = [c for c in chosen if c.name not in unavailable]
    if not chosen:
        raise WorkbenchError(f"no contender left to run: {'; '.join(p.skip_line for p in unavailable.values())}")
    return chosen


def _reach_contenders(session: Session, reuse: Mapping[str, str], *, slots: int | None, n_ctx: int | None) -> None:
    """Give every contender of `session` a base URL: a hosted one its own, a local one a server
    named in `reuse` (checked) or one started here (one per local model, shared)."""
    for c in session.contenders:
        if c.local is None:
            assert c.base_url is not None
            session.base_urls[c.name] = c.base_url
        elif c.local in reuse:
            check_url(c, reuse[c.local])
            session.base_urls[c.name] = reuse[c.local]
            session.reused_servers[c.local] = reuse[c.local]
        else:
            if c.local not in session.servers:
                session.servers[c.local] = start_server(c.local, session.run.logs, slots=slots, n_ctx=n_ctx)
            session.base_urls[c.name] = session.servers[c.local].base_url


def _record_session(session: Session, params: Mapping[str, Any], checked: list[Preflight]) -> None:
    """The experiment's entry in the manifest: its parameters, contenders, what each request
    sends, the skips, preflight and the servers."""
    chosen = session.contenders
    recorded: dict[str, Any] = {"parameters": params} if params else {}
    update_manifest(
        session.run.path,
        experiments={
            session.experiment: {
                **recorded,
                "contenders": [c.public_dict() for c in chosen],
                "requests": {c.name: request_summary(c) for c in chosen},  # what was sent, beside what was asked
                "skipped": [s.reason for s in session.skipped],
                "preflight": {p.contender: p.to_dict() for p in checked},
                "servers": {k: v.info() for k, v in session.servers.items()}
                | {k: {"base_url": v, "reused": True} for k, v in session.reused_servers.items()},
            }
        },
    )
