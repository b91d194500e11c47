"""Run folders: records appended and flushed one by one, torn lines survived, no secrets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workbench import keys
from workbench.config import load_contenders
from workbench.errors import WorkbenchError
from workbench.results import RecordWriter, RunDir, load_records, load_runs, read_manifest, update_manifest
from workbench.types import RECORD_CORE_FIELDS, Record


def rec(i: int, run: str = "r1") -> Record:
    return Record(run_id=run, experiment="latency", contender="c", model="m", request_id=str(i),
                  t_start_unix=1.0 + i, e2e_s=0.1 * i, extra={"phase": "warm"})


def test_each_record_is_on_disk_before_write_returns(tmp_path: Path) -> None:
    w = RecordWriter(tmp_path / "x.jsonl")
    w.write(rec(1))
    # Read through a separate handle while the writer is still open: already flushed.
    lines = (tmp_path / "x.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["request_id"] == "1"
    w.close()


def test_record_carries_every_core_field_in_order() -> None:
    d = rec(1).to_dict()
    assert list(d)[: len(RECORD_CORE_FIELDS)] == list(RECORD_CORE_FIELDS)
    assert d["phase"] == "warm"


def test_extra_cannot_overwrite_a_core_field() -> None:
    r = rec(1)
    r.extra["e2e_s"] = 5
    with pytest.raises(ValueError, match="overwrite"):
        r.to_dict()


def test_run_folder_manifest_and_loaders(tmp_path: Path) -> None:
    run = RunDir.create(root=tmp_path, run_id="run-a")
    m = read_manifest(run.path)
    assert m["run_id"] == "run-a" and "created_utc" in m and "machine" in m and "packages" in m
    with run.writer("latency") as w:
        for i in range(3):
            w.write(rec(i, "run-a"))
    update_manifest(run.path, experiments={"latency": {"parameters": {"n": 3}}})
    update_manifest(run.path, experiments={"other": {"parameters": {}}})
    assert set(read_manifest(run.path)["experiments"]) == {"latency", "other"}
    df = load_records(run.path, "latency")
    assert len(df) == 3 and set(RECORD_CORE_FIELDS) <= set(df.columns)
    run_b = RunDir.create(root=tmp_path, run_id="run-b")
    with run_b.writer("latency") as w:
        w.write(rec(9, "run-b"))
    both = load_runs([run.path, run_b.path], "latency")
    assert sorted(both["run_id"].unique()) == ["run-a", "run-b"]


def test_torn_last_line_is_skipped_with_a_warning(tmp_path: Path) -> None:
    p = tmp_path / "latency.jsonl"
    p.write_text(json.dumps(rec(1).to_dict()) + "\n" + '{"run_id": "r1", "exper')
    with pytest.warns(UserWarning, match="torn last line"):
        df = load_records(tmp_path, "latency")
    assert len(df) == 1


def test_writer_refuses_a_configured_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    canary = "sk-canary-0123456789abcdef"
    monkeypatch.setenv("OPENAI_API_KEY", canary)
    load_contenders()  # as every session does: the file names the variables to guard
    w = RecordWriter(tmp_path / "x.jsonl")
    r = rec(1)
    r.error_message = f"echoed {canary}"
    with pytest.raises(WorkbenchError, match="refusing to write an API key"):
        w.write(r)
    w.close()
    assert canary not in (tmp_path / "x.jsonl").read_text()


def test_writer_refuses_a_key_the_process_has_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    canary = "read-canary-0123456789abcdef"
    monkeypatch.setenv("WB_READ_ONLY_KEY", canary)
    assert keys.read_key("WB_READ_ONLY_KEY") == canary
    monkeypatch.delenv("WB_READ_ONLY_KEY")  # gone from the environment, still remembered
    with RecordWriter(tmp_path / "x.jsonl") as w:
        r = rec(1)
        r.output_text = f"the key is {canary}"
        with pytest.raises(WorkbenchError, match="refusing to write an API key"):
            w.write(r)
    assert canary not in (tmp_path / "x.jsonl").read_text()


def test_reasoning_tokens_split_thinking_from_answer() -> None:
    import pandas as pd

    from workbench.results import reasoning_tokens

    def rec(name: str, out: int | None, thought: int | None, source: str = "server", error: str | None = None) -> dict:
        r = Record(run_id="r", experiment="latency", contender=name, model="m", request_id=f"{name}{out}{error}",
                   t_start_unix=0.0, output_tokens=out, reasoning_tokens=thought, token_source=source,
                   visible_output_tokens=None if out is None else out - (thought or 0))
        if error:
            r.status, r.error_class = "error", error
        return r.to_dict()

    df = pd.DataFrame([rec("gpt", 75, 64), rec("gpt", 25, 15, "server+reasoning chars/4"),
                       rec("gpt", 400, 400, error="truncated"), rec("small", 12, None)])
    t = reasoning_tokens(df).set_index("contender")
    assert t.loc["gpt", "answered"] == 2 and t.loc["gpt", "reasoning tokens (mean)"] == 39.5
    assert t.loc["gpt", "share of output spent reasoning"] == "79%"  # 79 of 100 output tokens
    assert t.loc["gpt", "visible tokens (mean)"] == 10.5 and t.loc["gpt", "reasoning estimated"] == 1
    assert t.loc["gpt", "no visible answer (truncated)"] == 1
    assert t.loc["small", "reasoning tokens (mean)"] == "not reported"
    assert t.loc["small", "share of output spent reasoning"] == "—"
