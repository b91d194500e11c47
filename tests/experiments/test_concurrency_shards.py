"""The concurrency sweep split over two shard processes gives the tables one shard gives.

Against the mock server (TTFT 20 ms, E2E 50 ms): the same request ids, the same per-level
table (rows, columns, n), the same files; the loadgen rows say how many shards ran each level.
And asking for backend=ray without Ray is one line, before any server starts.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.conftest import CANARY, KEY_ENV
from tests.reliability.conftest import fault_contender
from workbench.errors import ConfigError, WorkbenchError
from workbench.experiments import concurrency
from workbench.measure.load.pool import RAY_MISSING
from workbench.results import RunDir, load_records
from workbench.serve.mock import MockScript, MockServer
from workbench.session import Session, open_session
from workbench.types import Prompt

pytestmark = pytest.mark.timeout(120)


@pytest.mark.slow  # ~45 s on 2 cores
def test_two_shards_make_the_same_tables_as_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(KEY_ENV, CANARY)
    monkeypatch.setattr("os.cpu_count", lambda: 2)  # as on the 2-core machine: shards beside the server
    prompts = [Prompt(f"p{i}", f"prompt {i}") for i in range(5)]
    out = {}
    with MockServer(MockScript.timed(ttft_ms=20, itl_ms=10, n_chunks=4)) as srv:
        c = fault_contender(srv, 5.0)
        for shards in (1, 2):
            run = RunDir.create(tmp_path / f"s{shards}")
            session = Session(run=run, experiment="concurrency", contenders=[c], skipped=[],
                              base_urls={c.name: srv.base_url}, shards=shards,
                              backend="auto" if shards == 1 else "processes")
            loadgen = concurrency.run_sweep(session, prompts, levels=(1, 2, 4), requests_per_level=8, ramp_s=0.05)
            report = concurrency.analyse(session, loadgen, slo_e2e_s=1.0, target_qps=100, machine_hour_usd=0.1)
            out[shards] = (run.path, loadgen, report, load_records(run.path, "concurrency"))
    (p1, lg1, rep1, df1), (p2, lg2, rep2, df2) = out[1], out[2]
    sweep1, sweep2 = df1[df1["phase"] == "sweep"], df2[df2["phase"] == "sweep"]
    assert sorted(sweep1["request_id"]) == sorted(sweep2["request_id"])  # the same ids, each once
    assert (sweep2["status"] == "ok").all() and set(sweep2["shard"]) == {0, 1}
    assert len(df2[df2["phase"] == "warmup"]) == 2  # one warm-up request per shard
    assert [r["shards"] for r in lg1] == [1, 1, 1] and [r["shards"] for r in lg2] == [2, 2, 2]
    assert list(rep1.levels.columns) == list(rep2.levels.columns)
    assert list(rep1.levels["level"]) == list(rep2.levels["level"]) == [1, 2, 4]
    assert list(rep1.levels["sent"]) == list(rep2.levels["sent"]) == [8, 8, 8]
    assert list(rep1.knee.columns) == list(rep2.knee.columns)
    for name in ("concurrency_levels.csv", "concurrency_knee_usl.csv", "concurrency_sweep.png",
                 "concurrency_in_flight.csv", "concurrency_loadgen.json"):
        assert (p1 / name).exists() and (p2 / name).exists(), name
    # two shard processes and a loopback server on 2 cores compete: said once, and only for the sharded sweep
    said = [line for line in capsys.readouterr().out.splitlines() if "share this machine's 2 cores" in line]
    assert len(said) == 1 and said[0].startswith("load generator: 2 shard processes and the server at 127.0.0.1")
    assert all(not r["notes"] for r in lg1)


def test_backend_ray_without_ray_is_one_line_before_anything_starts(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(WorkbenchError) as err:
        open_session("concurrency", out_dir=str(tmp_path / "run"), shards=2, backend="ray")
    assert str(err.value) == RAY_MISSING and "\n" not in RAY_MISSING
    assert "pip install 'llm-workbench[ray]'" in RAY_MISSING
    assert not (tmp_path / "run").exists()  # nothing was started or written
    with pytest.raises(ConfigError, match="unknown load backend 'mpi'"):
        open_session("concurrency", out_dir=str(tmp_path / "run"), backend="mpi")
