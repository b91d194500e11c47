"""Crash safety: a run killed with SIGKILL and resumed has every request exactly once."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from workbench.config import load_contenders
from workbench.results import RecordWriter, RunDir, read_jsonl_tolerant, read_manifest
from workbench.session import Session

N_REQUESTS, WARMUP = 10, 1


def test_writer_cuts_a_torn_tail_before_appending(tmp_path: Path) -> None:
    p = tmp_path / "e.jsonl"
    p.write_text('{"request_id": "a"}\n{"request_id": "b", "stat')  # killed mid-line
    with RecordWriter(p) as w:
        w.write({"request_id": "b"})
    assert [r["request_id"] for r in read_jsonl_tolerant(p)] == ["a", "b"]


def test_completed_ids_skip_torn_lines_and_cancelled_records(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path)
    run.jsonl("latency").write_text(
        '{"request_id": "x:cold:0", "error_class": null}\n'
        '{"request_id": "x:warm:0", "error_class": "timeout"}\n'
        '{"request_id": "x:warm:1", "error_class": "cancelled"}\n'
        '{"request_id": "x:warm:2", "err')
    s = Session(run=run, experiment="latency", contenders=[], skipped=[], base_urls={})
    assert s.completed_ids() == {"x:cold:0", "x:warm:0"}
    assert s.completed_ids("other") == set()


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "workbench.cli", *args]


@pytest.mark.slow
@pytest.mark.local_models
def test_kill_9_then_resume_loses_and_doubles_nothing(local_endpoints: dict[str, str], tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    jsonl = run_dir / "latency.jsonl"
    params = [f"--param=n_requests={N_REQUESTS}", f"--param=warmup={WARMUP}", "--param=max_tokens=8",
              "--param=probe_capabilities=false"]
    proc = subprocess.Popen(_cli("run", "--experiments", "latency", "--out", str(run_dir), *params),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if jsonl.exists() and len(jsonl.read_text().splitlines()) >= 6:
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the run finished before it could be killed"
        assert jsonl.exists(), "no records within 180 s"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    # The notebook kernel runs in its own session; ipykernel's parent poller ends it within ~1 s
    # of the runner's death. Wait until the file stops growing before resuming.
    size, stable_since = -1, time.monotonic()
    while time.monotonic() - stable_since < 2.5 and time.monotonic() < deadline + 30:
        now = jsonl.stat().st_size
        if now != size:
            size, stable_since = now, time.monotonic()
        time.sleep(0.25)
    before = read_jsonl_tolerant(jsonl)
    cold_before = {r["request_id"]: r["t_start_unix"] for r in before if r.get("phase") == "cold"}
    assert 0 < len(before) < 2 * (1 + WARMUP + N_REQUESTS)

    done = subprocess.run(_cli("run", "--resume", str(run_dir)), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    rows = read_jsonl_tolerant(jsonl)
    names = [c.name for c in load_contenders().select("enabled")[0]]
    expected = {f"{n}:{phase}:{i}" for n in names
                for phase, count in (("cold", 1), ("warmup", WARMUP), ("warm", N_REQUESTS)) for i in range(count)}
    counts = collections.Counter(r["request_id"] for r in rows)
    duplicates = {k: v for k, v in counts.items() if v > 1}
    lost = expected - set(counts)
    print(f"\nresume: before kill {len(before)} records, after resume {len(rows)}; expected {len(expected)}; "
          f"duplicates {len(duplicates)}; lost {len(lost)}")
    assert not duplicates and not lost and set(counts) == expected
    # The cold requests recorded before the kill are the ones kept (not re-sent).
    for rid, t in cold_before.items():
        assert [r["t_start_unix"] for r in rows if r["request_id"] == rid] == [t]
    assert (run_dir / "latency.ipynb").exists() and (run_dir / "latency_summary.csv").exists()
    nb = json.loads((run_dir / "latency.ipynb").read_text())
    assert not any(o.get("output_type") == "error" for c in nb["cells"] for o in c.get("outputs", []))
    runner = read_manifest(run_dir)["runner"]
    assert runner["experiments"] == ["latency"] and len(runner["resumed_utc"]) == 1


def test_resume_refuses_a_folder_that_is_not_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from workbench.cli import main

    assert main(["run", "--resume", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot resume") and err.count("\n") == 1
    assert main(["run", "--resume", str(tmp_path), "--experiments", "latency"]) == 2
    assert "drop --experiments" in capsys.readouterr().err


def _notebook(path: Path, body: str, *, resumable: bool) -> Path:
    """A two-cell experiment notebook: its parameters, then `body` (which sees them)."""
    import nbformat

    params = 'out_dir = ""\n' + ("resume = False\n" if resumable else "")
    cell = nbformat.v4.new_code_cell(params)
    cell.metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(cells=[cell, nbformat.v4.new_code_cell(body)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))
    return path


@pytest.mark.slow  # two notebook runs: ~10 s on 2 cores
def test_resume_keeps_completed_experiments_and_sets_aside_what_cannot_resume_by_id(tmp_path: Path) -> None:
    """Cut off in its third experiment, a run resumed: the completed two are kept untouched; the
    cut one, which cannot skip by request id (a load level is measured whole), gets its partial
    records set aside (kept, not loaded) and runs again — no record counted twice; one that
    declares `resume` is handed it and keeps its file."""
    from workbench.experiments import Experiment
    from workbench.results import load_records
    from workbench.runner import ExperimentFailed, run_experiments

    flag = tmp_path / "second-try"
    append = ('import json, os\n'
              'with open(os.path.join(out_dir, "{name}.jsonl"), "a") as fh:\n'
              '    rec = {{"request_id": "{name}:" + str(os.getpid()), "experiment": "{name}"}}\n'
              '    fh.write(json.dumps(rec) + "\\n")\n')
    exps = []
    for name, resumable, fail_first in (("alpha", False, False), ("beta", True, False), ("gamma", False, True),
                                        ("delta", True, False)):
        body = append.format(name=name)
        if resumable:
            body += f'with open(os.path.join(out_dir, "{name}.resume"), "a") as fh:\n    fh.write(str(resume))\n'
        if fail_first:
            body += f'assert os.path.exists({str(flag)!r}), "cut off"\n'
        nb = _notebook(tmp_path / f"{name}.ipynb", body, resumable=resumable)
        exps.append(Experiment(name, str(nb), f"test experiment {name}"))
    run_dir = tmp_path / "run"
    with pytest.raises(ExperimentFailed, match="gamma"):
        run_experiments(exps, out_dir=run_dir, log=lambda _: None)
    assert not (run_dir / "delta.jsonl").exists()
    said: list[str] = []
    flag.touch()
    run_experiments(exps, out_dir=run_dir, resume=True, log=said.append)
    lines = {name: (run_dir / f"{name}.jsonl").read_text().splitlines() for name in ("alpha", "beta", "gamma", "delta")}
    assert {name: len(x) for name, x in lines.items()} == {"alpha": 1, "beta": 1, "gamma": 1, "delta": 1}
    assert len((run_dir / "gamma.jsonl.interrupted-1").read_text().splitlines()) == 1  # kept, not loaded
    assert (run_dir / "beta.resume").read_text() == "False"  # completed first time: not run again
    assert (run_dir / "delta.resume").read_text() == "True"  # not started before: run, told it resumes
    assert len(load_records(run_dir)) == 4
    assert any("alpha: completed before the interruption, kept" in s for s in said)
    assert any("gamma cannot resume by request id" in s and "gamma.jsonl.interrupted-1" in s for s in said)
    experiments = read_manifest(run_dir)["experiments"]
    assert all(experiments[name].get("completed_utc") for name in ("alpha", "beta", "gamma", "delta"))


@pytest.mark.slow  # a notebook run: ~5 s on 2 cores
def test_an_experiment_run_again_is_no_longer_completed_until_it_finishes(tmp_path: Path) -> None:
    """A finished experiment run again into the same folder and cut off is resumed, not kept."""
    from workbench.experiments import Experiment
    from workbench.runner import ExperimentFailed, run_experiments

    flag = tmp_path / "fail-now"
    nb = _notebook(tmp_path / "alpha.ipynb", f'import os\nassert not os.path.exists({str(flag)!r}), "cut off"\n',
                   resumable=False)
    exp = [Experiment("alpha", str(nb), "test experiment alpha")]
    run_dir = tmp_path / "run"
    run_experiments(exp, out_dir=run_dir, log=lambda _: None)
    assert read_manifest(run_dir)["experiments"]["alpha"]["completed_utc"]
    flag.touch()
    with pytest.raises(ExperimentFailed):
        run_experiments(exp, out_dir=run_dir, log=lambda _: None)
    assert read_manifest(run_dir)["experiments"]["alpha"]["completed_utc"] is None
